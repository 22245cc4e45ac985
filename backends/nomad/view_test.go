package nomad

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/nomad/nomadfake"
)

// serve starts the fake and a scheduler of cluster "blue" on it, and waits
// until the scheduler's view has synced.
func serve(t *testing.T, f *nomadfake.Cluster, staleAfter time.Duration) *Scheduler {
	t.Helper()
	srv := httptest.NewServer(f)
	s, err := New(Config{Address: srv.URL, ClusterID: "blue", CallTimeout: 2 * time.Second, StaleAfter: staleAfter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	waitFor(t, "the view's first sync", func() bool {
		s.view.mu.Lock()
		defer s.view.mu.Unlock()
		return s.view.ready
	})
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}

func blueJob(app string) *api.Job {
	return &api.Job{ID: new(app), Name: new(app), Type: new("service"),
		Meta:       map[string]string{MetaApp: app, MetaCluster: "blue", MetaVersion: "v1"},
		TaskGroups: []*api.TaskGroup{{Name: new("web"), Count: new(1)}}}
}

func runningAlloc(app, id string, healthy bool, version uint64) *api.Allocation {
	return &api.Allocation{ID: id, Name: app + ".web[0]", JobID: app, TaskGroup: "web", DesiredStatus: api.AllocDesiredStatusRun,
		ClientStatus: api.AllocClientStatusRunning, DeploymentStatus: &api.AllocDeploymentStatus{Healthy: map[bool]*bool{true: new(true)}[healthy]},
		Job: &api.Job{Type: new("service"), Version: new(version)}}
}

// instanceStates is app's instances as "<id>=<state>".
func instanceStates(t *testing.T, s *Scheduler, app string) []string {
	t.Helper()
	st, err := s.Status(context.Background(), app)
	if err != nil {
		t.Fatalf("Status(%s): %v", app, err)
	}
	var out []string
	for _, in := range st.Instances {
		out = append(out, in.ID+"="+string(in.State))
	}
	return out
}

// TestViewFollowsAllocationStates: the instances Status reports follow
// an allocation from running to failed and a new one to running, from
// Nomad's events alone: no request to Nomad per read.
func TestViewFollowsAllocationStates(t *testing.T) {
	f := nomadfake.NewCluster()
	f.PutJob(blueJob("hello"))
	f.PutAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, time.Minute)
	before := f.Requests()

	if got := instanceStates(t, s, "hello"); !slices.Equal(got, []string{"a1=running"}) {
		t.Fatalf("synced: %q, want a1 running", got)
	}
	failed := runningAlloc("hello", "a1", true, 0)
	failed.ClientStatus, failed.ClientDescription = api.AllocClientStatusFailed, "Failed tasks"
	f.PutAlloc(failed)
	waitFor(t, "a1 failed", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a1=failed"}) })

	failed.DesiredStatus = api.AllocDesiredStatusStop
	f.PutAlloc(failed)
	f.PutAlloc(runningAlloc("hello", "a2", false, 0)) // its replacement, not yet healthy
	waitFor(t, "a2 starting", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a2=starting"}) })
	f.PutAlloc(runningAlloc("hello", "a2", true, 0))
	waitFor(t, "a2 running", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a2=running"}) })

	// A deployment of the job's version: Status says what it says.
	f.PutDeployment(&api.Deployment{ID: "d1", JobID: "hello", JobVersion: 0, JobCreateIndex: 101, Status: api.DeploymentStatusFailed, StatusDescription: "Failed due to unhealthy allocations"})
	waitFor(t, "the deployment failed", func() bool {
		st, err := s.Status(context.Background(), "hello")
		return err == nil && st.Deployment == backends.DeployFailed && strings.Contains(st.Message, "unhealthy")
	})
	if n := f.Requests() - before; n != 0 {
		t.Errorf("the reads made %d request(s) to Nomad, want none (the view answers)", n)
	}
}

// TestViewResyncAfterBreak: changes made while the stream is broken, and
// gone from Nomad's event buffer by the time the view subscribes again,
// reach the view through its resync: an allocation that failed, a job
// purged, a job registered, another cluster's job still left out.
func TestViewResyncAfterBreak(t *testing.T) {
	f := nomadfake.NewCluster()
	f.PutJob(blueJob("hello"))
	f.PutJob(blueJob("bye"))
	f.PutAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, time.Minute)
	if apps, err := s.Apps(context.Background()); err != nil || !slices.Equal(apps, []string{"bye", "hello"}) {
		t.Fatalf("Apps = %q, %v", apps, err)
	}
	subs := f.Subscriptions()
	reads := f.RequestsByPath()["GET /v1/job/hello"]

	f.Freeze() // the view cannot subscribe again until thawed
	f.BreakStream()
	failed := runningAlloc("hello", "a1", true, 0)
	failed.ClientStatus = api.AllocClientStatusFailed
	f.PutAlloc(failed)
	f.Purge("bye")
	f.PutJob(blueJob("new"))
	green := blueJob("theirs")
	green.Meta[MetaCluster] = "green"
	f.PutJob(green)
	f.Forget() // Nomad's buffer no longer holds these events
	f.Thaw()

	waitFor(t, "a new subscription", func() bool { return f.Subscriptions() > subs })
	waitFor(t, "the resync", func() bool {
		apps, err := s.Apps(context.Background())
		return err == nil && slices.Equal(apps, []string{"hello", "new"})
	})
	if got := instanceStates(t, s, "hello"); !slices.Equal(got, []string{"a1=failed"}) {
		t.Errorf("after the resync: %q, want a1 failed", got)
	}
	// The resync read the definition of the new job only, not again
	// that of a job it held at the listed index.
	if by := f.RequestsByPath(); by["GET /v1/job/hello"] != reads || by["GET /v1/job/new"] != 1 {
		t.Errorf("the resync read job hello %d more time(s) and job new %d time(s), want 0 and 1", by["GET /v1/job/hello"]-reads, by["GET /v1/job/new"])
	}
	if _, err := s.Status(context.Background(), "bye"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Status of the purged job: %v, want not found", err)
	}
	if _, err := s.Status(context.Background(), "theirs"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Status of another cluster's job: %v, want not found", err)
	}
	// And the stream goes on after the resync.
	f.PutAlloc(runningAlloc("hello", "a1", true, 0))
	waitFor(t, "a1 running again", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a1=running"}) })
}

// TestViewPurgeAndRecreate: a job purged while the stream is up leaves the
// view (it has no Job event, only its deregistering evaluation), and the
// job registered again under the same ID is a new job whose deployments
// are its own.
func TestViewPurgeAndRecreate(t *testing.T) {
	f := nomadfake.NewCluster()
	f.PutJob(blueJob("hello"))
	s := serve(t, f, time.Minute)
	create := f.JobCreateIndex("hello")
	f.PutDeployment(&api.Deployment{ID: "old", JobID: "hello", JobVersion: 0, JobCreateIndex: create, Status: api.DeploymentStatusSuccessful})
	waitFor(t, "running", func() bool {
		st, err := s.Status(context.Background(), "hello")
		return err == nil && st.Deployment == backends.DeployRunning
	})
	f.Purge("hello")
	waitFor(t, "purged", func() bool {
		_, err := s.Status(context.Background(), "hello")
		return errors.Is(err, backends.ErrNotFound)
	})
	f.PutJob(blueJob("hello"))
	waitFor(t, "registered again", func() bool {
		st, err := s.Status(context.Background(), "hello")
		return err == nil && st.Deployment == backends.DeployDeploying
	})
}

// TestListOfAppsCostsNoNomadRequest: reading N apps (Apps, then Status of
// each, as the app lists do) makes no request to Nomad, whatever N; only
// the view's sync costs requests (its lists and each job's definition,
// once).
func TestListOfAppsCostsNoNomadRequest(t *testing.T) {
	for _, n := range []int{5, 50} {
		f := nomadfake.NewCluster()
		for i := range n {
			app := fmt.Sprintf("app%03d", i)
			f.PutJob(blueJob(app))
			f.PutAlloc(runningAlloc(app, app+"-a", true, 0))
		}
		s := serve(t, f, time.Minute)
		synced := f.Requests()
		before := synced
		for round := range 3 {
			apps, err := s.Apps(context.Background())
			if err != nil || len(apps) != n {
				t.Fatalf("n=%d: Apps = %d apps, %v", n, len(apps), err)
			}
			for _, app := range apps {
				if got := instanceStates(t, s, app); !slices.Equal(got, []string{app + "-a=running"}) {
					t.Fatalf("n=%d round %d: %s: %q", n, round, app, got)
				}
			}
		}
		if d := f.Requests() - before; d != 0 {
			t.Errorf("n=%d: three lists of %d apps made %d Nomad request(s), want 0", n, n, d)
		}
		t.Logf("n=%d: the sync made %d requests; three lists of every app made none", n, synced)
	}
}

// TestViewStaleWhenNomadFreezes: with Nomad frozen (requests accepted,
// never answered), Status answers at once from the view with a
// StaleStatus carrying the last known state and since when; once Nomad
// answers again the view is current again.
func TestViewStaleWhenNomadFreezes(t *testing.T) {
	f := nomadfake.NewCluster()
	f.PutJob(blueJob("hello"))
	f.PutAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, 300*time.Millisecond)
	if _, err := s.Status(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	f.Freeze()
	var stale *backends.StaleStatus
	waitFor(t, "a stale answer", func() bool {
		_, err := s.Status(context.Background(), "hello")
		return errors.As(err, &stale)
	})
	if !errors.Is(stale, backends.ErrUnavailable) {
		t.Errorf("a stale answer does not match ErrUnavailable: %v", stale)
	}
	if stale.Status == nil || len(stale.Status.Instances) != 1 || stale.Status.Instances[0].State != backends.StateRunning {
		t.Errorf("the stale answer's state: %+v, want the last known (a1 running)", stale.Status)
	}
	if stale.AsOf.IsZero() || time.Since(stale.AsOf) < 300*time.Millisecond {
		t.Errorf("stale as of %v, want older than the bound", stale.AsOf)
	}
	if _, err := s.Apps(context.Background()); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Apps with a stale view: %v, want unavailable (the reconciler must not act on it)", err)
	}
	f.Thaw()
	waitFor(t, "current again", func() bool {
		_, err := s.Status(context.Background(), "hello")
		return err == nil
	})
}

// TestStatusReadsItsOwnWrites: a Status right after a Submit sees the
// submitted version (the view waits for the write's index).
func TestStatusReadsItsOwnWrites(t *testing.T) {
	f := nomadfake.NewCluster()
	s := serve(t, f, time.Minute)
	for i, mv := range []string{"v1", "v2", "v3"} {
		spec := testApp(t, "hello")
		spec.MetaVersion = mv
		if err := s.Submit(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		st, err := s.Status(context.Background(), "hello")
		if err != nil || st.MetaVersion != mv {
			t.Fatalf("submit %d: Status right after = %+v, %v; want %s", i, st, err, mv)
		}
	}
	if err := s.Stop(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(context.Background(), "hello"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Status right after Stop: %v, want not found", err)
	}
}
