package server

// Benchmarks of the deploy engine on the embedded stores (bbolt with
// NoSync, sealed secrets in a temporary directory) with an in-memory
// scheduler that accepts every submit:
//
//	BenchmarkReconcilePass    one reconcile pass over 10,000 apps x 5 procs:
//	                          steady (nothing to do) and resubmit-all (a
//	                          restarted server: every app is submitted)
//	BenchmarkReconcileDeployToSubmit
//	                          a deploy request through s.Handler() until its
//	                          spec reaches the scheduler, with 0 and 10,000
//	                          other apps in the store
//
// The 10,000-app setups are outside the timed part and skipped under -short.
//
//	go test -run '^$' -bench Reconcile -benchmem ./server/

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

// memScheduler is a backends.Scheduler that keeps submitted specs in
// memory, reports every app running at its submitted version, and tells a
// waiter when an app's spec arrives.
type memScheduler struct {
	mu      sync.Mutex
	specs   map[string]*backends.AppSpec
	submits int
	waiters map[string]chan struct{}
}

var _ backends.Scheduler = (*memScheduler)(nil)

func newMemScheduler() *memScheduler {
	return &memScheduler{specs: map[string]*backends.AppSpec{}, waiters: map[string]chan struct{}{}}
}

// expect returns a channel closed when the next spec of app is submitted.
func (m *memScheduler) expect(app string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{})
	m.waiters[app] = ch
	return ch
}

func (m *memScheduler) Submit(ctx context.Context, spec *backends.AppSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.specs[spec.App] = spec
	m.submits++
	if ch := m.waiters[spec.App]; ch != nil {
		close(ch)
		delete(m.waiters, spec.App)
	}
	return nil
}

func (m *memScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	spec := m.specs[app]
	if spec == nil {
		return nil, fmt.Errorf("mem scheduler: %s: %w", app, backends.ErrNotFound)
	}
	st := &backends.AppStatus{App: app, MetaVersion: spec.MetaVersion, Deployment: backends.DeployRunning}
	for _, p := range spec.Procs {
		for i := 0; i < p.Instances; i++ {
			st.Instances = append(st.Instances, backends.Instance{Proc: p.Name, Index: i, ID: fmt.Sprintf("%s/%s/%d", app, p.Name, i), State: backends.StateRunning})
		}
	}
	return st, nil
}

func (m *memScheduler) Restart(ctx context.Context, app, proc string) error { return nil }

func (m *memScheduler) Stop(ctx context.Context, app string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.specs, app)
	return nil
}

func (m *memScheduler) Apps(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.specs))
	for n := range m.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (m *memScheduler) Health(ctx context.Context) error { return nil }
func (m *memScheduler) Close() error                     { return nil }

func (m *memScheduler) submitCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.submits
}

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

const benchOwner = "bench@berth.test"

