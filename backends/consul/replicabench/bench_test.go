package replicabench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/server"
)

func TestMain(m *testing.M) {
	devagent.RunThenShutdown(m).Run()
}

// clients is the number of concurrent clients of every benchmark.
const clients = 8

func prefix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "berth-bench/" + hex.EncodeToString(b) + "/"
}

// parallel runs op b.N times from 8 goroutines and reports the throughput
// and the latency percentiles.
func parallel(b *testing.B, op func() error) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(); err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	// CPU per operation, the client's, Berth's and Consul's together: a
	// figure the machine's other load changes far less than the wall time.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the CPU time (user and system) used so far by this process
// and its live child processes (the Consul agent the bench started).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), counted after the ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 13 || fs[1] != self {
			continue
		}
		ut, _ := strconv.ParseInt(fs[11], 10, 64)
		st, _ := strconv.ParseInt(fs[12], 10, 64)
		d += time.Duration(ut+st) * (time.Second / 100) // USER_HZ
	}
	return d
}

type fixture struct {
	addr, prefix string
	raw          *api.Client
	plain        *consul.Store
	replica      *consul.Replica
}

func newFixture(b *testing.B) *fixture {
	b.Helper()
	addr := devagent.Consul(b)
	f := &fixture{addr: addr, prefix: prefix(b)}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Transport.MaxIdleConnsPerHost = 2 * clients
	var err error
	if f.raw, err = api.NewClient(cfg); err != nil {
		b.Fatal(err)
	}
	if f.plain, err = consul.New(consul.Config{Address: addr, Prefix: f.prefix}, nil); err != nil {
		b.Fatal(err)
	}
	st, err := consul.New(consul.Config{Address: addr, Prefix: f.prefix}, nil)
	if err != nil {
		b.Fatal(err)
	}
	f.replica = consul.NewReplica(st)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = f.replica.Close()
		_, _ = f.plain.DeleteTree(ctx, "")
		_ = f.plain.Close()
	})
	return f
}

func appRecord(name, owner string) *state.App {
	one := 1
	procs := map[string]state.ProcOverride{}
	for _, p := range []string{"web", "worker", "clock", "mailer", "indexer"} {
		procs[p] = state.ProcOverride{NumInstances: &one}
	}
	return &state.App{Name: name, Owner: owner, AppType: "app", Maintainers: map[string]string{owner: "owner"},
		GitURL: "git@git.berth.local:" + name + ".git", Created: time.Now().UTC(), Deployed: true, MetaVersion: "v1", Procs: procs}
}

// seed writes n apps of 5 procs each (64 to a transaction).
func seed(b *testing.B, st backends.Store, n int) {
	b.Helper()
	ctx := context.Background()
	var ops []backends.TxnOp
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := st.Txn(ctx, ops); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("app-%05d", i)
		v, err := json.Marshal(appRecord(name, "dev@b.co"))
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: v})
		if len(ops) == backends.MaxTxnOps {
			flush()
		}
	}
	flush()
}

// BenchmarkGet: one app's key read by 8 clients: raw Consul KV GET (default
// consistency), the plain Consul Store's Get, and the replica's Get (which
// waits for one shared consistent index request), with 1 and 10,000 apps
// under the prefix.
func BenchmarkGet(b *testing.B) {
	for _, apps := range []int{1, 10000} {
		f := newFixture(b)
		if apps > 1 {
			seed(b, f.plain, apps-1)
		}
		ctx := context.Background()
		if _, err := state.Create(ctx, f.plain, state.AppKey("hello"), appRecord("hello", "dev@b.co")); err != nil {
			b.Fatal(err)
		}
		key := f.prefix + state.AppKey("hello")
		b.Run(fmt.Sprintf("apps=%d/raw-consul-kv", apps), func(b *testing.B) {
			parallel(b, func() error {
				p, _, err := f.raw.KV().Get(key, nil)
				if err == nil && p == nil {
					err = fmt.Errorf("raw get: %s missing", key)
				}
				return err
			})
		})
		for _, s := range []struct {
			name string
			st   backends.Store
		}{{"store-plain", f.plain}, {"store-replica", f.replica}} {
			b.Run(fmt.Sprintf("apps=%d/%s", apps, s.name), func(b *testing.B) {
				parallel(b, func() error {
					p, _, err := s.st.Get(ctx, state.AppKey("hello"), nil)
					if err == nil && p == nil {
						err = fmt.Errorf("%s: hello missing", s.name)
					}
					return err
				})
			})
		}
	}
}

