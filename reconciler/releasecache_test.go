package reconciler

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// TestRecreatedAppGetsItsNewRelease: the reconciler keeps the releases it
// read, but an app removed and created again under the same name, whose
// release of the same meta_version has other procs, is submitted with the
// new release, even when no pass ran between the removal and the creation.
func TestRecreatedAppGetsItsNewRelease(t *testing.T) {
	ctx := context.Background()
	sched := reconcilertest.NewMemScheduler()
	s := newRig(t, sched, nil)
	reconcilertest.SeedApps(t, s.store, "re", 1, true)
	const app = "re00000"
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if spec := sched.AppSpec(app); spec == nil || len(spec.Procs) != 5 {
		t.Fatalf("first submit: %+v, want 5 procs", spec)
	}

	// Removed and created again, with a release of one proc at the same
	// meta_version.
	if _, err := s.store.Delete(ctx, state.AppKey(app)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.DeleteTree(ctx, state.ReleasePrefix(app)); err != nil {
		t.Fatal(err)
	}
	a := reconcilertest.App(app, reconcilertest.MV, true)
	a.Created = time.Now().UTC().Add(time.Second)
	rel := reconcilertest.Release(app, reconcilertest.MV)
	rel.Spec.Procs = rel.Spec.Procs[:0]
	for _, p := range reconcilertest.Release(app, reconcilertest.MV).Spec.Procs {
		if p.Name == "web" {
			rel.Spec.Procs = append(rel.Spec.Procs, p)
		}
	}
	av, _ := json.Marshal(a)
	rv, _ := json.Marshal(rel)
	if _, err := s.store.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnSet, Key: state.AppKey(app), Value: av},
		{Verb: backends.TxnSet, Key: state.ReleaseKey(app, reconcilertest.MV), Value: rv},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	spec := sched.AppSpec(app)
	if spec == nil || len(spec.Procs) != 1 || spec.Procs[0].Name != "web" {
		t.Fatalf("after the app was created again the scheduler runs %+v, want its new release (web only)", spec)
	}
}
