package server

// Benchmarks of paginated lists and of one app's read, through s.Handler(),
// on bolt and on a Consul dev agent (started by the benchmark on loopback
// ports when ~/.cache/berth/bin/consul exists; skipped otherwise):
//
//	BenchmarkListPage/store=S/list=L/apps=N
//	                  GET of the first page of 100 of list L (repos: GET
//	                  /api/v1/repos/?limit=100, deployed: GET
//	                  /api/v1/apps/?limit=100) among N apps of 5 procs each,
//	                  seeded straight into the Store; ns-p99 is the 99th
//	                  percentile of the requests. The cost should follow
//	                  the page, not N: compare apps=10000 with apps=100.
//	                  (list=repos-unpaged is the whole list in one answer.)
//	BenchmarkReadOne/store=S/{berth,raw}
//	                  GET /api/v1/repos/:app/ against the raw Store Get of
//	                  the app's key it wraps, among 1,000 apps.
//
//	go test -run '^$' -bench 'ListPage|ReadOne' -benchmem ./server/

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// benchStores are the stores the benchmarks run on: bolt, and Consul (a dev
// agent under a fresh prefix, removed afterwards) when its binary is there.
var benchStores = []string{"bolt", "consul"}

// newStoreBenchServer is a Server on the named store, with no scheduler
// and no reconciler, and a token of reconcilertest.Owner (who owns the
// seeded apps; not an admin, so lists are filtered by what they may see).
func newStoreBenchServer(b *testing.B, store string) (*Server, string) {
	b.Helper()
	var st backends.Store
	switch store {
	case "bolt":
		s := newBenchServer(b, nil)
		return s, benchToken(b, s)
	case "consul":
		addr := devagent.Consul(b) // skips without the binary
		cs, err := consul.New(consul.Config{Address: addr, Prefix: fmt.Sprintf("berth-bench/%d/", time.Now().UnixNano())}, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, _ = cs.DeleteTree(ctx, "")
			_ = cs.Close()
		})
		st = cs
	}
	dir := b.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: store, Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(); sec.Close() })
	return s, benchToken(b, s)
}

func benchToken(b *testing.B, s *Server) string {
	b.Helper()
	ctx := context.Background()
	if _, err := state.Create(ctx, s.eng.Store(), state.UserKey(reconcilertest.Owner), &state.User{ID: state.NewID(), Email: reconcilertest.Owner, Created: time.Now().UTC()}); err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, reconcilertest.Owner, engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// seedBenchApps writes the apps app<from>..app<to-1> (deployed, one release
// of 5 procs each, and their deploy records) straight into the Store.
func seedBenchApps(b *testing.B, st backends.Store, from, to int) {
	b.Helper()
	ctx := context.Background()
	var ops []backends.TxnOp
	flush := func() {
		if len(ops) > 0 {
			if _, err := st.Txn(ctx, ops); err != nil {
				b.Fatalf("seeding apps: %v", err)
			}
			ops = ops[:0]
		}
	}
	for i := from; i < to; i++ {
		name := fmt.Sprintf("app%05d", i)
		av, err := json.Marshal(reconcilertest.App(name, reconcilertest.MV, true))
		if err != nil {
			b.Fatal(err)
		}
		rv, err := json.Marshal(reconcilertest.Release(name, reconcilertest.MV))
		if err != nil {
			b.Fatal(err)
		}
		dv, err := json.Marshal(&state.Deploy{App: name, Generation: 1, Operation: "deploy", MetaVersion: reconcilertest.MV, State: state.DeployRunning})
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops,
			backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: av},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.ReleaseKey(name, reconcilertest.MV), Value: rv},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.DeployKey(name), Value: dv})
		if len(ops)+3 > backends.MaxTxnOps {
			flush()
		}
	}
	flush()
}

// timeGET runs b.N GETs of path and reports their 50th and 99th
// percentiles besides ns/op.
func timeGET(b *testing.B, s *Server, tok, path string, check func(*httptest.ResponseRecorder)) {
	b.Helper()
	h := s.Handler()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "bearer "+tok)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		lat = append(lat, time.Since(start))
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if i == 0 && check != nil {
			check(w)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "ns-p99")
}

func BenchmarkListPage(b *testing.B) {
	for _, store := range benchStores {
		b.Run("store="+store, func(b *testing.B) {
			s, tok := newStoreBenchServer(b, store)
			have := 0
			for _, n := range []int{100, 1000, 10000} {
				if n > 1000 && testing.Short() {
					b.Skip("seeds 10,000 apps; skipped under -short")
				}
				seedBenchApps(b, s.eng.Store(), have, n)
				have = n
				for _, l := range []struct {
					name, path string
					want       int
				}{
					{"repos", "/api/v1/repos/?limit=100", 100},
					{"deployed", "/api/v1/apps/?limit=100", 100},
					// The whole list in one answer (no limit), for scale.
					{"repos-unpaged", "/api/v1/repos/", n},
				} {
					b.Run(fmt.Sprintf("list=%s/apps=%d", l.name, n), func(b *testing.B) {
						timeGET(b, s, tok, l.path, func(w *httptest.ResponseRecorder) {
							var items []map[string]any
							if err := json.Unmarshal(w.Body.Bytes(), &items); err != nil || len(items) != l.want {
								b.Fatalf("GET %s: %d items (%v)", l.path, len(items), err)
							}
							if (n > l.want) != (w.Header().Get("X-Next") != "") {
								b.Fatalf("GET %s among %d apps: next %q", l.path, n, w.Header().Get("X-Next"))
							}
						})
					})
				}
			}
		})
	}
}

func BenchmarkReadOne(b *testing.B) {
	for _, store := range benchStores {
		b.Run("store="+store, func(b *testing.B) {
			s, tok := newStoreBenchServer(b, store)
			seedBenchApps(b, s.eng.Store(), 0, 1000)
			const app = "app00042"
			b.Run("berth", func(b *testing.B) {
				timeGET(b, s, tok, "/api/v1/repos/"+app+"/", nil)
			})
			b.Run("raw", func(b *testing.B) {
				ctx := context.Background()
				st := s.eng.Store()
				lat := make([]time.Duration, 0, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					p, _, err := st.Get(ctx, state.AppKey(app), nil)
					lat = append(lat, time.Since(start))
					if err != nil || p == nil {
						b.Fatalf("Get: %v %v", p, err)
					}
				}
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
				b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "ns-p99")
			})
		})
	}
}
