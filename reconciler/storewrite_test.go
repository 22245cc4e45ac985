package reconciler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// flakyStore fails the first n writes of one key (a Store that lost its
// leader for a moment, say).
type flakyStore struct {
	backends.Store
	key    string
	mu     sync.Mutex
	n      int // writes of key still to fail
	failed int // writes of key failed so far
}

var errFlaky = errors.New("store unavailable (injected)")

func (f *flakyStore) fail(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if key != f.key || f.n == 0 {
		return false
	}
	f.n--
	f.failed++
	return true
}

func (f *flakyStore) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *flakyStore) Put(ctx context.Context, p *backends.KVPair) (*backends.WriteMeta, error) {
	if f.fail(p.Key) {
		return nil, errFlaky
	}
	return f.Store.Put(ctx, p)
}

func (f *flakyStore) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	if f.fail(p.Key) {
		return false, nil, errFlaky
	}
	return f.Store.CAS(ctx, p)
}

func (f *flakyStore) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	for _, op := range ops {
		if f.fail(op.Key) {
			return nil, errFlaky
		}
	}
	return f.Store.Txn(ctx, ops)
}

// TestDeployRecordWriteErrorsAreRetried: when the Store fails the
// reconciler's writes of an app's deploy record for a while, the writes
// are logged and retried, not dropped: the deploy ends recorded as
// running, as it would with a healthy Store.
func TestDeployRecordWriteErrorsAreRetried(t *testing.T) {
	const app = "app00000"
	var flaky *flakyStore
	sched := reconcilertest.NewMemScheduler()
	s := newRig(t, sched, func(st backends.Store) backends.Store {
		flaky = &flakyStore{Store: st, key: state.DeployKey(app), n: 3}
		return flaky
	})
	s.cfg.Reconcile.IntervalDur = time.Hour // no sweep during the test
	reconcilertest.SeedApps(t, s.store, "app", 1, true)
	s.start()
	ctx := context.Background()
	var last *state.Deploy
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := s.eng.GetDeploy(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		last = d
		if d != nil && d.State == state.DeployRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d failed writes of the deploy record, the deploy is recorded as %+v, want running", flaky.failures(), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if mv, _ := sched.Spec(app); mv != reconcilertest.MV || last.MetaVersion != reconcilertest.MV {
		t.Errorf("the scheduler runs %q and the deploy record says %q, want %q", mv, last.MetaVersion, reconcilertest.MV)
	}
	if got := flaky.failures(); got != 3 {
		t.Errorf("%d writes of the deploy record failed, want 3", got)
	}
	if logs := s.logs.String(); !strings.Contains(logs, errFlaky.Error()) {
		t.Errorf("the failed writes were not logged; logs:\n%s", logs)
	}
}
