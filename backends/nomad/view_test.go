package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// fakeCluster is a stand-in for Nomad's HTTP API as the view and Status
// use it: jobs, allocations and deployments at Raft indexes, their list
// endpoints (X-Nomad-Index), job register and purge, and the event stream
// (an initial heartbeat once subscribed, then the events at or after the
// asked index that its buffer still holds, then new ones). It counts the
// requests other than the stream's, and can break the stream, forget
// events (as Nomad's bounded buffer does) and freeze (accept requests and
// never answer, as an agent under SIGSTOP).
type fakeCluster struct {
	mu       sync.Mutex
	index    uint64
	jobs     map[string]*api.Job
	allocs   map[string]*api.Allocation
	deps     map[string]*api.Deployment
	log      []api.Events
	forgot   uint64        // events at or below this index are no longer in the buffer
	wake     chan struct{} // closed and replaced when an event is added
	cut      chan struct{} // closed to break the open streams
	frozen   chan struct{} // non-nil: every request waits for it
	requests map[string]int
	streams  int // subscriptions so far
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{index: 100, jobs: map[string]*api.Job{}, allocs: map[string]*api.Allocation{}, deps: map[string]*api.Deployment{},
		wake: make(chan struct{}), cut: make(chan struct{}), requests: map[string]int{}}
}

// emit records an event at a new index; mu held.
func (f *fakeCluster) emit(topic, typ, key string, payload any) uint64 {
	f.index++
	b, _ := json.Marshal(payload)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	f.log = append(f.log, api.Events{Index: f.index, Events: []api.Event{{Topic: api.Topic(topic), Type: typ, Key: key, Index: f.index, Payload: m}}})
	close(f.wake)
	f.wake = make(chan struct{})
	return f.index
}

// putJob registers a job (a new version of an existing one).
func (f *fakeCluster) putJob(j *api.Job) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putJobLocked(j)
}

func (f *fakeCluster) putJobLocked(j *api.Job) uint64 {
	i := f.index + 1
	if cur := f.jobs[*j.ID]; cur != nil {
		j.CreateIndex, j.Version = cur.CreateIndex, new(deref(cur.Version)+1)
	} else {
		j.CreateIndex, j.Version = new(i), new(uint64(0))
	}
	j.ModifyIndex, j.JobModifyIndex, j.Stop = new(i), new(i), new(false)
	if j.Type == nil {
		j.Type = new("service")
	}
	f.jobs[*j.ID] = j
	return f.emit(topicJob, "JobRegistered", *j.ID, map[string]any{"Job": j})
}

// purge stops a job with purge: no Job event, a deregistering evaluation.
func (f *fakeCluster) purge(id string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.purgeLocked(id)
}

func (f *fakeCluster) purgeLocked(id string) uint64 {
	delete(f.jobs, id)
	return f.emit(topicEvaluation, "JobDeregistered", "eval-"+id, map[string]any{"Evaluation": api.Evaluation{ID: "eval-" + id, JobID: id}})
}

func (f *fakeCluster) putAlloc(a *api.Allocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.ModifyIndex = f.index + 1
	if a.CreateIndex == 0 {
		a.CreateIndex = a.ModifyIndex
	}
	f.allocs[a.ID] = a
	c := *a
	c.Job = nil // as Nomad's events carry it
	f.emit(topicAllocation, "AllocationUpdated", a.ID, map[string]any{"Allocation": c})
}

func (f *fakeCluster) putDeployment(d *api.Deployment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.ModifyIndex = f.index + 1
	if d.CreateIndex == 0 {
		d.CreateIndex = d.ModifyIndex
	}
	f.deps[d.ID] = d
	f.emit(topicDeployment, "DeploymentStatusUpdate", d.ID, map[string]any{"Deployment": d})
}

// breakStream ends the open streams; with forget, the buffer also loses
// every event until now (and those made before the next subscription).
func (f *fakeCluster) breakStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.cut)
	f.cut = make(chan struct{})
}

func (f *fakeCluster) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = f.index
}

func (f *fakeCluster) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = make(chan struct{})
}

func (f *fakeCluster) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.frozen)
	f.frozen = nil
}

// counted is the number of requests other than the stream's so far.
func (f *fakeCluster) counted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.requests {
		n += c
	}
	return n
}

func (f *fakeCluster) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

