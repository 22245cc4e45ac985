package server

// Benchmarks of the deploy engine on the embedded stores (bbolt with
// NoSync, sealed secrets in a temporary directory) with an in-memory
// scheduler that accepts every submit:
//
//	BenchmarkReconcileDeployToSubmit
//	                          a deploy request through s.Handler() until its
//	                          spec reaches the scheduler, with 0 and 10,000
//	                          other apps in the store
//
// (BenchmarkReconcilePass is in package reconciler.) The 10,000-app
// setups are outside the timed part and skipped under -short.
//
//	go test -run '^$' -bench Reconcile -benchmem ./server/

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// newBenchServer builds a Server on bolt (NoSync) and sealed secrets in a
// temporary directory, with sched as its scheduler. The reconciler is not
// started.
func newBenchServer(b testing.TB, sched backends.Scheduler) *Server {
	b.Helper()
	dir := b.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed",
		Scheduler: sched, SchedulerName: "mem"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(); sec.Close(); st.Close() })
	return s
}

// BenchmarkReconcileDeployToSubmit is the latency from a deploy request
// (POST /api/v1/apps/ through s.Handler()) to its spec reaching the
// scheduler, with the reconciler running, among 0 or 10,000 other apps.
func BenchmarkReconcileDeployToSubmit(b *testing.B) {
	for _, others := range []int{0, 10000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			if others > 0 && testing.Short() {
				b.Skip("seeds 10,000 apps; skipped under -short")
			}
			benchDeployToSubmit(b, others)
		})
	}
}

func benchDeployToSubmit(b *testing.B, others int) {
	sched := reconcilertest.NewMemScheduler()
	s := newBenchServer(b, sched)
	ctx := context.Background()
	if _, err := state.Create(ctx, s.eng.Store(), state.UserKey(reconcilertest.Owner), &state.User{Email: reconcilertest.Owner, Admin: true, Created: time.Now().UTC()}); err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, reconcilertest.Owner, engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if others > 0 {
		reconcilertest.SeedApps(b, s.eng.Store(), "other", others, true)
	}
	// The apps deployed by the timed requests: registered, one release each.
	reconcilertest.SeedApps(b, s.eng.Store(), "dep", b.N, false)
	s.Start()
	if others > 0 {
		// Let the reconciler submit the other apps and record them running.
		deadline := time.Now().Add(3 * time.Minute)
		for sched.SubmitCount() < others || !reconcilerIdle(ctx, s) {
			if time.Now().After(deadline) {
				b.Fatalf("the reconciler did not settle %d apps in 3 minutes (%d submitted)", others, sched.SubmitCount())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("dep%05d", i)
		submitted := sched.Expect(name)
		start := time.Now()
		req := httptest.NewRequest("POST", "/api/v1/apps/", strings.NewReader(`{"appname":"`+name+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "bearer "+tok)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("deploying %s: %d %s", name, w.Code, w.Body.String())
		}
		select {
		case <-submitted:
		case <-time.After(time.Minute):
			b.Fatalf("%s was not submitted within a minute of its deploy", name)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "ns-p99")
}

// reconcilerIdle reports whether no operation is under way (every deploy
// record is in a final state).
func reconcilerIdle(ctx context.Context, s *Server) bool {
	ds, err := state.List[state.Deploy](ctx, s.eng.Store(), state.DeploysPrefix)
	if err != nil {
		return false
	}
	for _, d := range ds {
		if d.State == state.DeployPending || d.State == state.DeployDeploying {
			return false
		}
	}
	return true
}
