package nomad

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves a goroutine behind. One kind
// is not ours to stop: Nomad's api reads allocation logs from the client
// node through a client it makes per call, on a new transport with a dialer
// of its own (api.cloneWithTimeout), which the scheduler cannot reach to
// close; its idle connection (a persistConn's read and write loops) ends
// after the transport's idle timeout (90 s). Only the real-Nomad tests
// (NOMAD_ADDR) make such calls; TestCloseEndsTheDeploymentWatchers checks
// the scheduler's own connections without this allowance.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// ourGoroutinesNow returns the stacks of the goroutines, other than the
// caller's, the test framework's and the tests' own handlers, running code
// of this package at this instant.
func ourGoroutinesNow() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n")[1:] {
		if strings.Contains(g, "\ntesting.") {
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "github.com/berthpaas/berth/backends/nomad.") &&
				!strings.HasPrefix(line, "github.com/berthpaas/berth/backends/nomad.Test") { // not a test's stand-in server
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// ourGoroutines is ourGoroutinesNow, given a moment to settle: a goroutine
// that has signalled its end (the thing Close waits for) may still be on
// its way out for a few microseconds, while one that was not waited for
// (or never ends) is still there after the grace.
func ourGoroutines() []string {
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		left := ourGoroutinesNow()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCloseEndsTheDeploymentWatchers: Close returns once the watcher that
// follows a deployment (with a blocking query) has ended, and leaves no
// connection (and its goroutines) open. No real Nomad here (NOMAD_ADDR
// tests cover that): a stand-in answers the two reads the watcher makes,
// the deployment query blocking as Nomad's does.
func TestCloseEndsTheDeploymentWatchers(t *testing.T) {
	watching := make(chan struct{}, 1)
	nomad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/job/hello":
			w.Header().Set("X-Nomad-Index", "5")
			_ = json.NewEncoder(w).Encode(&api.Job{ID: ptr("hello"), Version: ptr(uint64(3))})
		case "/v1/job/hello/deployment":
			select {
			case watching <- struct{}{}:
			default:
			}
			<-r.Context().Done() // no deployment yet: block until the caller goes
		default:
			http.NotFound(w, r)
		}
	}))
	defer nomad.Close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	s, err := New(Config{Address: nomad.URL})
	if err != nil {
		t.Fatal(err)
	}
	s.watchLatest("hello")
	select {
	case <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never queried the deployment")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("Close returned with %d goroutine(s) of the scheduler running:\n%s", len(left), strings.Join(left, "\n\n"))
	}
	// After Close no watcher starts.
	s.watchLatest("hello")
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("a watcher started after Close:\n%s", strings.Join(left, "\n\n"))
	}
}

func ptr[T any](v T) *T { return &v }
