package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// TestReconcilerFollowsOtherWriters: changes written to the Store by
// another writer (another Berth server on the same Consul, say), which do
// not kick this server's reconciler, still reach the scheduler through the
// apps watch, long before the periodic sweep, and only the changed app is
// resubmitted.
func TestReconcilerFollowsOtherWriters(t *testing.T) {
	sched := reconcilertest.NewMemScheduler()
	s := newRig(t, sched, nil)
	s.cfg.Reconcile.IntervalDur = time.Hour // no sweep during the test
	const n = 40
	reconcilertest.SeedApps(t, s.store, "app", n, true)
	s.start()
	waitFor(t, "the first pass to submit every app", func() bool { return sched.SubmitCount() == n })
	ctx := context.Background()

	// A new version of one app, written behind the server's back.
	const mv2 = "1700000001-89abcdef0123456789abcdef0123456789abcdef"
	if _, err := state.Create(ctx, s.store, state.ReleaseKey("app00007", mv2), reconcilertest.Release("app00007", mv2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := state.Update(ctx, s.store, state.AppKey("app00007"), func(a *state.App) error {
		a.MetaVersion = mv2
		a.Generation++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app00007 to run its new version", func() bool { mv, _ := sched.Spec("app00007"); return mv == mv2 })
	if got := sched.SubmitCount(); got != n+1 {
		t.Errorf("%d submits after one app changed, want %d (only the changed app resubmitted)", got, n+1)
	}

	// An app removed behind the server's back is stopped.
	if err := state.Delete(ctx, s.store, state.AppKey("app00003")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed app00003 to be stopped", func() bool { _, ok := sched.Spec("app00003"); return !ok })
	if _, ok := sched.Spec("app00004"); !ok {
		t.Error("app00004 was stopped too")
	}
}
