package nomad

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// fakeDeployments is a deploymentSource that behaves like Nomad's blocking
// queries: a call with waitIndex >= the current index blocks until a new
// deployment state is pushed (or ctx ends, or wait passes).
type fakeDeployments struct {
	mu      sync.Mutex
	cond    chan struct{} // closed and replaced on every push
	index   uint64
	d       *api.Deployment
	err     error // returned once by the next call
	waits   []uint64
	calls   int
	maxWait time.Duration
}

func newFake() *fakeDeployments {
	return &fakeDeployments{cond: make(chan struct{}), index: 10, maxWait: 5 * time.Second}
}

func (f *fakeDeployments) push(d *api.Deployment) {
	f.mu.Lock()
	f.index += 7
	f.d = d
	close(f.cond)
	f.cond = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeDeployments) failNext(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeDeployments) LatestDeployment(ctx context.Context, jobID string, waitIndex uint64) (*api.Deployment, uint64, error) {
	f.mu.Lock()
	f.calls++
	f.waits = append(f.waits, waitIndex)
	if err := f.err; err != nil {
		f.err = nil
		f.mu.Unlock()
		return nil, 0, err
	}
	for waitIndex >= f.index {
		c := f.cond
		f.mu.Unlock()
		select {
		case <-c:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(f.maxWait):
			f.mu.Lock()
			d, i := f.d, f.index
			f.mu.Unlock()
			return d, i, nil
		}
		f.mu.Lock()
	}
	d, i := f.d, f.index
	f.mu.Unlock()
	return d, i, nil
}

func dep(version uint64, status, desc string, healthy int) *api.Deployment {
	return &api.Deployment{ID: "dep-" + status, JobID: "hello", JobVersion: version, Status: status, StatusDescription: desc,
		TaskGroups: map[string]*api.DeploymentState{"web": {DesiredTotal: 2, HealthyAllocs: healthy}}}
}

type recorder struct {
	mu  sync.Mutex
	got []deployResult
	ch  chan deployResult
}

func newRecorder() *recorder { return &recorder{ch: make(chan deployResult, 100)} }

func (r *recorder) update(d deployResult) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	r.ch <- d
}

func (r *recorder) next(t *testing.T) deployResult {
	t.Helper()
	select {
	case d := <-r.ch:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no update from the watcher in 5s")
		return deployResult{}
	}
}

func TestWatcherFollowsToSuccess(t *testing.T) {
	f := newFake()
	f.push(dep(3, api.DeploymentStatusSuccessful, "previous version", 2)) // an older version's deployment
	rec := newRecorder()
	done := make(chan deployResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { done <- watchDeployment(ctx, f, "hello", 0, 4, rec.update) }()

	if r := rec.next(t); r.State != backends.DeployDeploying {
		t.Fatalf("first update %+v", r)
	}
	f.push(dep(4, api.DeploymentStatusRunning, "Deployment is running", 0))
	if r := rec.next(t); r.State != backends.DeployDeploying || r.Message != "Deployment is running; web 0/2 healthy" {
		t.Fatalf("running update %+v", r)
	}
	f.push(dep(4, api.DeploymentStatusRunning, "Deployment is running", 1))
	if r := rec.next(t); r.Message != "Deployment is running; web 1/2 healthy" {
		t.Fatalf("progress update %+v", r)
	}
	f.push(dep(4, api.DeploymentStatusSuccessful, "Deployment completed successfully", 2))
	if r := rec.next(t); r.State != backends.DeployRunning || !r.Terminal {
		t.Fatalf("final update %+v", r)
	}
	final := <-done
	if final.State != backends.DeployRunning || final.Message != "Deployment completed successfully" {
		t.Fatalf("result %+v", final)
	}
	// Blocking queries, not polling: one call per change plus the first.
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls > 5 {
		t.Errorf("%d calls for 4 changes: the watcher polls instead of blocking", f.calls)
	}
	for i := 1; i < len(f.waits); i++ {
		if f.waits[i] <= f.waits[i-1] {
			t.Errorf("wait indexes not increasing: %v", f.waits)
		}
	}
}

func TestWatcherFailedDeployment(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.push(dep(1, api.DeploymentStatusFailed, "Failed due to progress deadline - rolling back to job version 0", 0))
	}()
	r := watchDeployment(ctx, f, "hello", 0, 1, nil)
	if r.State != backends.DeployFailed || !r.Terminal || r.Message != "Failed due to progress deadline - rolling back to job version 0" {
		t.Fatalf("result %+v", r)
	}
}

