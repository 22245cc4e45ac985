package consul

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Reads, and the replica's read-index request, use Consul's consistent
// mode when Config.ConsistentReads is set, and its default mode otherwise.
func TestReadMode(t *testing.T) {
	for _, consistent := range []bool{false, true} {
		var mu sync.Mutex
		var seen []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.URL.Query().Get("index") == "" {
				mu.Lock()
				seen = append(seen, r.URL.String())
				mu.Unlock()
			}
			w.Header().Set("X-Consul-Index", "7")
			w.WriteHeader(http.StatusNotFound)
		}))
		s, err := New(Config{Address: srv.URL, Prefix: "p/", ConsistentReads: consistent}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		r := &Replica{Store: s}
		if p, _, err := s.Get(context.Background(), "apps/a", nil); err != nil || p != nil {
			t.Fatalf("get: %v %v", p, err)
		}
		if err := r.globalIndex(context.Background(), &probe{}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		srv.Close()
		if len(seen) != 2 {
			t.Fatalf("consistent=%v: requests %v, want a get and a read-index request", consistent, seen)
		}
		for _, u := range seen {
			if has := strings.Contains(u, "consistent"); has != consistent {
				t.Errorf("consistent=%v: request %s", consistent, u)
			}
		}
	}
}
