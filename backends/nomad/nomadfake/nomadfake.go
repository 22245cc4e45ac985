// Package nomadfake is a stand-in for Nomad's HTTP API, for tests of
// Berth's Nomad scheduler and of what reads through it: jobs,
// allocations and deployments at Raft indexes, their list endpoints, job
// register and purge, and the event stream.
package nomadfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/nomad/api"
)

// Cluster is a stand-in for Nomad's HTTP API as the view and Status
// use it: jobs, allocations and deployments at Raft indexes, their list
// endpoints (X-Nomad-Index), job register and purge, and the event stream
// (an initial heartbeat once subscribed, then the events at or after the
// asked index that its buffer still holds, then new ones). It counts the
// requests other than the stream's, and can break the stream, forget
// events (as Nomad's bounded buffer does) and freeze (accept requests and
// never answer, as an agent under SIGSTOP).
type Cluster struct {
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
	streams  int    // subscriptions so far
	held     uint64 // non-zero: events above this index are not streamed until Release
}

func NewCluster() *Cluster {
	return &Cluster{index: 100, jobs: map[string]*api.Job{}, allocs: map[string]*api.Allocation{}, deps: map[string]*api.Deployment{},
		wake: make(chan struct{}), cut: make(chan struct{}), requests: map[string]int{}}
}

// emit records an event at a new index; mu held.
func (f *Cluster) emit(topic, typ, key string, payload any) uint64 {
	f.index++
	b, _ := json.Marshal(payload)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	f.log = append(f.log, api.Events{Index: f.index, Events: []api.Event{{Topic: api.Topic(topic), Type: typ, Key: key, Index: f.index, Payload: m}}})
	close(f.wake)
	f.wake = make(chan struct{})
	return f.index
}

// PutJob registers a job (a new version of an existing one).
func (f *Cluster) PutJob(j *api.Job) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putJobLocked(j)
}

func (f *Cluster) putJobLocked(j *api.Job) uint64 {
	i := f.index + 1
	if cur := f.jobs[*j.ID]; cur != nil {
		j.CreateIndex, j.Version = cur.CreateIndex, ptr(*cur.Version+1)
	} else {
		j.CreateIndex, j.Version = ptr(i), ptr(uint64(0))
	}
	j.ModifyIndex, j.JobModifyIndex, j.Stop = ptr(i), ptr(i), ptr(false)
	if j.Type == nil {
		j.Type = ptr("service")
	}
	f.jobs[*j.ID] = j
	return f.emit("Job", "JobRegistered", *j.ID, map[string]any{"Job": j})
}

// Purge stops a job with purge: no Job event, a deregistering evaluation.
func (f *Cluster) Purge(id string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.purgeLocked(id)
}

func (f *Cluster) purgeLocked(id string) uint64 {
	delete(f.jobs, id)
	return f.emit("Evaluation", "JobDeregistered", "eval-"+id, map[string]any{"Evaluation": api.Evaluation{ID: "eval-" + id, JobID: id}})
}

// PutAlloc creates or updates an allocation (its Job, if set, gives the
// list stub's job type and version; the event carries none, as Nomad's).
func (f *Cluster) PutAlloc(a *api.Allocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.ModifyIndex = f.index + 1
	if a.CreateIndex == 0 {
		a.CreateIndex = a.ModifyIndex
	}
	f.allocs[a.ID] = a
	c := *a
	c.Job = nil // as Nomad's events carry it
	f.emit("Allocation", "AllocationUpdated", a.ID, map[string]any{"Allocation": c})
}

// PutDeployment creates or updates a deployment.
func (f *Cluster) PutDeployment(d *api.Deployment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.ModifyIndex = f.index + 1
	if d.CreateIndex == 0 {
		d.CreateIndex = d.ModifyIndex
	}
	f.deps[d.ID] = d
	f.emit("Deployment", "DeploymentStatusUpdate", d.ID, map[string]any{"Deployment": d})
}

