package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// finishOp ends the app's current operation in st, as the reconciler does:
// the deploy record reaches its final state, is appended to the history,
// and the lease is released.
func finishOp(t *testing.T, e *Engine, app string, st state.DeployState, msg string) *state.Deploy {
	t.Helper()
	ctx := context.Background()
	d, idx, err := state.Get[state.Deploy](ctx, e.store, state.DeployKey(app))
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Message, d.Updated = st, msg, time.Now().UTC()
	if st == state.DeployRunning {
		d.LastRunning = d.MetaVersion
	}
	if _, err := state.Put(ctx, e.store, state.DeployKey(app), d, idx); err != nil {
		t.Fatal(err)
	}
	if err := e.RecordHistory(ctx, d); err != nil {
		t.Fatal(err)
	}
	done(e, app)
	return d
}

func TestHistoryRecordsFinishedOperations(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	push(t, e, "hello", "2-bbb")

	if h, err := e.History(ctx, dev, "hello"); err != nil || len(h) != 0 {
		t.Fatalf("history of an app never deployed: %v %v", h, err)
	}
	if _, err := e.DeployVersion(ctx, dev, "hello", "1-aaa", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	// The operation under way is shown first, with no duration yet.
	h, err := e.History(ctx, dev, "hello")
	if err != nil || len(h) != 1 || h[0].State != state.DeployPending || h[0].Operation != "deploy 1-aaa" || h[0].Duration != 0 {
		t.Fatalf("history with a deploy under way: %+v %v", h, err)
	}
	// A record that is not final is not recorded.
	cur, _ := e.GetDeploy(ctx, "hello")
	if err := e.RecordHistory(ctx, cur); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	first := finishOp(t, e, "hello", state.DeployRunning, "")
	// The same final record given twice is recorded once.
	if err := e.RecordHistory(ctx, first); err != nil {
		t.Fatal(err)
	}

	if _, err := e.DeployVersion(ctx, dev, "hello", "2-bbb", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	finishOp(t, e, "hello", state.DeployFailed, "web.0 exited with status 3; reverting to 1-aaa")

	h, err = e.History(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 {
		t.Fatalf("history: %+v", h)
	}
	if h[0].Operation != "deploy 2-bbb" || h[0].State != state.DeployFailed || !h[0].Reverted || h[0].RevertedTo != "1-aaa" || h[0].Message == "" {
		t.Fatalf("the failed, reverted deploy: %+v", h[0])
	}
	if h[1].Operation != "deploy 1-aaa" || h[1].State != state.DeployRunning || h[1].Reverted || h[1].By != "dev@example.com" || h[1].MetaVersion != "1-aaa" {
		t.Fatalf("the first deploy: %+v", h[1])
	}
	if h[1].Duration < 20*time.Millisecond || h[1].Duration > time.Minute {
		t.Fatalf("the first deploy took %v", h[1].Duration)
	}

	// A deploy record that reached its final state shows in the history
	// before the reconciler has appended it.
	if _, err := e.DeployVersion(ctx, dev, "hello", "1-aaa", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	d, idx, err := state.Get[state.Deploy](ctx, e.store, state.DeployKey("hello"))
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.Updated = state.DeployRunning, time.Now().UTC()
	if _, err := state.Put(ctx, e.store, state.DeployKey("hello"), d, idx); err != nil {
		t.Fatal(err)
	}
	done(e, "hello")
	h, err = e.History(ctx, dev, "hello")
	if err != nil || len(h) != 3 || h[0].Operation != "deploy 1-aaa" || h[0].State != state.DeployRunning || h[0].Generation != d.Generation {
		t.Fatalf("history with a final record not yet appended: %+v %v", h, err)
	}
	// Once appended, it is there once.
	if err := e.RecordHistory(ctx, d); err != nil {
		t.Fatal(err)
	}
	if h, _ = e.History(ctx, dev, "hello"); len(h) != 3 {
		t.Fatalf("history after the record was appended: %+v", h)
	}

	// An outsider may not read it.
	out := addUser(t, e, "out@example.com")
	if _, err := e.History(ctx, out, "hello"); !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("an outsider reads the history: %v", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	start := time.Now().UTC()
	for i := 1; i <= state.HistoryLimit+5; i++ {
		d := &state.Deploy{App: "hello", Generation: int64(i), Operation: fmt.Sprintf("scale web to %d", i), MetaVersion: "1-aaa",
			State: state.DeployRunning, Started: start, Updated: start.Add(time.Duration(i) * time.Millisecond)}
		if err := e.RecordHistory(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	h, err := e.History(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != state.HistoryLimit {
		t.Fatalf("%d entries kept, want %d", len(h), state.HistoryLimit)
	}
	if h[0].Generation != int64(state.HistoryLimit+5) || h[len(h)-1].Generation != 6 {
		t.Fatalf("kept generations %d..%d, want %d..6", h[0].Generation, h[len(h)-1].Generation, state.HistoryLimit+5)
	}
	if h[0].Duration != time.Duration(state.HistoryLimit+5)*time.Millisecond {
		t.Fatalf("duration %v", h[0].Duration)
	}

	// An app registered again under the same name starts with no history.
	a, err := state.GetApp(ctx, e.store, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.unregisterApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // after the last entry's time
	addApp(t, e, dev, "hello", "")
	if h, err := e.History(ctx, dev, "hello"); err != nil || len(h) != 0 {
		t.Fatalf("history of the new app: %d entries, %v", len(h), err)
	}
}

func TestReleasesNewestFirst(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	push(t, e, "hello", "2-bbb")
	rs, _, err := e.Releases(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].MetaVersion != "2-bbb" || rs[1].MetaVersion != "1-aaa" || len(rs[0].Spec.Procs) != 2 {
		t.Fatalf("releases: %+v", rs)
	}
	out := addUser(t, e, "out@example.com")
	if _, _, err := e.Releases(ctx, out, "hello"); err == nil {
		t.Fatal("an outsider lists the releases")
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	push(t, e, "hello", "2-bbb")
	push(t, e, "hello", "3-ccc")

	_, err := e.Rollback(ctx, dev, "hello", "")
	wantKind(t, "a rollback of an app not deployed", err, ErrInvalid)

	if _, err := e.DeployVersion(ctx, dev, "hello", "1-aaa", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	finishOp(t, e, "hello", state.DeployRunning, "")
	_, err = e.Rollback(ctx, dev, "hello", "")
	wantKind(t, "a rollback with no earlier release", err, ErrInvalid)

	if _, err := e.DeployVersion(ctx, dev, "hello", "2-bbb", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	finishOp(t, e, "hello", state.DeployRunning, "")

	out := addUser(t, e, "out@example.com")
	if _, err := e.Rollback(ctx, out, "hello", ""); !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("an outsider rolls back: %v", err)
	}
	_, err = e.Rollback(ctx, dev, "hello", "2-bbb")
	wantKind(t, "a rollback to the current release", err, ErrInvalid)
	_, err = e.Rollback(ctx, dev, "hello", "9-zzz")
	wantKind(t, "a rollback to a release never pushed", err, ErrInvalid)

	ch, err := e.Rollback(ctx, dev, "hello", "")
	if err != nil {
		t.Fatal(err)
	}
	if ch.App.MetaVersion != "1-aaa" || ch.Deploy.Operation != "rollback to 1-aaa" || ch.Deploy.State != state.DeployPending || ch.Deploy.By != "dev@example.com" {
		t.Fatalf("rollback: %+v %+v", ch.App, ch.Deploy)
	}
	finishOp(t, e, "hello", state.DeployRunning, "")
	// Again: back to the release before that one.
	ch, err = e.Rollback(ctx, dev, "hello", "")
	if err != nil || ch.App.MetaVersion != "2-bbb" {
		t.Fatalf("second rollback: %v %v", ch, err)
	}
	finishOp(t, e, "hello", state.DeployRunning, "")
	// To a named release never deployed before.
	if ch, err = e.Rollback(ctx, dev, "hello", "3-ccc"); err != nil || ch.App.MetaVersion != "3-ccc" {
		t.Fatalf("rollback by name: %v %v", ch, err)
	}
	finishOp(t, e, "hello", state.DeployRunning, "")

	h, err := e.History(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, x := range h {
		ops = append(ops, x.Operation)
	}
	want := "[rollback to 3-ccc rollback to 2-bbb rollback to 1-aaa deploy 2-bbb deploy 1-aaa]"
	if fmt.Sprint(ops) != want {
		t.Fatalf("history %v, want %s", ops, want)
	}
}
