package reconciler

// Benchmarks of the reconciler on the embedded stores (bbolt with NoSync,
// sealed secrets in a temporary directory) with an in-memory scheduler
// that accepts every submit:
//
//	BenchmarkReconcilePass    one reconcile pass over 10,000 apps x 5 procs:
//	                          steady (nothing to do) and resubmit-all (a
//	                          restarted server: every app is submitted)
//
// (BenchmarkReconcileDeployToSubmit, through the HTTP handler, is in
// package server.) The 10,000-app setup is outside the timed part and
// skipped under -short.
//
//	go test -run '^$' -bench Reconcile -benchmem ./reconciler/

import (
	"context"
	"testing"

	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// BenchmarkReconcilePass is one reconcile pass over 10,000 deployed apps
// of 5 procs each.
func BenchmarkReconcilePass(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 10,000 apps; skipped under -short")
	}
	const apps = 10000
	sched := reconcilertest.NewMemScheduler()
	s := newRig(b, sched, nil)
	reconcilertest.SeedApps(b, s.store, "app", apps, true)
	ctx := context.Background()
	// The first pass submits every app; later passes find nothing to do.
	res, err := s.rec.Pass(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Submitted) != apps || len(res.Failed) != 0 {
		b.Fatalf("first pass: %d submitted, %d failed, want %d and 0", len(res.Submitted), len(res.Failed), apps)
	}
	if spec := sched.AppSpec("app00042"); spec == nil || len(spec.Procs) != 5 || spec.Env["GREETING"] != "hi" {
		b.Fatalf("the submitted spec is not the app's: %+v", spec)
	}

	b.Run("steady", func(b *testing.B) {
		before := sched.SubmitCount()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			res, err := s.rec.Pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if res.Checked != apps || len(res.Submitted) != 0 {
				b.Fatalf("steady pass: checked %d, submitted %d", res.Checked, len(res.Submitted))
			}
		}
		b.StopTimer()
		if n := sched.SubmitCount() - before; n != 0 {
			b.Fatalf("a steady pass submitted %d specs", n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/apps, "ns/app")
	})

	b.Run("resubmit-all", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			b.StartTimer()
			res, err := s.rec.Heal(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Submitted) != apps {
				b.Fatalf("resubmit pass: %d submitted, want %d", len(res.Submitted), apps)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/apps, "ns/app")
	})
}