// benchRelease is a release of five procs (web, three workers, a portal).
func benchRelease(app, mv string) *state.Release {
	procs := []release.Proc{
		{Name: "web", Type: backends.ProcWeb, Cmd: "./web -port $PORT", Port: 8080, NumInstances: 2, CPU: 0.5, MemoryMB: 128, Env: map[string]string{"MODE": "web"}, HealthCheck: "/ping"},
		{Name: "mailer", Type: backends.ProcWorker, Cmd: "./mailer", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "indexer", Type: backends.ProcWorker, Cmd: "./indexer", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "billing", Type: backends.ProcWorker, Cmd: "./billing", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "admin", Type: backends.ProcPortal, Cmd: "./admin", Port: 9000, NumInstances: 1, CPU: 0.25, MemoryMB: 64},
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	return &state.Release{App: app, MetaVersion: mv, Spec: release.Spec{AppName: app, Procs: procs}, Pushed: time.Now().UTC(), PushedBy: benchOwner}
}

func benchApp(name, mv string, deployed bool) *state.App {
	return &state.App{
		Name: name, Owner: benchOwner, AppType: state.AppTypeApp,
		Maintainers: map[string]string{benchOwner: state.RoleOwner},
		GitURL:      "git@git.berth.local:" + name + ".git", Created: time.Now().UTC(),
		Deployed: deployed, MetaVersion: mv, Generation: 1,
		Env:    []state.EnvVar{{Name: "GREETING", Value: "hi", Public: true}},
		Routes: []string{name + ".apps.localhost"},
	}
}

// seedApps writes n apps (deployed or only registered) with one release
// each, 32 apps per store transaction.
func seedApps(b testing.TB, s *Server, prefix string, n int, deployed bool) {
	b.Helper()
	ctx := context.Background()
	const mv = "1700000000-0123456789abcdef0123456789abcdef01234567"
	var ops []backends.TxnOp
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := s.store.Txn(ctx, ops); err != nil {
			b.Fatalf("seeding apps: %v", err)
		}
		ops = ops[:0]
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%05d", prefix, i)
		av, err := json.Marshal(benchApp(name, mv, deployed))
		if err != nil {
			b.Fatal(err)
		}
		rv, err := json.Marshal(benchRelease(name, mv))
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops,
			backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: av},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.ReleaseKey(name, mv), Value: rv})
		if len(ops) >= backends.MaxTxnOps {
			flush()
		}
	}
	flush()
}

// BenchmarkReconcilePass is one reconcile pass over 10,000 deployed apps
// of 5 procs each.
func BenchmarkReconcilePass(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 10,000 apps; skipped under -short")
	}
	const apps = 10000
	sched := newMemScheduler()
	s := newBenchServer(b, sched)
	seedApps(b, s, "app", apps, true)
	ctx := context.Background()
	// The first pass submits every app; later passes find nothing to do.
	res, err := s.eng.Pass(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Submitted) != apps || len(res.Failed) != 0 {
		b.Fatalf("first pass: %d submitted, %d failed, want %d and 0", len(res.Submitted), len(res.Failed), apps)
	}
	if spec := sched.specs["app00042"]; spec == nil || len(spec.Procs) != 5 || spec.Env["GREETING"] != "hi" {
		b.Fatalf("the submitted spec is not the app's: %+v", spec)
	}

	b.Run("steady", func(b *testing.B) {
		before := sched.submitCount()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			res, err := s.eng.Pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if res.Checked != apps || len(res.Submitted) != 0 {
				b.Fatalf("steady pass: checked %d, submitted %d", res.Checked, len(res.Submitted))
			}
		}
		b.StopTimer()
		if n := sched.submitCount() - before; n != 0 {
			b.Fatalf("a steady pass submitted %d specs", n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/apps, "ns/app")
	})

	b.Run("resubmit-all", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			b.StartTimer()
			res, err := s.eng.Heal(ctx)
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
	sched := newMemScheduler()
	s := newBenchServer(b, sched)
	ctx := context.Background()
	if _, err := state.Create(ctx, s.store, state.UserKey(benchOwner), &state.User{Email: benchOwner, Admin: true, Created: time.Now().UTC()}); err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, benchOwner, engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if others > 0 {
		seedApps(b, s, "other", others, true)
	}
	// The apps deployed by the timed requests: registered, one release each.
	seedApps(b, s, "dep", b.N, false)
	s.Start()
	if others > 0 {
		// Let the reconciler submit the other apps and record them running.
		deadline := time.Now().Add(3 * time.Minute)
		for sched.submitCount() < others || !reconcilerIdle(ctx, s) {
			if time.Now().After(deadline) {
				b.Fatalf("the reconciler did not settle %d apps in 3 minutes (%d submitted)", others, sched.submitCount())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("dep%05d", i)
		submitted := sched.expect(name)
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
	ds, err := state.List[state.Deploy](ctx, s.store, state.DeploysPrefix)
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

func (m *memScheduler) Logs(ctx context.Context, app string, q backends.LogQuery) (<-chan backends.LogLine, error) {
	return nil, backends.ErrNotFound
}
