package reconciler

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
)

// rig is an engine on bolt (NoSync) and sealed secrets in a temporary
// directory, with its reconciler (not started).
type rig struct {
	cfg   *config.Config
	store backends.Store // the engine's Store
	eng   *engine.Engine
	rec   *Reconciler
	logs  *syncBuffer
}

// syncBuffer is a log sink safe for the reconciler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newRig builds a rig with sched as its scheduler; wrap (if any) wraps the
// Store the engine is given.
func newRig(tb testing.TB, sched backends.Scheduler, wrap func(backends.Store) backends.Store) *rig {
	tb.Helper()
	dir := tb.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	var store backends.Store = st
	if wrap != nil {
		store = wrap(st)
	}
	logs := &syncBuffer{}
	eng, err := engine.New(engine.Deps{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}),
		Store: store, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Scheduler: sched, SchedulerName: "mem"})
	if err != nil {
		tb.Fatal(err)
	}
	r := &rig{cfg: cfg, store: store, eng: eng, rec: New(eng), logs: logs}
	tb.Cleanup(func() { r.rec.Close(); eng.Close(); sec.Close(); st.Close() })
	return r
}

// start runs the engine's and the reconciler's background work.
func (r *rig) start() {
	r.eng.Start()
	r.rec.Start()
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
