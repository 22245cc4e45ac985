// Package reconcilertest has what tests and benchmarks of the reconciler
// (and of the server around it) share: an in-memory scheduler and seeded
// apps of five procs each.
package reconcilertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

// MV is the meta_version of the seeded apps' release.
const MV = "1700000000-0123456789abcdef0123456789abcdef01234567"

// MemScheduler is a backends.Scheduler that keeps submitted specs in
// memory, reports every app running at its submitted version, and tells a
// waiter when an app's spec arrives.
type MemScheduler struct {
	mu      sync.Mutex
	specs   map[string]*backends.AppSpec
	submits int
	waiters map[string]chan struct{}
	runs    []backends.RunSpec
	run     RunFunc
}

var _ backends.Scheduler = (*MemScheduler)(nil)

func NewMemScheduler() *MemScheduler {
	return &MemScheduler{specs: map[string]*backends.AppSpec{}, waiters: map[string]chan struct{}{}}
}

// Expect returns a channel closed when the next spec of app is submitted.
func (m *MemScheduler) Expect(app string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{})
	m.waiters[app] = ch
	return ch
}

func (m *MemScheduler) Submit(ctx context.Context, spec *backends.AppSpec) error {
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

func (m *MemScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
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

func (m *MemScheduler) Restart(ctx context.Context, app, proc string) error { return nil }

func (m *MemScheduler) Stop(ctx context.Context, app string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.specs, app)
	return nil
}

func (m *MemScheduler) Apps(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.specs))
	for n := range m.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (m *MemScheduler) Health(ctx context.Context) error { return nil }
func (m *MemScheduler) Close() error                     { return nil }

// SubmitCount is how many specs were submitted.
func (m *MemScheduler) SubmitCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.submits
}

// Spec is the meta_version of app's submitted spec, and whether there is
// one.
func (m *MemScheduler) Spec(app string) (mv string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sp := m.specs[app]
	if sp == nil {
		return "", false
	}
	return sp.MetaVersion, true
}

// AppSpec is app's submitted spec (nil if none).
func (m *MemScheduler) AppSpec(app string) *backends.AppSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.specs[app]
}

// Owner owns the seeded apps.
const Owner = "bench@berth.test"

// Release is a release of five procs (web, three workers, a portal).
func Release(app, mv string) *state.Release {
	procs := []release.Proc{
		{Name: "web", Type: backends.ProcWeb, Cmd: "./web -port $PORT", Port: 8080, NumInstances: 2, CPU: 0.5, MemoryMB: 128, Env: map[string]string{"MODE": "web"}, HealthCheck: "/ping"},
		{Name: "mailer", Type: backends.ProcWorker, Cmd: "./mailer", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "indexer", Type: backends.ProcWorker, Cmd: "./indexer", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "billing", Type: backends.ProcWorker, Cmd: "./billing", NumInstances: 1, CPU: 0.25, MemoryMB: 64},
		{Name: "admin", Type: backends.ProcPortal, Cmd: "./admin", Port: 9000, NumInstances: 1, CPU: 0.25, MemoryMB: 64},
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	return &state.Release{App: app, MetaVersion: mv, Spec: release.Spec{AppName: app, Procs: procs}, Pushed: time.Now().UTC(), PushedBy: Owner}
}

// App is a deployed (or only registered) app of release mv.
func App(name, mv string, deployed bool) *state.App {
	return &state.App{
		Name: name, Owner: Owner, AppType: state.AppTypeApp,
		Maintainers: map[string]string{Owner: state.RoleOwner},
		GitURL:      "git@git.berth.local:" + name + ".git", Created: time.Now().UTC(),
		Deployed: deployed, MetaVersion: mv, Generation: 1,
		Env:    []state.EnvVar{{Name: "GREETING", Value: "hi", Public: true}},
		Routes: []string{name + ".apps.localhost"},
	}
}

// SeedApps writes n apps named <prefix>00000... (deployed or only registered) with one release
// each, 32 apps per store transaction.
func SeedApps(b testing.TB, st backends.Store, prefix string, n int, deployed bool) {
	b.Helper()
	ctx := context.Background()
	const mv = MV
	var ops []backends.TxnOp
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := st.Txn(ctx, ops); err != nil {
			b.Fatalf("seeding apps: %v", err)
		}
		ops = ops[:0]
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%05d", prefix, i)
		av, err := json.Marshal(App(name, mv, deployed))
		if err != nil {
			b.Fatal(err)
		}
		rv, err := json.Marshal(Release(name, mv))
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

// Logs: a MemScheduler runs nothing, so it has no logs.
func (m *MemScheduler) Logs(ctx context.Context, app string, q backends.LogQuery) (<-chan backends.LogLine, error) {
	return nil, backends.ErrNotFound
}

// RunFunc, if set, is what a one-off command does on a MemScheduler: the
// lines it writes and its exit code. Unset, it writes its command (joined
// by spaces) on stdout and exits 0.
type RunFunc func(spec backends.RunSpec) (lines []backends.LogLine, exitCode int)

// SetRun sets what one-off commands do (nil: the default).
func (m *MemScheduler) SetRun(f RunFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.run = f
}

// Runs returns the specs of the one-off commands run so far.
func (m *MemScheduler) Runs() []backends.RunSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]backends.RunSpec(nil), m.runs...)
}

// Run records the spec and plays the RunFunc's output; an ended ctx ends
// the run with its error.
func (m *MemScheduler) Run(ctx context.Context, app string, spec backends.RunSpec) (*backends.RunHandle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.runs = append(m.runs, spec)
	f := m.run
	m.mu.Unlock()
	var out []backends.LogLine
	code := 0
	if f != nil {
		out, code = f(spec)
	} else {
		line := ""
		for i, a := range spec.Command {
			if i > 0 {
				line += " "
			}
			line += a
		}
		out = []backends.LogLine{{Proc: spec.Proc.Name, Stream: backends.StreamStdout, Text: line}}
	}
	lines := make(chan backends.LogLine)
	result := make(chan backends.RunResult, 1)
	go func() {
		defer close(result)
		res := backends.RunResult{ExitCode: code}
		for _, l := range out {
			select {
			case lines <- l:
			case <-ctx.Done():
				res = backends.RunResult{ExitCode: 128 + 9, Err: ctx.Err()}
			}
			if res.Err != nil {
				break
			}
		}
		close(lines)
		result <- res
	}()
	return &backends.RunHandle{Lines: lines, Result: result}, nil
}
