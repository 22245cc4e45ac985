package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// frozenScheduler is a MemScheduler whose Status can hang until its
// caller gives up, as a Nomad agent stopped with SIGSTOP does.
type frozenScheduler struct {
	*reconcilertest.MemScheduler
	mu     sync.Mutex
	frozen bool
}

func (f *frozenScheduler) freeze(on bool) {
	f.mu.Lock()
	f.frozen = on
	f.mu.Unlock()
}

func (f *frozenScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	f.mu.Lock()
	frozen := f.frozen
	f.mu.Unlock()
	if frozen {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.MemScheduler.Status(ctx, app)
}

// TestGetDeployedWhenSchedulerFrozen (issue 12, defect 3): with the
// scheduler not answering, reading a deployed app answers (within the
// scheduler deadline) from the scheduler's last known state, saying since
// when the scheduler has not answered and how old that state is.
func TestGetDeployedWhenSchedulerFrozen(t *testing.T) {
	sched := &frozenScheduler{MemScheduler: reconcilertest.NewMemScheduler()}
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.SchedulerTimeoutDur = 300 * time.Millisecond
		d.Scheduler, d.SchedulerName = sched, "mem"
	})
	ctx := context.Background()
	const app = "app00000"
	reconcilertest.SeedApps(t, e.Store(), "app", 1, true)
	if err := sched.Submit(ctx, &backends.AppSpec{App: app, MetaVersion: reconcilertest.MV, Procs: []backends.ProcSpec{{Name: "web", Type: backends.ProcWeb, Instances: 2}}}); err != nil {
		t.Fatal(err)
	}
	admin := &Identity{Email: reconcilertest.Owner, Admin: true}
	units := func(d *DeployedApp) int {
		n := 0
		for _, p := range d.Procs {
			n += len(p.Units)
		}
		return n
	}
	d, err := e.GetDeployed(ctx, admin, app)
	if err != nil {
		t.Fatal(err)
	}
	if d.SchedulerStale != nil || units(d) != 2 {
		t.Fatalf("with the scheduler answering: stale %+v, %d units, want none and 2", d.SchedulerStale, units(d))
	}

	sched.freeze(true)
	get := func() *DeployedApp {
		t.Helper()
		type res struct {
			d   *DeployedApp
			err error
		}
		c := make(chan res, 1)
		go func() { d, err := e.GetDeployed(ctx, admin, app); c <- res{d, err} }()
		select {
		case r := <-c:
			if r.err != nil {
				t.Fatalf("with the scheduler frozen GetDeployed failed: %v", r.err)
			}
			return r.d
		case <-time.After(30 * time.Second):
			t.Fatal("with the scheduler frozen GetDeployed did not answer in 30s")
			return nil
		}
	}
	d = get()
	if d.SchedulerStale == nil {
		t.Fatal("with the scheduler frozen the answer does not say the scheduler did not answer")
	}
	if units(d) != 2 || d.SchedulerStale.AsOf.IsZero() || d.SchedulerStale.Since.Before(d.SchedulerStale.AsOf) || d.SchedulerStale.Error == "" {
		t.Fatalf("stale answer: %d units, %+v; want the 2 last known units, when they were read, since when, and why", units(d), d.SchedulerStale)
	}
	since := d.SchedulerStale.Since
	time.Sleep(schedulerRetryAfter) // the next read asks the scheduler again
	if d := get(); d.SchedulerStale == nil || !d.SchedulerStale.Since.Equal(since) {
		t.Fatalf("a second read while frozen: %+v, want stale since %v", d.SchedulerStale, since)
	}

	sched.freeze(false)
	time.Sleep(schedulerRetryAfter)
	if d := get(); d.SchedulerStale != nil || units(d) != 2 {
		t.Fatalf("with the scheduler back: stale %+v, %d units", d.SchedulerStale, units(d))
	}
}

// staleScheduler answers Status from a view it cannot keep current, as
// the Nomad scheduler does when its event stream broke.
type staleScheduler struct {
	*reconcilertest.MemScheduler
	asOf, since time.Time
}

func (f *staleScheduler) Status(ctx context.Context, app string) (*backends.AppStatus, error) {
	st, err := f.MemScheduler.Status(ctx, app)
	if err != nil {
		return nil, err
	}
	return nil, &backends.StaleStatus{Status: st, AsOf: f.asOf, Since: f.since, Err: errors.New("event stream broken")}
}

// TestStaleStatusFromTheScheduler: a scheduler's own stale answer (its
// view's last state and age) is what reads show, with scheduler_stale
// saying as of when, on the app page and in the lists alike.
func TestStaleStatusFromTheScheduler(t *testing.T) {
	asOf := time.Now().Add(-time.Minute).UTC()
	sched := &staleScheduler{MemScheduler: reconcilertest.NewMemScheduler(), asOf: asOf, since: asOf.Add(time.Second)}
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) { d.Scheduler, d.SchedulerName = sched, "mem" })
	ctx := context.Background()
	reconcilertest.SeedApps(t, e.Store(), "app", 2, true)
	for _, app := range []string{"app00000", "app00001"} {
		if err := sched.Submit(ctx, &backends.AppSpec{App: app, MetaVersion: reconcilertest.MV, Procs: []backends.ProcSpec{{Name: "web", Type: backends.ProcWeb, Instances: 2}}}); err != nil {
			t.Fatal(err)
		}
	}
	admin := &Identity{Email: reconcilertest.Owner, Admin: true}
	list, err := e.ListDeployed(ctx, admin, "")
	if err != nil || len(list) != 2 {
		t.Fatalf("ListDeployed: %d apps, %v", len(list), err)
	}
	for _, d := range list {
		n := 0
		for _, p := range d.Procs {
			n += len(p.Units)
		}
		if st := d.SchedulerStale; st == nil || !st.AsOf.Equal(asOf) || !st.Since.Equal(asOf.Add(time.Second)) || !strings.Contains(st.Error, "event stream broken") || n != 2 {
			t.Errorf("%s: stale %+v with %d units, want the scheduler's view as of %v with its 2 units", d.App.Name, st, n, asOf)
		}
	}
	apps, err := e.ListApps(ctx, admin)
	if err != nil || len(apps) != 2 {
		t.Fatalf("ListApps: %d, %v", len(apps), err)
	}
	for _, a := range apps {
		if len(a.Units) != 2 || a.State != "running" {
			t.Errorf("%s: %d units, state %q; want the view's 2 units and its state", a.App.Name, len(a.Units), a.State)
		}
	}
}
