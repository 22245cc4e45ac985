package reconciler

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// ignoreRig ignores the goroutines of the rig's own Store.
var ignoreRig = goleak.IgnoreAnyFunction("github.com/berthpaas/berth/backends/bolt.(*Store).reaper")

// running lists the goroutines in the reconciler's Run, loop or apps
// watch at this instant (goleak waits a while for goroutines to end; this
// does not). A goroutine that has done its work and is exiting (only the
// closure that started it left on its stack) is not counted.
func running() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range []string{"(*Reconciler).Run(", "(*Reconciler).loop(", "(*Reconciler).watch("} {
			if strings.Contains(g, "berth/reconciler."+f) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// slowWatchStore answers a blocking List (the apps watch) a while after
// its context ends, as a remote Store's blocking query does.
type slowWatchStore struct{ backends.Store }

func (s slowWatchStore) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	pairs, meta, err := s.Store.List(ctx, prefix, q)
	if ctx.Err() != nil {
		time.Sleep(300 * time.Millisecond)
	}
	return pairs, meta, err
}

func slowWatch(st backends.Store) backends.Store { return slowWatchStore{st} }

func noneRunning(t *testing.T, when string) {
	t.Helper()
	if gs := running(); len(gs) > 0 {
		t.Errorf("%s, %d goroutines of the reconciler still run:\n%s", when, len(gs), strings.Join(gs, "\n\n"))
	}
}

// TestCloseStopsEveryGoroutine: when Close returns, every goroutine the
// reconciler started (its loop and the apps watch, blocked in a Store
// query that answers a while after it is cancelled) has stopped —
// checked at once, with no grace — and the
// reconciler lease is given up for a successor.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	sched := reconcilertest.NewMemScheduler()
	s := newRig(t, sched, slowWatch)
	s.cfg.Reconcile.IntervalDur = time.Hour // the watch blocks for an hour
	reconcilertest.SeedApps(t, s.store, "app", 3, true)
	s.rec.Start()
	waitFor(t, "the first pass to submit every app", func() bool { return sched.SubmitCount() == 3 })
	ctx := context.Background()
	if l, _, err := state.Get[state.Lock](ctx, s.store, reconcilerLockKey); err != nil || l.Holder != s.rec.id {
		t.Fatalf("the running reconciler does not hold its lease: %+v, %v", l, err)
	}
	time.Sleep(time.Second) // the watch is in its blocking query now
	if len(running()) < 2 {
		t.Fatalf("the reconciler runs fewer than two goroutines (its loop and the apps watch):\n%s", strings.Join(running(), "\n\n"))
	}
	s.rec.Close()
	noneRunning(t, "when Close returned")
	if _, _, err := state.Get[state.Lock](ctx, s.store, reconcilerLockKey); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("after Close the reconciler lease is still there (%v)", err)
	}
	// Closed, it does not start again.
	s.rec.Start()
	s.rec.Run(ctx)
	noneRunning(t, "after Start and Run on a closed reconciler")
	goleak.VerifyNone(t, before, ignoreRig)
}

// TestRunReturnsWhenItsGoroutinesHaveStopped: Run, ended by its context,
// returns only after the goroutines it started have stopped (the apps
// watch's Store query answers a while after it is cancelled).
func TestRunReturnsWhenItsGoroutinesHaveStopped(t *testing.T) {
	before := goleak.IgnoreCurrent()
	sched := reconcilertest.NewMemScheduler()
	s := newRig(t, sched, slowWatch)
	s.cfg.Reconcile.IntervalDur = time.Hour
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.rec.Run(ctx)
	}()
	waitFor(t, "the first pass", func() bool { return sched.SubmitCount() == 1 })
	time.Sleep(time.Second) // the watch is in its blocking query now
	cancel()
	<-done
	noneRunning(t, "when Run returned")
	goleak.VerifyNone(t, before, ignoreRig)
}