func (f *fakeCluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	frozen := f.frozen
	f.mu.Unlock()
	if frozen != nil {
		select {
		case <-frozen:
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == "/v1/event/stream" {
		f.stream(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[r.Method+" "+r.URL.Path]++
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(f.index, 10))
	enc := json.NewEncoder(w)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status/leader":
		_ = enc.Encode("127.0.0.1:4647")
	case r.Method == http.MethodGet && r.URL.Path == "/v1/allocations":
		out := []*api.AllocationListStub{}
		for _, a := range f.allocs {
			st := allocStub(a)
			if j := f.jobs[a.JobID]; j != nil {
				st.JobType, st.JobVersion = *j.Type, *j.Version
			}
			if q := r.URL.Query().Get("filter"); q != "" && q != "JobID == "+strconv.Quote(a.JobID) {
				continue
			}
			out = append(out, st)
		}
		_ = enc.Encode(out)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/deployments":
		out := []*api.Deployment{}
		for _, d := range f.deps {
			out = append(out, d)
		}
		_ = enc.Encode(out)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/jobs":
		out := []*api.JobListStub{}
		for _, j := range f.jobs {
			out = append(out, &api.JobListStub{ID: *j.ID, Name: *j.ID, Type: *j.Type, Meta: j.Meta, Stop: *j.Stop, JobSummary: nil,
				CreateIndex: *j.CreateIndex, ModifyIndex: *j.ModifyIndex, JobModifyIndex: *j.JobModifyIndex})
		}
		_ = enc.Encode(out)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployment"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/job/"), "/deployment")
		var latest *api.Deployment
		for _, d := range f.deps {
			if d.JobID == id && (latest == nil || d.CreateIndex > latest.CreateIndex) {
				latest = d
			}
		}
		_ = enc.Encode(latest)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployments"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/job/"), "/deployments")
		out := []*api.Deployment{}
		for _, d := range f.deps {
			if d.JobID == id {
				out = append(out, d)
			}
		}
		_ = enc.Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/job/"):
		j := f.jobs[strings.TrimPrefix(r.URL.Path, "/v1/job/")]
		if j == nil {
			http.Error(w, "job not found", http.StatusNotFound)
			return
		}
		_ = enc.Encode(j)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/job/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/job/")
		i := f.purgeLocked(id)
		w.Header().Set("X-Nomad-Index", strconv.FormatUint(i, 10))
		_ = enc.Encode(api.JobDeregisterResponse{EvalID: "eval-" + id, JobModifyIndex: i})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && (r.URL.Path == "/v1/jobs" || strings.HasPrefix(r.URL.Path, "/v1/job/")):
		var req api.JobRegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		i := f.putJobLocked(req.Job)
		w.Header().Set("X-Nomad-Index", strconv.FormatUint(i, 10))
		_ = enc.Encode(api.JobRegisterResponse{JobModifyIndex: i})
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
	}
}

