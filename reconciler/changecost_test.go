package reconciler

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// changeCost is what the reconciler reads of the Store to handle one change
// with n apps of 5 procs seeded: a kick of one app whose state is
// unchanged, and a scale of one app (a new app record and pending deploy
// record, then the kick its writer sends) followed until its deploy is
// recorded running.
type changeCost struct {
	kick, scale storetest.ReadCount
}

func measureChangeCost(t *testing.T, n int) changeCost {
	t.Helper()
	ctx := context.Background()
	sched := reconcilertest.NewMemScheduler()
	var hooked *storetest.Hooked
	s := newRig(t, sched, func(st backends.Store) backends.Store {
		hooked = &storetest.Hooked{Store: st}
		return hooked
	})
	reconcilertest.SeedApps(t, s.store, "app", n, true)
	// What a server does when it starts: a full pass, then it follows the
	// deploys under way until they are running.
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if got := sched.SubmitCount(); got != n {
		t.Fatalf("first pass: %d submitted of %d", got, n)
	}
	s.rec.progress(ctx)
	s.rec.progress(ctx)
	if d, err := s.eng.GetDeploy(ctx, "app00042"); err != nil || d == nil || d.State != state.DeployRunning {
		t.Fatalf("app00042 after the first pass: %+v, %v; want running", d, err)
	}

	var c changeCost
	// One kick of an app whose desired state did not change.
	hooked.ResetReads()
	s.rec.Kick("app00042")
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	s.rec.progress(ctx)
	c.kick = hooked.Reads()
	if got := sched.SubmitCount(); got != n {
		t.Fatalf("a kick of an unchanged app submitted it again: %d submits, want %d", got, n)
	}

	// Scale app00042's web proc to 3, as the engine writes it (app record
	// of a new generation, pending deploy record), then the kick.
	a, idx, err := state.Get[state.App](ctx, s.store, state.AppKey("app00042"))
	if err != nil {
		t.Fatal(err)
	}
	three := 3
	if a.Procs == nil {
		a.Procs = map[string]state.ProcOverride{}
	}
	o := a.Procs["web"]
	o.NumInstances = &three
	a.Procs["web"] = o
	a.Generation++
	d := &state.Deploy{App: a.Name, Generation: a.Generation, Operation: "scale", State: state.DeployPending, MetaVersion: a.MetaVersion, Updated: time.Now().UTC()}
	av, _ := json.Marshal(a)
	dv, _ := json.Marshal(d)
	if _, err := s.store.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnCAS, Key: state.AppKey(a.Name), Value: av, Index: idx},
		{Verb: backends.TxnSet, Key: state.DeployKey(a.Name), Value: dv},
	}); err != nil {
		t.Fatal(err)
	}
	hooked.ResetReads()
	s.rec.Kick(a.Name)
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	s.rec.progress(ctx) // sees it running: records it
	s.rec.progress(ctx) // sees it final: stops following it
	c.scale = hooked.Reads()
	spec := sched.AppSpec(a.Name)
	web := -1
	for _, p := range spec.Procs {
		if p.Name == "web" {
			web = p.Instances
		}
	}
	if web != 3 {
		t.Fatalf("after the scale the scheduler runs %d web instances of %s, want 3", web, a.Name)
	}
	if got, err := s.eng.GetDeploy(ctx, a.Name); err != nil || got == nil || got.State != state.DeployRunning || got.Generation != a.Generation {
		t.Fatalf("deploy record after the scale: %+v, %v; want running at generation %d", got, err, a.Generation)
	}
	if got := sched.SubmitCount(); got != n+1 {
		t.Fatalf("the scale submitted %d specs, want 1", got-n)
	}
	s.rec.mu.Lock()
	inflight := len(s.rec.inflight)
	s.rec.mu.Unlock()
	if inflight != 0 {
		t.Fatalf("the reconciler still follows %d apps after every deploy is running", inflight)
	}
	t.Logf("%d apps: kick: %+v; scale: %+v", n, c.kick, c.scale)
	return c
}

// TestChangeCostDoesNotGrowWithApps: handling one change reads the same
// few Store records whether 100 or 10,000 apps are registered: no full
// scan, no reads of other apps' records.
func TestChangeCostDoesNotGrowWithApps(t *testing.T) {
	big := 10000
	if testing.Short() {
		big = 1000
	}
	small := measureChangeCost(t, 100)
	large := measureChangeCost(t, big)
	if small != large {
		t.Fatalf("one change costs more Store reads with %d apps than with 100:\n100: %+v\n%d: %+v", big, small, big, large)
	}
	// O(1) and small: the app, its release, its deploy record, its
	// lease, by key; no prefix listed.
	if large.kick.Gets > 8 || large.scale.Gets > 16 || large.kick.Lists+large.kick.Pages+large.scale.Lists+large.scale.Pages > 0 {
		t.Fatalf("one change reads too much: %+v", large)
	}
}
