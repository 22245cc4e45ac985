package engine

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// revertingMarker is what the reconciler appends to the message of a
// failed deploy it reverts automatically ("...; reverting to <version>").
const revertingMarker = "; reverting to "

// final reports whether a deploy state ends an operation.
func final(st state.DeployState) bool {
	return st == state.DeployRunning || st == state.DeployFailed || st == state.DeployUndeployed
}

// RecordHistory appends the finished operation d (a deploy record in a
// final state: running, failed or undeployed) to its app's history, which
// keeps the last state.HistoryLimit of them. A record that is not final
// is ignored, and so is the same record given twice. The reconciler calls
// it each time it writes a deploy record in a final state.
func (s *Engine) RecordHistory(ctx context.Context, d *state.Deploy) error {
	if d == nil || !final(d.State) || d.App == "" {
		return nil
	}
	e := historyEntry(d)
	if e.Finished.IsZero() {
		e.Finished = time.Now().UTC()
	}
	key := state.HistoryKey(d.App)
	for attempt := 0; attempt < 64; attempt++ {
		h, idx, err := state.Get[state.History](ctx, s.store, key)
		if errors.Is(err, state.ErrNotFound) {
			h, idx, err = &state.History{App: d.App}, 0, nil
		}
		if err != nil {
			return err
		}
		if recorded(h.Entries, e) {
			return nil
		}
		h.Entries = append(h.Entries, e)
		if n := len(h.Entries) - state.HistoryLimit; n > 0 {
			h.Entries = append([]state.HistoryEntry(nil), h.Entries[n:]...)
		}
		if _, err = state.Put(ctx, s.store, key, h, idx); errors.Is(err, state.ErrConflict) {
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		return err
	}
	return state.ErrConflict
}

// historyEntry is the history entry of the deploy record d.
func historyEntry(d *state.Deploy) state.HistoryEntry {
	e := state.HistoryEntry{Generation: d.Generation, Operation: d.Operation, MetaVersion: d.MetaVersion, State: d.State,
		Message: d.Message, By: d.By, Started: d.Started, Finished: d.Updated}
	if d.State == state.DeployFailed {
		if i := strings.LastIndex(d.Message, revertingMarker); i >= 0 {
			e.Reverted, e.RevertedTo = true, d.Message[i+len(revertingMarker):]
		}
	}
	return e
}

// recorded reports whether the history entries hold e (the same deploy
// record in the same final state).
func recorded(entries []state.HistoryEntry, e state.HistoryEntry) bool {
	for _, x := range entries {
		if x.Generation == e.Generation && x.Operation == e.Operation && x.State == e.State && x.Finished.Equal(e.Finished) {
			return true
		}
	}
	return false
}

// forgetHistory deletes an app's history (when the app is removed).
func (s *Engine) forgetHistory(ctx context.Context, app string) error {
	err := state.Delete(ctx, s.store, state.HistoryKey(app))
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	return err
}

// HistoryEntry is one operation of an app's deploy history.
type HistoryEntry struct {
	state.HistoryEntry
	// Duration is how long the operation took (0 when unknown, or while
	// it is under way).
	Duration time.Duration
}

// appHistory is the app's recorded history, newest first, without the
// entries of an earlier app of the same name.
func (s *Engine) appHistory(ctx context.Context, a *state.App) ([]state.HistoryEntry, error) {
	h, _, err := state.Get[state.History](ctx, s.store, state.HistoryKey(a.Name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]state.HistoryEntry, 0, len(h.Entries))
	for i := len(h.Entries) - 1; i >= 0; i-- {
		if x := h.Entries[i]; !x.Finished.Before(a.Created) {
			out = append(out, x)
		}
	}
	return out, nil
}

// currentHistory is the app's finished operations, newest first, with
// its current deploy record when that is final but not yet appended (the
// reconciler writes the deploy record first, the history just after), and
// the operation under way (nil if none).
func (s *Engine) currentHistory(ctx context.Context, a *state.App) ([]state.HistoryEntry, *state.HistoryEntry, error) {
	done, err := s.appHistory(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.GetDeploy(ctx, a.Name)
	if err != nil || d == nil || d.Updated.Before(a.Created) {
		return done, nil, err
	}
	cur := historyEntry(d)
	if !final(d.State) {
		cur.Finished = time.Time{}
		return done, &cur, nil
	}
	if !recorded(done, cur) {
		done = append([]state.HistoryEntry{cur}, done...)
	}
	return done, nil, nil
}

// History is the app's deploy history, newest first: the operation under
// way (if any, with its current state), then each finished one.
func (s *Engine) History(ctx context.Context, id *Identity, app string) ([]HistoryEntry, error) {
	a, err := s.loadApp(ctx, id, app, ActAppRead)
	if err != nil {
		return nil, err
	}
	done, under, err := s.currentHistory(ctx, a)
	if err != nil {
		return nil, err
	}
	out := []HistoryEntry{}
	if under != nil {
		out = append(out, HistoryEntry{HistoryEntry: *under})
	}
	for _, x := range done {
		e := HistoryEntry{HistoryEntry: x}
		if !x.Started.IsZero() && x.Finished.After(x.Started) {
			e.Duration = x.Finished.Sub(x.Started)
		}
		out = append(out, e)
	}
	return out, nil
}

// Releases are the app's pushed releases, newest first.
func (s *Engine) Releases(ctx context.Context, id *Identity, app string) ([]*state.Release, *state.App, error) {
	a, err := s.loadApp(ctx, id, app, ActAppRead)
	if err != nil {
		return nil, nil, err
	}
	rs, err := state.List[state.Release](ctx, s.store, state.ReleasePrefix(a.Name))
	if err != nil {
		return nil, nil, err
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].Pushed.Equal(rs[j].Pushed) {
			return rs[i].Pushed.After(rs[j].Pushed)
		}
		return rs[i].MetaVersion > rs[j].MetaVersion
	})
	return rs, a, nil
}

