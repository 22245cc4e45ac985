package consul

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The agents are stopped before the check for leaked goroutines.
	goleak.VerifyTestMain(devagent.RunThenShutdown(m))
}

func uniquePrefix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "berth-test/" + hex.EncodeToString(b) + "/"
}

// newStore is a Store on the dev agent under a fresh prefix, whose keys are
// removed at cleanup.
func newStore(t testing.TB) *Store {
	t.Helper()
	addr := devagent.Consul(t)
	s, err := New(Config{Address: addr, Prefix: uniquePrefix(t), ChangeLog: testChangeLog()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.DeleteTree(ctx, "")
		_ = s.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) backends.Store { return newStore(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(t testing.TB) backends.Store { return newStore(t) })
}

// rawClient talks to the same agent directly, to see what the Store wrote.
func rawClient(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = devagent.Consul(t)
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeysLiveUnderPrefix(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte(`{"name":"hello"}`)}); err != nil {
		t.Fatal(err)
	}
	p, _, err := rawClient(t).KV().Get(s.prefix+"apps/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || string(p.Value) != `{"name":"hello"}` {
		t.Fatalf("Consul key %sapps/hello = %+v, want the value written through the Store", s.prefix, p)
	}
}

// Keys that Consul's HTTP path handling would mangle round-trip, and are
// stored escaped rather than lost or merged with other keys.
func TestPathHostileKeysRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	keys := []string{"/leading", "a//double", "a/./dot", "a/../up", "a/.hidden", "..", ".", "a/ctl\x01char", "a/\xffbad-utf8", "a/zero\u200bwidth", "a/end/"}
	for i, k := range keys {
		if _, err := s.Put(ctx, &backends.KVPair{Key: k, Value: []byte{byte(i)}}); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for i, k := range keys {
		p, _, err := s.Get(ctx, k, nil)
		if err != nil || p == nil || p.Key != k || len(p.Value) != 1 || p.Value[0] != byte(i) {
			t.Fatalf("Get(%q) = %+v, %v; want its own value %d", k, p, err, i)
		}
	}
	all, _, err := s.List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(keys) {
		t.Fatalf("List returned %d keys, want %d: %v", len(all), len(keys), all)
	}
	sub, _, err := s.List(ctx, "a/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sub {
		if !strings.HasPrefix(p.Key, "a/") {
			t.Fatalf("List(a/) returned %q", p.Key)
		}
	}
	if len(sub) != 8 {
		t.Fatalf("List(a/) returned %d keys, want 8", len(sub))
	}
	// A prefix that ends inside a multi-byte rune still matches.
	if _, err := s.Put(ctx, &backends.KVPair{Key: "é/x", Value: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	half, _, err := s.List(ctx, "é"[:1], nil)
	if err != nil || len(half) != 1 || half[0].Key != "é/x" {
		t.Fatalf("List(first byte of é) = %v, %v; want [é/x]", half, err)
	}
}

func TestEscapePreservesPrefixes(t *testing.T) {
	keys := []string{"a//b/../c", "%2F/x", "./.a/b", "é/ü", "a\x00b", "/", "//", "a/."}
	for _, k := range keys {
		e := escapeKey(k)
		if back, ok := unescapeKey(e); !ok || back != k {
			t.Errorf("unescape(escape(%q)) = %q, %v", k, back, ok)
		}
		for i := 0; i <= len(k); i++ {
			if !strings.HasPrefix(e, escapePrefix(k[:i])) {
				t.Errorf("escape(%q)=%q does not start with escapePrefix(%q)=%q", k, e, k[:i], escapePrefix(k[:i]))
			}
		}
		if strings.Contains(e, "//") || strings.HasPrefix(e, "/") || strings.HasPrefix(e, ".") || strings.Contains(e, "/.") {
			t.Errorf("escape(%q) = %q still has a segment Consul's mux would clean", k, e)
		}
	}
	if got := escapeKey("apps/hello/releases/1-abc"); got != "apps/hello/releases/1-abc" {
		t.Errorf("an ordinary key was escaped: %q", got)
	}
}

func TestBadPrefixRefused(t *testing.T) {
	if _, err := New(Config{Address: "127.0.0.1:1", Prefix: "a//b"}, nil); err == nil {
		t.Fatal("New with prefix a//b succeeded")
	}
	s, err := New(Config{Address: "127.0.0.1:1", Prefix: "/berth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != "berth/" {
		t.Fatalf("prefix /berth normalised to %q, want berth/", s.prefix)
	}
}

func TestHealthBadAddress(t *testing.T) {
	// Nothing listens on port 1: Health must fail promptly, as unavailable.
	s, err := New(Config{Address: "127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Health(ctx)
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Health on a closed port: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Health on a closed port took %v", d)
	}
	if _, _, err := s.Get(ctx, "k", nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Get on a closed port: err = %v, want ErrUnavailable", err)
	}
}

func TestHealthHonoursContext(t *testing.T) {
	// A listener that accepts and never answers: only the context ends Health.
	addr := devagent.Consul(t) // ensures a skip (not a hang) without agents
	_ = addr
	l := hangingListener(t)
	s, err := New(Config{Address: l}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Health(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Health against a silent server: err = %v, want DeadlineExceeded", err)
	}
}

func TestHealthy(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	_, err := New(Config{Address: "127.0.0.1:8501", TLS: TLSConfig{CAFile: t.TempDir() + "/missing-ca.pem"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "missing-ca.pem") {
		t.Fatalf("New with a missing CA file: err = %v, want an error naming the file", err)
	}
}

// TLS settings with a bare host:port mean https: against a plain-HTTP agent
// Health then fails.
func TestHealthTLSToPlainAgent(t *testing.T) {
	addr := strings.TrimPrefix(devagent.Consul(t), "http://")
	s, err := New(Config{Address: addr, TLS: TLSConfig{InsecureSkipVerify: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Health(ctx); err == nil {
		t.Fatal("Health over https to a plain-http agent succeeded")
	}
}

// testChangeLog is whether the tests' Stores keep the change log: on,
// unless BERTH_TEST_CHANGE_LOG=0 (run the package both ways).
func testChangeLog() bool { return os.Getenv("BERTH_TEST_CHANGE_LOG") != "0" }
