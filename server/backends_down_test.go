package server

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// downStore is a Store (a storetest.Hooked) that counts its health probes
// and, while down is set, fails every call as a Consul agent that does not
// answer would.
type downStore struct {
	*storetest.Hooked
	down   atomic.Bool
	probes atomic.Int64
}

func (d *downStore) err() error {
	if !d.down.Load() {
		return nil
	}
	return &backends.UnavailableError{Backend: "consul", Role: "store", Op: "get", Reason: "dial tcp 127.0.0.1:8500: connect: connection refused",
		Err: errors.New("connection refused")}
}

func (d *downStore) Health(ctx context.Context) error {
	d.probes.Add(1)
	if err := d.err(); err != nil {
		return err
	}
	return d.Hooked.Health(ctx)
}

func (d *downStore) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	if err := d.err(); err != nil {
		return nil, nil, err
	}
	return d.Hooked.Get(ctx, key, q)
}

func (d *downStore) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	if err := d.err(); err != nil {
		return nil, nil, err
	}
	return d.Hooked.List(ctx, prefix, q)
}

func (d *downStore) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	if err := d.err(); err != nil {
		return false, nil, err
	}
	return d.Hooked.CAS(ctx, p)
}

func (d *downStore) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Hooked.Txn(ctx, ops)
}

// downServer is a server on a downStore named "consul", with a user's
// token.
func downServer(t *testing.T) (*Server, *downStore, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := &downStore{Hooked: &storetest.Hooked{Store: st}}
	var logs bytes.Buffer
	s, err := New(Deps{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs}),
		Store: ds, StoreName: "consul", Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); sec.Close(); st.Close() })
	ctx := context.Background()
	if _, err := state.Create(ctx, st, state.UserKey("dev@b.co"), &state.User{ID: state.NewID(), Email: "dev@b.co"}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, "dev@b.co", engine.TokenUser, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s, ds, tok
}

// TestStoreDownIs503NamingTheBackend: with the store down, a read and a
// write answer 503 with Retry-After and a body naming the backend.
func TestStoreDownIs503NamingTheBackend(t *testing.T) {
	s, ds, tok := downServer(t)
	auth := map[string]string{"Authorization": "bearer " + tok}
	if w := serve(s, "GET", "/users/info", "", auth); w.Code != 200 {
		t.Fatalf("with the store up: %d %s", w.Code, w.Body)
	}
	ds.down.Store(true)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/users/info", ""},
		{"GET", "/api/v1/repos/", ""},
		{"POST", "/api/v1/repos/", `{"appname":"hello"}`},
	} {
		w := serve(s, r.method, r.path, r.body, auth)
		m := jsonBody(t, w)
		ra, _ := strconv.Atoi(w.Header().Get("Retry-After"))
		if w.Code != 503 || ra <= 0 || m["backend"] != "consul" || m["retry_after"] != float64(ra) ||
			m["error"] != "the store (consul) is unavailable: dial tcp 127.0.0.1:8500: connect: connection refused" {
			t.Errorf("%s %s with the store down: %d Retry-After %q %s", r.method, r.path, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	ds.down.Store(false)
	if w := serve(s, "GET", "/users/info", "", auth); w.Code != 200 {
		t.Fatalf("with the store back: %d %s", w.Code, w.Body)
	}
}

// TestHealthzCachedForASecond: 100 calls within the cache window probe the
// backends once; a backend that goes down shows once the window is over,
// named in the answer.
func TestHealthzCachedForASecond(t *testing.T) {
	s, ds, _ := downServer(t)
	var mu sync.Mutex
	now := time.Now()
	s.health.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- serve(s, "GET", "/healthz", "", nil).Code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("/healthz answered %d", c)
		}
	}
	if n := ds.probes.Load(); n != 1 {
		t.Fatalf("100 calls within a second probed the store %d times, want 1", n)
	}

	ds.down.Store(true)
	advance(healthTTL / 2)
	if w := serve(s, "GET", "/healthz", "", nil); w.Code != 200 || ds.probes.Load() != 1 {
		t.Fatalf("within the window: %d, %d probes (the cached answer is expected)", w.Code, ds.probes.Load())
	}
	advance(healthTTL / 2)
	w := serve(s, "GET", "/healthz", "", nil)
	m := jsonBody(t, w)
	st := m["backends"].(map[string]any)["store"].(map[string]any)
	if w.Code != 503 || m["status"] != "degraded" || st["backend"] != "consul" || st["ok"] != false || st["error"] == "" {
		t.Fatalf("a second after the store went down: %d %s", w.Code, w.Body)
	}
	if sec := m["backends"].(map[string]any)["secrets"].(map[string]any); sec["ok"] != true {
		t.Fatalf("the secrets are up: %s", w.Body)
	}
	if n := ds.probes.Load(); n != 2 {
		t.Fatalf("%d probes, want 2", n)
	}
}