// RollbackTarget is the release a rollback without a version goes back
// to: the newest release other than the current one that an operation of
// the history brought to running, else the deploy record's last running
// release. "" when there is none.
func (s *Engine) rollbackTarget(ctx context.Context, a *state.App) (string, error) {
	hist, _, err := s.currentHistory(ctx, a)
	if err != nil {
		return "", err
	}
	for _, x := range hist {
		if x.State == state.DeployRunning && x.MetaVersion != "" && x.MetaVersion != a.MetaVersion {
			return x.MetaVersion, nil
		}
	}
	d, err := s.GetDeploy(ctx, a.Name)
	if err != nil {
		return "", err
	}
	if d != nil && d.LastRunning != "" && d.LastRunning != a.MetaVersion {
		return d.LastRunning, nil
	}
	return "", nil
}

// Rollback moves a deployed app back to the release metaVersion, or, when
// it is "", to the release that ran before the current one (from the
// deploy history). The operation ("rollback to <version>") is answered at
// once, as a deploy is.
func (s *Engine) Rollback(ctx context.Context, id *Identity, app, metaVersion string) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppRollback)
	if err != nil {
		return nil, err
	}
	if !a.Deployed {
		return nil, Invalid("app %q is not deployed: deploy it (berth deploy %s VERSION) instead of rolling back", a.Name, a.Name)
	}
	if metaVersion == "" {
		if metaVersion, err = s.rollbackTarget(ctx, a); err != nil {
			return nil, err
		}
		if metaVersion == "" {
			return nil, Invalid("app %q has no earlier release that ran: name the release to roll back to", a.Name)
		}
	} else if err := names.MetaVersion(metaVersion); err != nil {
		return nil, invalid(err)
	}
	if metaVersion == a.MetaVersion {
		return nil, Invalid("app %q is already at release %s", a.Name, metaVersion)
	}
	rel, _, err := state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, metaVersion))
	if errors.Is(err, state.ErrNotFound) {
		return nil, Invalid("app %q has no release %s", a.Name, metaVersion)
	}
	if err != nil {
		return nil, err
	}
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	instances, err := s.ensureResourceInstances(ctx, id, a, rel)
	if err != nil {
		return nil, err
	}
	na, d, err := s.changeApp(ctx, id, a.Name, "rollback to "+rel.MetaVersion, func(x *state.App) error {
		x.Deployed = true
		x.MetaVersion = rel.MetaVersion
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d, ResourceInstances: instances}, nil
}