// stream serves /v1/event/stream.
func (f *fakeCluster) stream(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	topics := r.URL.Query()["topic"]
	f.mu.Lock()
	f.streams++
	cut := f.cut
	f.mu.Unlock()
	fl := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}\n")) // subscribed
	fl.Flush()
	next := from
	for {
		f.mu.Lock()
		var out []api.Events
		for _, e := range f.log {
			if e.Index >= next && e.Index > f.forgot && slices.Contains(topics, string(e.Events[0].Topic)) {
				out = append(out, e)
			}
		}
		if n := len(f.log); n > 0 {
			next = max(next, f.log[n-1].Index+1)
		}
		wake := f.wake
		f.mu.Unlock()
		for _, e := range out {
			b, _ := json.Marshal(e)
			_, _ = w.Write(append(b, '\n'))
		}
		fl.Flush()
		select {
		case <-wake:
		case <-cut:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// serve starts the fake and a scheduler of cluster "blue" on it, and waits
// until the scheduler's view has synced.
func serve(t *testing.T, f *fakeCluster, staleAfter time.Duration) *Scheduler {
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
	f := newFakeCluster()
	f.putJob(blueJob("hello"))
	f.putAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, time.Minute)
	before := f.counted()

	if got := instanceStates(t, s, "hello"); !slices.Equal(got, []string{"a1=running"}) {
		t.Fatalf("synced: %q, want a1 running", got)
	}
	failed := runningAlloc("hello", "a1", true, 0)
	failed.ClientStatus, failed.ClientDescription = api.AllocClientStatusFailed, "Failed tasks"
	f.putAlloc(failed)
	waitFor(t, "a1 failed", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a1=failed"}) })

	failed.DesiredStatus = api.AllocDesiredStatusStop
	f.putAlloc(failed)
	f.putAlloc(runningAlloc("hello", "a2", false, 0)) // its replacement, not yet healthy
	waitFor(t, "a2 starting", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a2=starting"}) })
	f.putAlloc(runningAlloc("hello", "a2", true, 0))
	waitFor(t, "a2 running", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a2=running"}) })

	// A deployment of the job's version: Status says what it says.
	f.putDeployment(&api.Deployment{ID: "d1", JobID: "hello", JobVersion: 0, JobCreateIndex: 101, Status: api.DeploymentStatusFailed, StatusDescription: "Failed due to unhealthy allocations"})
	waitFor(t, "the deployment failed", func() bool {
		st, err := s.Status(context.Background(), "hello")
		return err == nil && st.Deployment == backends.DeployFailed && strings.Contains(st.Message, "unhealthy")
	})
	if n := f.counted() - before; n != 0 {
		t.Errorf("the reads made %d request(s) to Nomad, want none (the view answers)", n)
	}
}

// TestViewResyncAfterBreak: changes made while the stream is broken, and
// gone from Nomad's event buffer by the time the view subscribes again,
// reach the view through its resync: an allocation that failed, a job
// purged, a job registered, another cluster's job still left out.
func TestViewResyncAfterBreak(t *testing.T) {
	f := newFakeCluster()
	f.putJob(blueJob("hello"))
	f.putJob(blueJob("bye"))
	f.putAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, time.Minute)
	if apps, err := s.Apps(context.Background()); err != nil || !slices.Equal(apps, []string{"bye", "hello"}) {
		t.Fatalf("Apps = %q, %v", apps, err)
	}
	subs := f.subscriptions()

	f.freeze() // the view cannot subscribe again until thawed
	f.breakStream()
	failed := runningAlloc("hello", "a1", true, 0)
	failed.ClientStatus = api.AllocClientStatusFailed
	f.putAlloc(failed)
	f.purge("bye")
	f.putJob(blueJob("new"))
	green := blueJob("theirs")
	green.Meta[MetaCluster] = "green"
	f.putJob(green)
	f.forget() // Nomad's buffer no longer holds these events
	f.thaw()

	waitFor(t, "a new subscription", func() bool { return f.subscriptions() > subs })
	waitFor(t, "the resync", func() bool {
		apps, err := s.Apps(context.Background())
		return err == nil && slices.Equal(apps, []string{"hello", "new"})
	})
	if got := instanceStates(t, s, "hello"); !slices.Equal(got, []string{"a1=failed"}) {
		t.Errorf("after the resync: %q, want a1 failed", got)
	}
	if _, err := s.Status(context.Background(), "bye"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Status of the purged job: %v, want not found", err)
	}
	if _, err := s.Status(context.Background(), "theirs"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Status of another cluster's job: %v, want not found", err)
	}
	// And the stream goes on after the resync.
	f.putAlloc(runningAlloc("hello", "a1", true, 0))
	waitFor(t, "a1 running again", func() bool { return slices.Equal(instanceStates(t, s, "hello"), []string{"a1=running"}) })
}

// TestViewPurgeAndRecreate: a job purged while the stream is up leaves the
// view (it has no Job event, only its deregistering evaluation), and the
// job registered again under the same ID is a new job whose deployments
// are its own.
func TestViewPurgeAndRecreate(t *testing.T) {
	f := newFakeCluster()
	f.putJob(blueJob("hello"))
	s := serve(t, f, time.Minute)
	f.mu.Lock()
	create := *f.jobs["hello"].CreateIndex
	f.mu.Unlock()
	f.putDeployment(&api.Deployment{ID: "old", JobID: "hello", JobVersion: 0, JobCreateIndex: create, Status: api.DeploymentStatusSuccessful})
	waitFor(t, "running", func() bool {
		st, err := s.Status(context.Background(), "hello")
		return err == nil && st.Deployment == backends.DeployRunning
	})
	f.purge("hello")
	waitFor(t, "purged", func() bool {
		_, err := s.Status(context.Background(), "hello")
		return errors.Is(err, backends.ErrNotFound)
	})
	f.putJob(blueJob("hello"))
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
		f := newFakeCluster()
		for i := range n {
			app := fmt.Sprintf("app%03d", i)
			f.putJob(blueJob(app))
			f.putAlloc(runningAlloc(app, app+"-a", true, 0))
		}
		s := serve(t, f, time.Minute)
		synced := f.counted()
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
		if d := f.counted() - before; d != 0 {
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
	f := newFakeCluster()
	f.putJob(blueJob("hello"))
	f.putAlloc(runningAlloc("hello", "a1", true, 0))
	s := serve(t, f, 300*time.Millisecond)
	if _, err := s.Status(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	f.freeze()
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
	f.thaw()
	waitFor(t, "current again", func() bool {
		_, err := s.Status(context.Background(), "hello")
		return err == nil
	})
}

// TestStatusReadsItsOwnWrites: a Status right after a Submit sees the
// submitted version (the view waits for the write's index).
func TestStatusReadsItsOwnWrites(t *testing.T) {
	f := newFakeCluster()
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
