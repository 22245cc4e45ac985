package nomad

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// TestRealNomadViewFollowsEvents (issue 12, gated on NOMAD_ADDR): on a
// real Nomad, reached through a proxy that counts requests, an app's
// instance is followed from the event stream alone: its allocation,
// stopped behind Berth's back, is replaced, and Status shows the new one
// running, and the reads (Status, Apps) while that happens make no
// request to Nomad but the view's stream and its liveness probe.
func TestRealNomadViewFollowsEvents(t *testing.T) {
	cfg := realConfig(t)
	target, err := url.Parse(cfg.Address)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		reads = map[string]int{}
	)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/event/stream" && r.URL.Path != "/v1/status/leader" {
			mu.Lock()
			reads[r.Method+" "+r.URL.Path]++
			mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	counted := func() (int, map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		n, c := 0, map[string]int{}
		for k, v := range reads {
			n += v
			c[k] = v
		}
		return n, c
	}
	direct := cfg
	cfg.Address = proxy.URL
	cfg.ClusterID = fmt.Sprintf("viewtest%d", time.Now().UnixNano()%1000000)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	direct.ClusterID = cfg.ClusterID
	nc, err := api.NewClient(&api.Config{Address: direct.Address, SecretID: direct.Token, Region: direct.Region, Namespace: direct.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	spec := testApp(t, fmt.Sprintf("btview%d", time.Now().Unix()%100000))
	spec.Procs = spec.Procs[1:] // the worker only: quick to place
	defer s.Stop(context.Background(), spec.App)
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	running := func(not string) *backends.Instance {
		t.Helper()
		for {
			st, err := s.Status(ctx, spec.App)
			if err == nil && len(st.Instances) == 1 && st.Instances[0].State == backends.StateRunning && st.Instances[0].ID != not {
				return &st.Instances[0]
			}
			if ctx.Err() != nil {
				t.Fatalf("no running instance (other than %q): %+v %v", not, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := running("")
	before, _ := counted()
	if _, err := nc.Allocations().Stop(&api.Allocation{ID: first.ID, Namespace: direct.Namespace}, nil); err != nil {
		t.Fatal(err)
	}
	second := running(first.ID)
	apps, err := s.Apps(ctx)
	if err != nil || len(apps) != 1 || apps[0] != spec.App {
		t.Errorf("Apps = %q, %v; want only %s (this cluster's)", apps, err, spec.App)
	}
	if n, by := counted(); n != before {
		t.Errorf("following the replacement made %d Nomad request(s) besides the stream and probe: %v", n-before, by)
	}
	t.Logf("allocation %s stopped behind Berth's back; Status followed it to %s", first.ID, second.ID)
}
