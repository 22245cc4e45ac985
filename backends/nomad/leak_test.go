package nomad

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/nomad/nomadfake"
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

// TestCloseEndsTheView: Close returns once the view's stream (a long
// request) and its probe have ended, and leaves no connection (and its
// goroutines) open. No real Nomad here (NOMAD_ADDR tests cover that): a
// stand-in serves the stream and the lists.
func TestCloseEndsTheView(t *testing.T) {
	f := nomadfake.NewCluster()
	f.PutJob(blueJob("hello"))
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	s, err := New(Config{Address: srv.URL, ClusterID: "blue", StaleAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the view's sync", func() bool {
		s.view.mu.Lock()
		defer s.view.mu.Unlock()
		return s.view.ready
	})
	time.Sleep(100 * time.Millisecond) // a probe or two
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("Close returned with %d goroutine(s) of the scheduler running:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

func ptr[T any](v T) *T { return &v }