// BreakStream ends the open streams.
func (f *Cluster) BreakStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.cut)
	f.cut = make(chan struct{})
}

// Forget drops every event until now from the buffer (as Nomad's bounded
// buffer loses the oldest): a subscription no longer gets them.
func (f *Cluster) Forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = f.index
}

// Freeze makes every request wait, unanswered, until Thaw.
func (f *Cluster) Freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = make(chan struct{})
}

// Thaw answers again.
func (f *Cluster) Thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.frozen)
	f.frozen = nil
}

// Hold stops streaming new events (the stream stays up, heartbeats
// aside): a subscriber falls behind, as one does behind a busy Nomad,
// until Release.
func (f *Cluster) Hold() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = f.index
	if f.held == 0 {
		f.held = 1
	}
}

// Release streams the events held since Hold.
func (f *Cluster) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = 0
	close(f.wake)
	f.wake = make(chan struct{})
}

// Requests is the number of requests other than the stream's so far.
func (f *Cluster) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.requests {
		n += c
	}
	return n
}

// Subscriptions is the number of event stream subscriptions so far.
func (f *Cluster) Subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams
}

// ServeHTTP serves Nomad's HTTP API.
func (f *Cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
			st := stub(a)
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
		if req.EnforceIndex {
			// As Nomad's job register endpoint checks it.
			cur := f.jobs[*req.Job.ID]
			switch {
			case cur != nil && req.JobModifyIndex == 0:
				http.Error(w, "Enforcing job modify index 0: job already exists", http.StatusInternalServerError)
				return
			case cur != nil && req.JobModifyIndex != *cur.JobModifyIndex:
				http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job exists with conflicting job modify index: %d", req.JobModifyIndex, *cur.JobModifyIndex), http.StatusInternalServerError)
				return
			case cur == nil && req.JobModifyIndex != 0:
				http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job does not exist", req.JobModifyIndex), http.StatusInternalServerError)
				return
			}
		}
		i := f.putJobLocked(req.Job)
		w.Header().Set("X-Nomad-Index", strconv.FormatUint(i, 10))
		_ = enc.Encode(api.JobRegisterResponse{JobModifyIndex: i})
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
	}
}

// stream serves /v1/event/stream.
func (f *Cluster) stream(w http.ResponseWriter, r *http.Request) {
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
			if f.held != 0 && e.Index > f.held {
				break
			}
			if e.Index >= next && e.Index > f.forgot && slices.Contains(topics, string(e.Events[0].Topic)) {
				out = append(out, e)
			}
			next = max(next, e.Index+1)
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

// JobCreateIndex is job id's create index (0 if none).
func (f *Cluster) JobCreateIndex(id string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j := f.jobs[id]; j != nil {
		return *j.CreateIndex
	}
	return 0
}

// stub is the list stub of an allocation.
func stub(a *api.Allocation) *api.AllocationListStub {
	st := &api.AllocationListStub{
		ID: a.ID, EvalID: a.EvalID, Name: a.Name, Namespace: a.Namespace, NodeID: a.NodeID, NodeName: a.NodeName,
		JobID: a.JobID, TaskGroup: a.TaskGroup, DesiredStatus: a.DesiredStatus, DesiredDescription: a.DesiredDescription,
		ClientStatus: a.ClientStatus, ClientDescription: a.ClientDescription, TaskStates: a.TaskStates,
		DeploymentStatus: a.DeploymentStatus, AllocatedResources: a.AllocatedResources,
		CreateIndex: a.CreateIndex, ModifyIndex: a.ModifyIndex, CreateTime: a.CreateTime, ModifyTime: a.ModifyTime,
	}
	if a.Job != nil && a.Job.Type != nil && a.Job.Version != nil {
		st.JobType, st.JobVersion = *a.Job.Type, *a.Job.Version
	}
	return st
}

func ptr[T any](v T) *T { return &v }

// RequestsByPath counts the requests other than the stream's by "METHOD path".
func (f *Cluster) RequestsByPath() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.requests {
		out[k] = v
	}
	return out
}
