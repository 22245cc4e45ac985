package reconciler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// flakyScheduler is a MemScheduler that can be down (every call fails
// with backends.ErrUnavailable, as Nomad's does when its agent is
// stopped), and whose reported deployment state can be set per app.
type flakyScheduler struct {
	*reconcilertest.MemScheduler
	mu         sync.Mutex
	down       bool
	failed     int                             // submits refused while down
	deployment map[string]backends.DeployState // app -> reported deployment state ("" = running)
}

func newFlaky() *flakyScheduler {
	return &flakyScheduler{MemScheduler: reconcilertest.NewMemScheduler(), deployment: map[string]backends.DeployState{}}
}

func (f *flakyScheduler) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flakyScheduler) failedSubmits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *flakyScheduler) setDeployment(app string, st backends.DeployState) {
	f.mu.Lock()
	f.deployment[app] = st
	f.mu.Unlock()
}

func (f *flakyScheduler) isDown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("nomad: register: %w: dial tcp 127.0.0.1:4646: connect: connection refused", backends.ErrUnavailable)
	}
	return nil
}

func (f *flakyScheduler) Submit(ctx context.Context, spec *backends.AppSpec) error {
	if err := f.isDown(); err != nil {
		f.mu.Lock()
		f.failed++
		f.mu.Unlock()
		return err
	}
	return f.MemScheduler.Submit(ctx, spec)
}

func (f *flakyScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	if err := f.isDown(); err != nil {
		return nil, err
	}
	st, err := f.MemScheduler.Status(ctx, app)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if d := f.deployment[app]; d != "" {
		st.Deployment = d
	}
	f.mu.Unlock()
	return st, nil
}

func (f *flakyScheduler) Stop(ctx context.Context, app string) error {
	if err := f.isDown(); err != nil {
		return err
	}
	return f.MemScheduler.Stop(ctx, app)
}

func (f *flakyScheduler) Apps(ctx context.Context) ([]string, error) {
	if err := f.isDown(); err != nil {
		return nil, err
	}
	return f.MemScheduler.Apps(ctx)
}

const mv2 = "1700000001-89abcdef0123456789abcdef0123456789abcdef"

// addRelease stores release mv2 of app, as a push would.
func addRelease(t *testing.T, s *rig, app string) {
	t.Helper()
	if _, err := state.Create(context.Background(), s.store, state.ReleaseKey(app, mv2), reconcilertest.Release(app, mv2)); err != nil {
		t.Fatal(err)
	}
}

func (s *rig) deploy(t *testing.T, app string) *state.Deploy {
	t.Helper()
	d, err := s.eng.GetDeploy(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSubmitRetriedWhenSchedulerReturns (issue 12, defect 1): a deploy
// whose submit fails because the scheduler is down is not recorded as
// applied nor failed; it is submitted again with backoff, without a sweep
// or a restart, and converges when the scheduler answers again: the
// scheduler runs the new version and the deploy record says running.
func TestSubmitRetriedWhenSchedulerReturns(t *testing.T) {
	sched := newFlaky()
	s := newRig(t, sched, nil)
	s.cfg.Reconcile.IntervalDur = time.Hour // no sweep: only the retry may converge it
	const app = "app00000"
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	s.start()
	waitFor(t, "the first submit", func() bool { _, ok := sched.Spec(app); return ok })
	addRelease(t, s, app)

	sched.setDown(true)
	ctx := context.Background()
	admin := &engine.Identity{Email: reconcilertest.Owner, Admin: true}
	if _, err := s.eng.DeployVersion(ctx, admin, app, mv2, engine.DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a submit refused by the scheduler that is down", func() bool { return sched.failedSubmits() >= 1 })
	waitFor(t, "a second try while the scheduler is down", func() bool { return sched.failedSubmits() >= 2 })
	if d := s.deploy(t, app); d.State == state.DeployFailed || d.State == state.DeployRunning {
		t.Fatalf("while the scheduler is down the deploy is %s (%s), want it still under way", d.State, d.Message)
	}

	sched.setDown(false)
	waitFor(t, "the scheduler to run the new version", func() bool { mv, _ := sched.Spec(app); return mv == mv2 })
	waitFor(t, "the deploy record to say running", func() bool {
		d := s.deploy(t, app)
		return d.State == state.DeployRunning && d.MetaVersion == mv2
	})
}

// TestSweepResubmitsChangedVersion (issue 12, defect 1): a sweep submits
// again an app whose job the scheduler runs at another version than the
// desired one (changed behind Berth's back), not only a missing one.
func TestSweepResubmitsChangedVersion(t *testing.T) {
	sched := newFlaky()
	s := newRig(t, sched, nil)
	const app = "app00000"
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	ctx := context.Background()
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if mv, _ := sched.Spec(app); mv != reconcilertest.MV {
		t.Fatalf("first pass submitted %q", mv)
	}
	// Someone registers another version of the job behind Berth's back.
	other := *sched.AppSpec(app)
	other.MetaVersion = mv2
	if err := sched.MemScheduler.Submit(ctx, &other); err != nil {
		t.Fatal(err)
	}
	res, err := s.rec.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mv, _ := sched.Spec(app); mv != reconcilertest.MV {
		t.Fatalf("after a sweep the scheduler runs %q (pass: %+v), want the desired %q", mv, res, reconcilertest.MV)
	}
}

// TestSweepLeavesFailedOnceRunning (issue 12, defect 2): a deploy recorded
// failed whose release the scheduler later runs healthy at the desired
// version (a newer deployment succeeded) is recorded running by the sweep;
// while the scheduler says deploying it stays failed.
func TestSweepLeavesFailedOnceRunning(t *testing.T) {
	sched := newFlaky()
	s := newRig(t, sched, nil)
	const app = "app00000"
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	ctx := context.Background()
	sched.setDeployment(app, backends.DeployFailed)
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := state.GetApp(ctx, s.store, app)
	if err != nil {
		t.Fatal(err)
	}
	s.rec.finish(ctx, a, state.DeployFailed, "progress deadline passed")
	if d := s.deploy(t, app); d.State != state.DeployFailed {
		t.Fatalf("deploy %s", d.State)
	}

	sched.setDeployment(app, backends.DeployDeploying) // a new deployment under way
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.deploy(t, app); d.State != state.DeployFailed {
		t.Fatalf("with the new deployment under way the deploy is %s, want still failed", d.State)
	}
	sched.setDeployment(app, backends.DeployRunning) // ... and it succeeded
	if _, err := s.rec.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.deploy(t, app); d.State != state.DeployRunning || d.LastRunning != reconcilertest.MV {
		t.Fatalf("after the new deployment succeeded the deploy is %s (last running %q), want running", d.State, d.LastRunning)
	}
}
