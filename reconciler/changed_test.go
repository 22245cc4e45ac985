package reconciler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// hookedRig is a rig on a Hooked store with one deployed app (app00000)
// that the scheduler runs, and release mv2 of it pushed.
func hookedRig(t *testing.T) (*rig, *storetest.Hooked, *reconcilertest.MemScheduler) {
	t.Helper()
	sched := reconcilertest.NewMemScheduler()
	var hooked *storetest.Hooked
	s := newRig(t, sched, func(st backends.Store) backends.Store {
		hooked = &storetest.Hooked{Store: st}
		return hooked
	})
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	ctx := context.Background()
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	s.rec.progress(ctx)
	s.rec.progress(ctx)
	addRelease(t, s, "app00000")
	return s, hooked, sched
}

// TestDeploySubmitsWithoutReadingBack: a deploy through the engine hands
// the reconciler the app record it committed and the release it deploys;
// the pass submits the new version without reading either back from the
// Store (nothing between the kick and the submit waits on the Store).
func TestDeploySubmitsWithoutReadingBack(t *testing.T) {
	s, hooked, sched := hookedRig(t)
	const app = "app00000"
	ctx := context.Background()
	ch, err := s.eng.DeployVersion(ctx, &engine.Identity{Email: reconcilertest.Owner, Admin: true}, app, mv2, engine.DeploySettings{})
	if err != nil {
		t.Fatal(err)
	}
	_, idx, err := state.Get[state.App](ctx, s.store, state.AppKey(app))
	if err != nil || ch.App.ModifyIndex != idx {
		t.Errorf("the committed record's ModifyIndex is %d, the Store's %d (%v)", ch.App.ModifyIndex, idx, err)
	}
	var appReads, relReads atomic.Int32
	hooked.Hooks = map[string]func(){
		"get:" + state.AppKey(app):          func() { appReads.Add(1) },
		"get:" + state.ReleaseKey(app, mv2): func() { relReads.Add(1) },
	}
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	if mv, _ := sched.Spec(app); mv != mv2 {
		t.Fatalf("after the pass the scheduler runs %q, want %s", mv, mv2)
	}
	if n := appReads.Load(); n != 0 {
		t.Errorf("the pass read the app record back from the Store before submitting")
	}
	if n := relReads.Load(); n != 0 {
		t.Errorf("the pass read the release back from the Store before submitting")
	}
	if d := s.deploy(t, app); d.State != state.DeployDeploying || d.Generation != ch.App.Generation {
		t.Errorf("deploy record after the submit: %s at generation %d, want deploying at %d", d.State, d.Generation, ch.App.Generation)
	}
}

// TestWatchDoesNotKickAChangeTakenUp: the Store watch (for other
// servers' writes) does not kick a second pass over a change this server
// committed and reconciled already; a write of another server is kicked.
func TestWatchDoesNotKickAChangeTakenUp(t *testing.T) {
	s, hooked, sched := hookedRig(t)
	const app = "app00000"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.rec.watch(ctx)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "the watch's first look", func() bool {
		s.rec.mu.Lock()
		defer s.rec.mu.Unlock()
		return s.rec.all
	})
	if err := s.rec.passDirty(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The watch's look that sees the deploy's commit comes after the
	// pass that submits it.
	var looked atomic.Bool
	hooked.Hooks = map[string]func(){"list:" + state.AppsPrefix: func() {
		if err := s.rec.passDirty(context.Background()); err != nil {
			t.Error(err)
		}
		looked.Store(true)
	}}
	if _, err := s.eng.DeployVersion(context.Background(), &engine.Identity{Email: reconcilertest.Owner, Admin: true}, app, mv2, engine.DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch to see the deploy", looked.Load)
	if mv, _ := sched.Spec(app); mv != mv2 {
		t.Fatalf("the scheduler runs %q, want %s", mv, mv2)
	}
	time.Sleep(100 * time.Millisecond)
	s.rec.mu.Lock()
	again, all := s.rec.dirty[app], s.rec.all
	s.rec.mu.Unlock()
	if again || all {
		t.Fatalf("the watch kicked the deploy's change again (app due: %v, full pass due: %v)", again, all)
	}

	// Another server's write to the app record is kicked.
	a, idx, err := state.Get[state.App](context.Background(), s.store, state.AppKey(app))
	if err != nil {
		t.Fatal(err)
	}
	a.Routes = append(a.Routes, "other.example.com")
	if _, err := state.Put(context.Background(), s.store, state.AppKey(app), a, idx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch to kick another writer's change", func() bool {
		s.rec.mu.Lock()
		defer s.rec.mu.Unlock()
		return s.rec.dirty[app]
	})
}

// TestChangedKeepsAKickThatReads: a change handed over with its record
// does not replace a kick that reads the app (another writer's change
// may be newer); of two changes handed over, the later counts.
func TestChangedKeepsAKickThatReads(t *testing.T) {
	s, hooked, _ := hookedRig(t)
	const app = "app00000"
	ctx := context.Background()
	a, err := state.GetApp(ctx, s.store, app)
	if err != nil {
		t.Fatal(err)
	}
	older, newer := *a, *a
	older.ModifyIndex, newer.ModifyIndex = a.ModifyIndex, a.ModifyIndex+1
	s.rec.Changed(&newer, nil)
	s.rec.Changed(&older, nil)
	s.rec.mu.Lock()
	got := s.rec.carried[app]
	s.rec.mu.Unlock()
	if got == nil || got.ModifyIndex != newer.ModifyIndex {
		t.Fatalf("carried %+v, want the later change (index %d)", got, newer.ModifyIndex)
	}

	s.rec.Kick(app)
	s.rec.Changed(&newer, nil)
	var reads atomic.Int32
	hooked.Hooks = map[string]func(){"get:" + state.AppKey(app): func() { reads.Add(1) }}
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	if reads.Load() != 1 {
		t.Fatalf("a pass due to a kick read the app record %d times, want 1", reads.Load())
	}
}

// TestProgressYieldsToAKick: the progress check of the deploys under way
// stops after one app when a kick waits (the loop then serves the kick),
// and the next check starts with the apps it did not get to, so that no
// deploy goes unchecked however often kicks come.
func TestProgressYieldsToAKick(t *testing.T) {
	sched := reconcilertest.NewMemScheduler()
	var hooked *storetest.Hooked
	s := newRig(t, sched, func(st backends.Store) backends.Store {
		hooked = &storetest.Hooked{Store: st}
		return hooked
	})
	reconcilertest.SeedApps(t, s.store, "app", 3, true)
	ctx := context.Background()
	if err := s.rec.passDirty(ctx); err != nil {
		t.Fatal(err)
	}
	s.rec.trackUnderway(ctx)
	checked := func(yield func() bool) []string {
		var got []string
		hooked.Hooks = map[string]func(){}
		for _, app := range []string{"app00000", "app00001", "app00002"} {
			hooked.Hooks["get:"+state.DeployKey(app)] = func() { got = append(got, app) }
		}
		s.rec.progressYielding(ctx, yield)
		return got
	}
	always := func() bool { return true }
	for i, want := range []string{"app00000", "app00001", "app00002", "app00000"} {
		got := checked(always)
		if len(got) != 1 || got[0] != want {
			t.Fatalf("check %d with a kick waiting looked at %v, want only %s", i, got, want)
		}
	}
	s.rec.mu.Lock()
	under := len(s.rec.inflight)
	s.rec.mu.Unlock()
	if got := checked(nil); len(got) != under || under < 2 {
		t.Fatalf("a check with no kick waiting looked at %v, want the %d apps followed", got, under)
	}
}
