package reconciler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// progressingScheduler is a MemScheduler whose apps stay deploying, with
// the scheduler's own progress deadline at progressBy.
type progressingScheduler struct {
	*reconcilertest.MemScheduler
	mu         sync.Mutex
	progressBy time.Time
}

func (p *progressingScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	st, err := p.MemScheduler.Status(ctx, app)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Deployment, st.ProgressBy = "deploying", p.progressBy
	for i := range st.Instances {
		st.Instances[i].State = backends.StateStarting
	}
	return st, nil
}

func (p *progressingScheduler) setProgressBy(t time.Time) {
	p.mu.Lock()
	p.progressBy = t
	p.mu.Unlock()
}

// TestReconcilerFollowsSchedulerDeadline: a scheduler that keeps its own
// progress deadline (Nomad's, moved on by every newly healthy allocation)
// moves the deploy's deadline, and the app's lease, to just after it, so
// Berth neither fails a rollout that is making progress nor races the
// scheduler's own failure and revert. Berth's deadline never moves back.
func TestReconcilerFollowsSchedulerDeadline(t *testing.T) {
	sched := &progressingScheduler{MemScheduler: reconcilertest.NewMemScheduler()}
	s := newRig(t, sched, nil)
	s.cfg.Reconcile.IntervalDur = time.Hour
	s.cfg.Reconcile.ProgressDeadlineDur = 2 * time.Second
	const app = "app00000"
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	ctx := context.Background()
	// The app holds its lease for the deploy (generation 1), as a deploy
	// request leaves it.
	if _, err := state.Create(ctx, s.store, state.LockKey(app), &state.Lock{Holder: "test", Operation: "deploy", Generation: 1, Expires: time.Now().Add(time.Second).UTC()}); err != nil {
		t.Fatal(err)
	}
	deploy := func() *state.Deploy {
		d, err := s.eng.GetDeploy(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	s.start()
	waitFor(t, "the deploy to be deploying with a deadline", func() bool {
		d := deploy()
		return d != nil && d.State == state.DeployDeploying && d.Deadline != nil
	})
	first := *deploy().Deadline

	// The scheduler's deadline is later: Berth's follows it, with grace.
	by := time.Now().Add(time.Minute).Round(time.Second)
	sched.setProgressBy(by)
	want := by.Add(SchedulerDeadlineGrace)
	waitFor(t, "the deadline to follow the scheduler's", func() bool { return deploy().Deadline.Equal(want) })
	if l, _, err := state.Get[state.Lock](ctx, s.store, state.LockKey(app)); err != nil || l.Expires.Before(want) {
		t.Errorf("the app's lease lasts until %v (%v), not past the deploy's deadline %v", l.Expires, err, want)
	}
	// Past Berth's first deadline the deploy is still under way.
	time.Sleep(time.Until(first) + time.Second)
	if d := deploy(); d.State != state.DeployDeploying {
		t.Fatalf("past its first deadline, with the scheduler's deadline ahead, the deploy is %s: %s", d.State, d.Message)
	}
	// An earlier scheduler deadline does not move Berth's back.
	sched.setProgressBy(time.Now())
	time.Sleep(time.Second)
	if d := deploy(); !d.Deadline.Equal(want) || d.State != state.DeployDeploying {
		t.Errorf("after the scheduler's deadline moved back the deploy is %s with deadline %v, want deploying until %v", d.State, d.Deadline, want)
	}
}
