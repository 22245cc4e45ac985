package local

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// ourGoroutinesNow returns the stacks of the goroutines, other than the
// caller's and the test framework's, that are running code of this package
// at this instant.
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
			continue // the main goroutine, in TestMain
		}
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "github.com/berthpaas/berth/backends/local.") {
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

func TestNewLeavesNothingRunningWhenTheRouterCannotListen(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s, err := New(Config{
		DataDir:    t.TempDir(),
		RouterAddr: taken.Addr().String(),
		Logger:     hclog.NewNullLogger(),
	})
	if err == nil {
		s.Close()
		t.Fatalf("New with router address %s already taken: no error", taken.Addr())
	}
	if !strings.Contains(err.Error(), "router") {
		t.Errorf("New: error %q does not name the router", err)
	}
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("a failed New left %d goroutine(s) running:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

func TestCloseReturnsAfterItsGoroutinesEnded(t *testing.T) {
	spec := helloSpec(t, "tidy") // builds the app first: its goroutines are not the scheduler's
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := newScheduler(t, t.TempDir())
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "tidy", "running", running)
	if code, body := get(t, s, "tidy.apps.localhost", "/"); code != 200 {
		t.Fatalf("GET via router: %d %s", code, body)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("Close returned (after %v) with %d goroutine(s) of the scheduler still running:\n%s",
			time.Since(start).Round(time.Millisecond), len(left), strings.Join(left, "\n\n"))
	}
	if err := s.Submit(context.Background(), spec); err == nil {
		t.Fatal("Submit after Close: no error")
	}
}
