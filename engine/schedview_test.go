package engine

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends/nomad"
	"github.com/berthpaas/berth/backends/nomad/nomadfake"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// TestAppListsOnNomadMakeNoRequestPerApp (issue 12): the app lists of
// both surfaces (GET /apps, GET /api/v1/apps/) and the app page take
// instance states from the Nomad scheduler's view fed by the event
// stream: listing N apps makes no Nomad request at all, whatever N (it
// made several per app, each list, before).
func TestAppListsOnNomadMakeNoRequestPerApp(t *testing.T) {
	for _, n := range []int{10, 40} {
		f := nomadfake.NewCluster()
		srv := httptest.NewServer(f)
		sched, err := nomad.New(nomad.Config{Address: srv.URL, CallTimeout: 2 * time.Second, StaleAfter: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) { d.Scheduler, d.SchedulerName = sched, "nomad" })
		t.Cleanup(func() { _ = sched.Close(); srv.CloseClientConnections(); srv.Close() })
		reconcilertest.SeedApps(t, e.Store(), "app", n, true)
		for i := range n {
			app := fmt.Sprintf("app%05d", i)
			f.PutJob(&api.Job{ID: new(app), Name: new(app), Type: new("service"),
				Meta:       map[string]string{nomad.MetaApp: app, nomad.MetaVersion: reconcilertest.MV},
				TaskGroups: []*api.TaskGroup{{Name: new("web"), Count: new(1)}}})
			f.PutAlloc(&api.Allocation{ID: app + "-a", Name: app + ".web[0]", JobID: app, TaskGroup: "web",
				DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning,
				Job: &api.Job{Type: new("service"), Version: new(uint64(0))}})
		}
		// Once the view has synced (which costs requests, once) and holds
		// the last allocation: a read then makes no request.
		ctx := context.Background()
		last := fmt.Sprintf("app%05d", n-1)
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			r0 := f.Requests()
			st, err := sched.Status(ctx, last)
			if err == nil && len(st.Instances) == 1 && f.Requests() == r0 {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("n=%d: the scheduler's view did not hold the %d apps within 20s", n, n)
			}
		}
		admin := &Identity{Email: reconcilertest.Owner, Admin: true}
		before := f.Requests()
		apps, err := e.ListApps(ctx, admin)
		if err != nil || len(apps) != n {
			t.Fatalf("n=%d: ListApps: %d apps, %v", n, len(apps), err)
		}
		for _, a := range apps {
			if len(a.Units) != 1 || a.Units[0].State != "running" {
				t.Fatalf("n=%d: %s: units %+v, want its running allocation", n, a.App.Name, a.Units)
			}
		}
		deployed, err := e.ListDeployed(ctx, admin, "")
		if err != nil || len(deployed) != n {
			t.Fatalf("n=%d: ListDeployed: %d apps, %v", n, len(deployed), err)
		}
		for _, d := range deployed {
			units := 0
			for _, p := range d.Procs {
				units += len(p.Units)
			}
			if units != 1 || d.SchedulerStale != nil {
				t.Fatalf("n=%d: %s: %d units, stale %+v; want its one running allocation, current", n, d.App.Name, units, d.SchedulerStale)
			}
		}
		if _, err := e.GetDeployed(ctx, admin, "app00000"); err != nil {
			t.Fatal(err)
		}
		if got := f.Requests() - before; got != 0 {
			t.Errorf("n=%d: two lists of %d apps and an app page made %d Nomad requests, want 0 (so far: %v)", n, n, got, f.RequestsByPath())
		}
	}
}
