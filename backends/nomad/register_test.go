package nomad

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends/nomad/nomadfake"
)

// TestSubmitReadsTheJobFromTheView: once the view has synced, a submit
// (a new app, then a new version) registers with no read of the job from
// Nomad before it: the job to check-and-set on comes from the view. A
// submit that would change nothing is confirmed by Nomad and registers
// nothing.
func TestSubmitReadsTheJobFromTheView(t *testing.T) {
	f := nomadfake.NewCluster()
	s := serve(t, f, 0)
	ctx := context.Background()
	for _, mv := range []string{"v1", "v2"} {
		spec := testApp(t, "hello")
		spec.MetaVersion = mv
		if err := s.Submit(ctx, spec); err != nil {
			t.Fatalf("Submit %s: %v", mv, err)
		}
		job, _, err := s.Client().Jobs().Info("hello", nil)
		if err != nil || job.Meta[MetaVersion] != mv {
			t.Fatalf("after Submit %s Nomad has %v (%v)", mv, job.Meta, err)
		}
	}
	reqs := f.RequestsByPath()
	// The two Info calls of the test itself.
	if n := reqs["GET /v1/job/hello"]; n != 2 {
		t.Errorf("Submit read the job from Nomad %d times, want 0 (requests: %v)", n-2, reqs)
	}
	if n := reqs["PUT /v1/job/hello"] + reqs["POST /v1/job/hello"] + reqs["PUT /v1/jobs"] + reqs["POST /v1/jobs"]; n != 2 {
		t.Errorf("%d registrations, want 2 (requests: %v)", n, reqs)
	}

	spec := testApp(t, "hello")
	spec.MetaVersion = "v2"
	before := reqs["GET /v1/job/hello"]
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	reqs = f.RequestsByPath()
	if n := reqs["GET /v1/job/hello"] - before; n != 1 {
		t.Errorf("an unchanged submit read the job from Nomad %d times, want 1 (requests: %v)", n, reqs)
	}
	if n := reqs["PUT /v1/job/hello"] + reqs["POST /v1/job/hello"] + reqs["PUT /v1/jobs"] + reqs["POST /v1/jobs"]; n != 2 {
		t.Errorf("an unchanged submit registered the job (%d registrations, want 2)", n)
	}
}

// TestSubmitWithTheViewBehind: a change of the job the view has not seen
// yet (a `nomad job scale` behind Berth's back, its event still on its
// way) makes Nomad refuse the check-and-set on the view's copy; the submit
// then reads the job from Nomad and keeps the scaled count (the count
// rule), instead of overwriting it.
func TestSubmitWithTheViewBehind(t *testing.T) {
	f := nomadfake.NewCluster()
	s := serve(t, f, 0)
	ctx := context.Background()
	spec := testApp(t, "hello")
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	f.Hold()
	job, _, err := s.Client().Jobs().Info("hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range job.TaskGroups {
		if *g.Name == "web" {
			g.Count = new(3)
		}
	}
	f.PutJob(job) // scaled behind Berth's back; the view does not know yet
	spec.MetaVersion = "v2"
	err = s.Submit(ctx, spec)
	f.Release()
	if err != nil {
		t.Fatalf("Submit v2: %v", err)
	}
	job, _, err = s.Client().Jobs().Info("hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if job.Meta[MetaVersion] != "v2" {
		t.Fatalf("Nomad runs %s, want v2", job.Meta[MetaVersion])
	}
	if n, _ := countOf(job, "web"); n != 3 {
		t.Errorf("web count after the new version = %d, want the scaled 3", n)
	}
}

// TestSubmitOverAnotherClustersJobWithTheView: a job of another cluster
// under the app's name is not in the view; Nomad refuses the registration
// that expected no job, and the submit fails naming the other cluster,
// leaving its job as it was.
func TestSubmitOverAnotherClustersJobWithTheView(t *testing.T) {
	f := nomadfake.NewCluster()
	green := &api.Job{ID: new("taken"), Name: new("taken"), Type: new("service"),
		Meta:       map[string]string{MetaApp: "taken", MetaCluster: "green", MetaVersion: "g1"},
		TaskGroups: []*api.TaskGroup{{Name: new("web"), Count: new(1)}}}
	at := f.PutJob(green)
	s := serve(t, f, 0)
	if err := s.Submit(context.Background(), testApp(t, "taken")); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("Submit(taken) = %v, want ErrOtherCluster", err)
	}
	job, _, err := s.Client().Jobs().Info("taken", nil)
	if err != nil {
		t.Fatal(err)
	}
	if job.Meta[MetaCluster] != "green" || *job.JobModifyIndex != at {
		t.Errorf("the green job changed: meta %v, job modify index %d (was %d)", job.Meta, *job.JobModifyIndex, at)
	}
}