func TestWatcherRetriesErrors(t *testing.T) {
	f := newFake()
	f.failNext(errors.New("connection refused"))
	f.push(dep(2, api.DeploymentStatusSuccessful, "done", 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	r := watchDeployment(ctx, f, "hello", 0, 2, nil)
	if r.State != backends.DeployRunning {
		t.Fatalf("result %+v", r)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Error("retried without backing off")
	}
}

func TestWatcherSuperseded(t *testing.T) {
	f := newFake()
	f.push(dep(6, api.DeploymentStatusRunning, "newer", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := watchDeployment(ctx, f, "hello", 0, 5, nil)
	if !r.Terminal {
		t.Fatalf("a newer version's deployment did not end the watch: %+v", r)
	}
}

func TestWatcherHonoursContext(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := watchDeployment(ctx, f, "hello", 0, 1, nil)
	if time.Since(start) > 3*time.Second {
		t.Fatal("watcher outlived its context")
	}
	if r.State != backends.DeployDeploying || r.Terminal {
		t.Fatalf("result %+v", r)
	}
}

// TestWatcherRecreatedJob: a job stopped with purge and registered again
// starts its versions at 0 again; the old job's successful deployment of
// version 0 (a lower JobCreateIndex) is not the new job's, so the watcher
// says deploying until the new job's own deployment succeeds.
func TestWatcherRecreatedJob(t *testing.T) {
	f := newFake()
	old := dep(0, api.DeploymentStatusSuccessful, "Deployment completed successfully", 2)
	old.JobCreateIndex, old.ID = 50, "dep-of-the-old-job"
	f.push(old)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := newRecorder()
	done := make(chan deployResult, 1)
	go func() { done <- watchDeployment(ctx, f, "hello", 100, 0, rec.update) }()
	if r := rec.next(t); r.State != backends.DeployDeploying {
		t.Fatalf("first update %+v, want deploying", r)
	}
	f.push(old) // the old deployment again (a new index): still not ours
	running := dep(0, api.DeploymentStatusRunning, "Deployment is running", 0)
	running.JobCreateIndex = 100
	f.push(running)
	if r := rec.next(t); r.State != backends.DeployDeploying || r.DeploymentID != running.ID {
		t.Fatalf("update %+v, want the new job's running deployment as deploying", r)
	}
	ok := dep(0, api.DeploymentStatusSuccessful, "Deployment completed successfully", 2)
	ok.JobCreateIndex = 100
	f.push(ok)
	if r := rec.next(t); r.State != backends.DeployRunning || !r.Terminal {
		t.Fatalf("update %+v, want running", r)
	}
	if r := <-done; r.State != backends.DeployRunning {
		t.Fatalf("result %+v", r)
	}
	for _, r := range rec.got {
		if r.DeploymentID == old.ID {
			t.Errorf("the old job's deployment was taken for the new job's: %+v", r)
		}
	}

	// A deployment of a job registered after the watched one supersedes it.
	f2 := newFake()
	newer := dep(0, api.DeploymentStatusRunning, "Deployment is running", 0)
	newer.JobCreateIndex = 200
	f2.push(newer)
	if r := watchDeployment(ctx, f2, "hello", 100, 3, nil); !r.Terminal {
		t.Fatalf("a re-created job's deployment did not end the watch of the old job: %+v", r)
	}
}
