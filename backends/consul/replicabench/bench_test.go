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
	// leased is the replica as `berth server` runs it by default: with
	// the change log, a member of the prefix's read leases.
	leased *consul.Replica
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
	lst, err := consul.New(consul.Config{Address: addr, Prefix: f.prefix, ChangeLog: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	f.leased = consul.NewReplica(lst)
	if err := f.leased.Join(consul.LeaseOptions{Listen: "127.0.0.1:0"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = f.leased.Close()
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
		// The replica has followed the seeding (its watch of apps/ starts
		// with the first read of an app, or here).
		if err := f.replica.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if err := leasedSync(ctx, f.leased); err != nil {
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
		}{{"store-plain", f.plain}, {"store-replica", f.replica}, {"store-leased", f.leased}} {
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
	leasedHS, leasedS := newServer(b, f.leased, filepath.Join(b.TempDir(), "secrets"))
	tokLeased, _, err := leasedS.Engine().IssueToken(ctx, "dev@b.co", engine.TokenUser, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if err := leasedSync(ctx, f.leased); err != nil {
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
	b.Run("http-leased", func(b *testing.B) {
		i0 := kvIndex(b)
		parallel(b, get(leasedHS.URL, tokLeased))
		b.ReportMetric(float64(kvIndex(b)-i0), "kv-writes")
	})
}

// leasedSync waits until the leased replica holds its lease and has
// caught up with the prefix (its reads then come from memory).
func leasedSync(ctx context.Context, r *consul.Replica) error {
	if err := r.Sync(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := r.Member(); ok && r.Leased() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leased replica did not answer from memory within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkReplicaMemory10kApps: the heap the replica holds for 10,000 apps
// of 5 procs each (runtime.ReadMemStats after a GC, before it starts and
// once it has applied the seeded prefix), the time to that first sync, and
// a write then a read of it through the replica (the read goes to Consul
// directly while the watch of apps/ re-lists it, which it does after every
// write under apps/; see BenchmarkReplicaChange10kApps for the cost of one
// change by directory).
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

// cpuTimes is the CPU time (user+system) this process and the Consul agent
// (a child of this test binary, started by devagent) have used so far. The
// agent's is 0 when it is not found (CONSUL_HTTP_ADDR points elsewhere).
func cpuTimes() (self, agent time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), in clock ticks.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.HasSuffix(s[:i], "(consul") {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 13 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		agent = time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
	}
	return self, agent
}

// seedFleet writes n apps as the engine keeps them: the app record, one
// release and one deploy record each (3n keys), 64 to a transaction.
func seedFleet(b *testing.B, st backends.Store, n int) {
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
		a := appRecord(name, "dev@b.co")
		v, err := json.Marshal(a)
		if err != nil {
			b.Fatal(err)
		}
		rel, _ := json.Marshal(map[string]any{"app": name, "version": "v1", "image": "registry.berth.local/" + name + ":v1", "procs": a.Procs, "created": a.Created})
		dep, _ := json.Marshal(map[string]any{"app": name, "version": "v1", "state": "done", "started": a.Created})
		ops = append(ops,
			backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: v},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.ReleaseKey(name, "v1"), Value: rel},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.DeployKey(name), Value: dep})
		if len(ops)+3 > backends.MaxTxnOps {
			flush()
		}
	}
	flush()
}

// BenchmarkReplicaChange10kApps: what one change costs a replica of 10,000
// apps (30,000 keys: app, release and deploy records), for the replica
// following the whole prefix with one watch (mode=single, the design before
// issue 12's sharding), the replica sharded by directory (mode=sharded) and
// the sharded replica following the change log (mode=log: the writes log
// the keys they change and the replica reads those alone), in the same run on the same Consul prefix. Each op is one write then one
// read through the replica that waits until the replica has applied it
// (ReplicaOptions.WaitWatch), so ns/op is "one write, then the replica has
// applied it":
//
//   - write=app: an app record (apps/app-00000), read back;
//   - write=lock: the reconciler lock's key (locks/reconciler-leader, as
//     its heartbeat), read back;
//   - write=event: a new audit event (events/<n>), read back;
//   - write=lock-read-app: the lock's key written, then apps/app-00000 read
//     (the read must know apps/ holds every change up to the write).
//
// berth-cpu-ms and consul-cpu-ms are the CPU time per op of this process
// (the replica's decoding and diffing) and of the Consul agent (its
// serializing of the lists), with the benchmark's own writes and reads in
// both.
func BenchmarkReplicaChange10kApps(b *testing.B) {
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
	seedFleet(b, plain, apps)
	ctx := context.Background()
	if _, err := plain.Put(ctx, &backends.KVPair{Key: "locks/reconciler-leader", Value: []byte("0")}); err != nil {
		b.Fatal(err)
	}
	if _, err := plain.Put(ctx, &backends.KVPair{Key: "events/0", Value: []byte("{}")}); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	writes := []struct {
		name        string
		write, read string
	}{
		{"app", state.AppKey("app-00000"), state.AppKey("app-00000")},
		{"lock", "locks/reconciler-leader", "locks/reconciler-leader"},
		{"event", "events/", ""},
		{"lock-read-app", "locks/reconciler-leader", state.AppKey("app-00000")},
	}
	for _, mode := range []string{"single", "sharded", "log"} {
		st, err := consul.New(consul.Config{Address: addr, Prefix: p, ChangeLog: mode == "log"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		r := consul.NewReplicaWith(st, consul.ReplicaOptions{SingleWatch: mode == "single", WaitWatch: true})
		if err := r.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		for _, w := range writes {
			b.Run(fmt.Sprintf("mode=%s/write=%s", mode, w.name), func(b *testing.B) {
				self0, agent0 := cpuTimes()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					n := seq.Add(1)
					key, val := w.write, []byte(fmt.Sprint(n))
					if key == state.AppKey("app-00000") {
						a := appRecord("app-00000", "dev@b.co")
						a.MetaVersion = fmt.Sprint(n)
						val, _ = json.Marshal(a)
					}
					if strings.HasSuffix(key, "/") {
						key += fmt.Sprintf("%012d", n)
					}
					read := w.read
					if read == "" {
						read = key
					}
					wm, err := r.Put(ctx, &backends.KVPair{Key: key, Value: val})
					if err != nil {
						b.Fatal(err)
					}
					got, _, err := r.Get(ctx, read, nil)
					if err != nil || got == nil || (read == key && got.ModifyIndex != wm.Index) {
						b.Fatalf("write %s at %d, then the replica reads %s: %+v, %v", key, wm.Index, read, got, err)
					}
				}
				b.StopTimer()
				self1, agent1 := cpuTimes()
				b.ReportMetric(float64((self1-self0).Microseconds())/1000/float64(b.N), "berth-cpu-ms/op")
				b.ReportMetric(float64((agent1-agent0).Microseconds())/1000/float64(b.N), "consul-cpu-ms/op")
			})
		}
		_ = r.Close()
	}
}
