package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// fakeNomad serves the few job endpoints Apps, Status, Stop, Restart and
// Submit read and write first, and records every write.
type fakeNomad struct {
	mu     sync.Mutex
	jobs   map[string]*api.Job
	deps   map[string]*api.Deployment // job -> its latest deployment
	writes []string                   // "PUT <job>", "DELETE <job>"
}

func (f *fakeNomad) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("X-Nomad-Index", "10")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/allocations":
		_ = json.NewEncoder(w).Encode([]*api.AllocationListStub{})
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployment"):
		_ = json.NewEncoder(w).Encode(f.deps[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/job/"), "/deployment")])
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/deployments"):
		var out []*api.Deployment
		if d := f.deps[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/job/"), "/deployments")]; d != nil {
			out = append(out, d)
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/jobs":
		var out []*api.JobListStub
		for _, j := range f.jobs {
			out = append(out, &api.JobListStub{ID: *j.ID, Name: *j.ID, Meta: j.Meta, Stop: deref(j.Stop)})
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/job/"):
		j := f.jobs[strings.TrimPrefix(r.URL.Path, "/v1/job/")]
		if j == nil {
			http.Error(w, "job not found", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(j)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/job/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/job/")
		f.writes = append(f.writes, "DELETE "+id)
		delete(f.jobs, id)
		_ = json.NewEncoder(w).Encode(api.JobDeregisterResponse{})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && (r.URL.Path == "/v1/jobs" || strings.HasPrefix(r.URL.Path, "/v1/job/")):
		var req api.JobRegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.writes = append(f.writes, "PUT "+*req.Job.ID)
		req.Job.JobModifyIndex, req.Job.CreateIndex, req.Job.Version = new(uint64(11)), new(uint64(11)), new(uint64(0))
		f.jobs[*req.Job.ID] = req.Job
		_ = json.NewEncoder(w).Encode(api.JobRegisterResponse{JobModifyIndex: 11})
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
	}
}

func (f *fakeNomad) writesOf(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, w := range f.writes {
		if strings.HasSuffix(w, " "+id) {
			out = append(out, w)
		}
	}
	return out
}

// TestOtherClustersJobsLeftAlone (issue 12, defect 4): a scheduler of
// cluster "blue" lists only blue's jobs, and never registers, restarts or
// deregisters a job of another cluster ("green") or one without a cluster
// id, whatever it is asked; a submit of such an app fails naming the
// other cluster.
func TestOtherClustersJobsLeftAlone(t *testing.T) {
	job := func(id string, meta map[string]string) *api.Job {
		return &api.Job{ID: new(id), Name: new(id), Type: new("service"), Meta: meta, Version: new(uint64(3)), CreateIndex: new(uint64(5)), JobModifyIndex: new(uint64(7)),
			TaskGroups: []*api.TaskGroup{{Name: new("web"), Count: new(1)}}}
	}
	f := &fakeNomad{jobs: map[string]*api.Job{
		"mine":   job("mine", map[string]string{MetaApp: "mine", MetaCluster: "blue"}),
		"theirs": job("theirs", map[string]string{MetaApp: "theirs", MetaCluster: "green"}),
		"legacy": job("legacy", map[string]string{MetaApp: "legacy"}),
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s, err := New(Config{Address: srv.URL, ClusterID: "blue", CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	apps, err := s.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(apps, []string{"mine"}) {
		t.Errorf("Apps = %q, want only this cluster's [mine]", apps)
	}
	for _, app := range []string{"theirs", "legacy"} {
		if _, err := s.Status(ctx, app); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Status(%s) = %v, want not found", app, err)
		}
		if err := s.Restart(ctx, app, ""); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Restart(%s) = %v, want not found", app, err)
		}
		if err := s.Stop(ctx, app); err != nil {
			t.Errorf("Stop(%s) = %v", app, err)
		}
		spec := testApp(t, app)
		if err := s.Submit(ctx, spec); !errors.Is(err, ErrOtherCluster) {
			t.Errorf("Submit(%s) = %v, want ErrOtherCluster", app, err)
		}
		if w := f.writesOf(app); len(w) > 0 {
			t.Errorf("the scheduler of cluster blue wrote %q to a job that is not blue's", w)
		}
	}
	if err := s.Stop(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	if w := f.writesOf("mine"); !slices.Equal(w, []string{"DELETE mine"}) {
		t.Errorf("Stop(mine) wrote %q, want its job deregistered", w)
	}
	// A new app's job carries the cluster id.
	if err := s.Submit(ctx, testApp(t, "fresh")); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	fresh := f.jobs["fresh"]
	f.mu.Unlock()
	if fresh == nil || fresh.Meta[MetaCluster] != "blue" {
		t.Fatalf("the submitted job's meta: %v", fresh)
	}
	for _, g := range fresh.TaskGroups {
		if g.Services[0].Meta["berth_cluster"] != "blue" || !slices.Contains(g.Services[0].Tags, "berth-cluster=blue") {
			t.Errorf("group %s's service carries no cluster id: tags %q, meta %v", *g.Name, g.Services[0].Tags, g.Services[0].Meta)
		}
	}
}

// TestStatusOfRecreatedJob (issue 12, defect 2): a job stopped with purge
// and registered again starts its versions at 0 again; the old job's
// successful deployment of version 0 is not the new job's, so Status says
// deploying until the new job's own deployment (its JobCreateIndex)
// succeeds.
func TestStatusOfRecreatedJob(t *testing.T) {
	job := &api.Job{ID: new("hello"), Name: new("hello"), Type: new("service"), Meta: map[string]string{MetaApp: "hello"},
		Version: new(uint64(0)), CreateIndex: new(uint64(20)), JobModifyIndex: new(uint64(20)),
		TaskGroups: []*api.TaskGroup{{Name: new("web"), Count: new(1)}}}
	f := &fakeNomad{jobs: map[string]*api.Job{"hello": job}, deps: map[string]*api.Deployment{
		"hello": {ID: "old", JobID: "hello", JobVersion: 0, JobCreateIndex: 5, Status: api.DeploymentStatusSuccessful, StatusDescription: "Deployment completed successfully"},
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s, err := New(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	st, err := s.Status(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if st.Deployment != backends.DeployDeploying {
		t.Fatalf("the re-created job (create index 20) with only the old job's (create index 5) successful deployment of version 0: Status says %s (%s), want deploying", st.Deployment, st.Message)
	}
	f.mu.Lock()
	f.deps["hello"] = &api.Deployment{ID: "new", JobID: "hello", JobVersion: 0, JobCreateIndex: 20, Status: api.DeploymentStatusSuccessful, StatusDescription: "Deployment completed successfully"}
	f.mu.Unlock()
	if st, err = s.Status(ctx, "hello"); err != nil || st.Deployment != backends.DeployRunning {
		t.Fatalf("after the new job's deployment succeeded: %+v, %v; want running", st, err)
	}
}