// newServer is a real server.Server over httptest on loopback on st, with
// sealed secrets in a temporary directory; no scheduler, no reconciler.
func newServer(b *testing.B, st backends.Store, secretsDir string) (*httptest.Server, *server.Server) {
	b.Helper()
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	sec, err := sealed.Open(secretsDir, sealed.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	s, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "consul", Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	b.Cleanup(func() { hs.Close(); s.Close(); _ = sec.Close() })
	return hs, s
}

// BenchmarkHTTPRepoGet: GET /api/v1/repos/:app/ with a user's token, by 8
// clients, on a server whose Store is the plain Consul Store and on one whose
// Store is the replica (the same Consul prefix, the same secrets), and raw
// Consul KV GETs of the app's key in the same run for the ratio.
func BenchmarkHTTPRepoGet(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	if _, err := state.Create(ctx, f.plain, state.UserKey("dev@b.co"), &state.User{ID: state.NewID(), Email: "dev@b.co", Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	if _, err := state.Create(ctx, f.plain, state.AppKey("hello"), appRecord("hello", "dev@b.co")); err != nil {
		b.Fatal(err)
	}
	secrets := filepath.Join(b.TempDir(), "secrets")
	oldHS, oldS := newServer(b, f.plain, secrets)
	// The sealed secrets are one process's: the token issued through the
	// first server is copied into the second's by issuing it there too.
	tokOld, _, err := oldS.Engine().IssueToken(ctx, "dev@b.co", engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	newHS, newS := newServer(b, f.replica, filepath.Join(b.TempDir(), "secrets"))
	tokNew, _, err := newS.Engine().IssueToken(ctx, "dev@b.co", engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients}}
	defer client.CloseIdleConnections()
	get := func(base, tok string) func() error {
		return func() error {
			req, _ := http.NewRequest("GET", base+"/api/v1/repos/hello/", nil)
			req.Header.Set("Authorization", "bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("GET /api/v1/repos/hello/: %d %s", resp.StatusCode, body)
			}
			return nil
		}
	}
	key := f.prefix + state.AppKey("hello")
	b.Run("raw-consul-kv", func(b *testing.B) {
		parallel(b, func() error { _, _, err := f.raw.KV().Get(key, nil); return err })
	})
	// kvIndex is Consul's KV index: the requests write nothing (the delta
	// is reported), so the replica answers from memory.
	kvIndex := func(b *testing.B) uint64 {
		_, m, err := f.raw.KV().Get(f.prefix+"%none", &api.QueryOptions{RequireConsistent: true})
		if err != nil {
			b.Fatal(err)
		}
		return m.LastIndex
	}
	b.Run("http-plain", func(b *testing.B) { parallel(b, get(oldHS.URL, tokOld)) })
	b.Run("http-replica", func(b *testing.B) {
		i0 := kvIndex(b)
		parallel(b, get(newHS.URL, tokNew))
		b.ReportMetric(float64(kvIndex(b)-i0), "kv-writes")
	})
}

// BenchmarkReplicaMemory10kApps: the heap the replica holds for 10,000 apps
// of 5 procs each (runtime.ReadMemStats after a GC, before it starts and
// once it has applied the seeded prefix), the time to that first sync, and
// a write then a read of it through the replica (the read goes to Consul
// directly while the watch re-lists the prefix, which it does after every
// write).
func BenchmarkReplicaMemory10kApps(b *testing.B) {
	const apps = 10000
	addr := devagent.Consul(b)
	p := prefix(b)
	plain, err := consul.New(consul.Config{Address: addr, Prefix: p}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = plain.DeleteTree(ctx, "")
		_ = plain.Close()
	})
	seed(b, plain, apps)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := consul.New(consul.Config{Address: addr, Prefix: p}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := consul.NewReplica(st)
	defer r.Close()
	t0 := time.Now()
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)
	if p, _, err := r.Get(ctx, state.AppKey("app-00000"), nil); err != nil || p == nil {
		b.Fatalf("Get after Sync: %+v, %v", p, err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		a := appRecord("app-00000", "dev@b.co")
		a.MetaVersion = fmt.Sprint(i)
		val, _ := json.Marshal(a)
		wm, err := r.Put(ctx, &backends.KVPair{Key: state.AppKey("app-00000"), Value: val})
		if err != nil {
			b.Fatal(err)
		}
		p, _, err := r.Get(ctx, state.AppKey("app-00000"), nil)
		if err != nil || p == nil || p.ModifyIndex != wm.Index {
			b.Fatalf("write %d at %d, then the replica reads %+v, %v", i, wm.Index, p, err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "write-then-read-ms")
	// (Reported after the timed part: ResetTimer clears reported metrics.)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "replica-heap-MB")
	b.ReportMetric(float64(after.Sys)/(1<<20), "process-sys-MB")
	b.ReportMetric(float64(first.Milliseconds()), "first-sync-ms")
}
