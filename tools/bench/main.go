// Command bench measures Berth side by side with the raw backends it wraps,
// in one run on loopback, and prints a table of ratios (make bench):
//
//   - read one app: GET /api/v1/repos/:app/ through a real server.Server on
//     a loopback HTTP listener vs the Consul KV GET of the app's key, 8
//     clients each, among 10,000 apps;
//   - write: POST /apps/:app/env (norestart) vs a raw Consul check-and-set
//     write (GET of the key, CAS with its index), 8 clients each;
//   - deploy accepted -> job registered vs a direct Jobs().Register (only
//     with NOMAD_ADDR set);
//   - a list page of 100 apps (GET /api/v1/repos/?limit=100) at 100, 1,000
//     and 10,000 apps;
//   - a full reconcile pass at 10,000 apps of 5 procs (in-memory scheduler);
//   - the resident memory (VmRSS) of a real `berth server` process on that
//     Consul with 10,000 apps, after a few list and get requests.
//
// It starts its own Consul dev agent from $BERTH_CACHE/bin/consul (default
// ~/.cache/berth/bin, built by `make agents`) on free loopback ports, seeds
// the apps straight into the Store (not through the scheduler) and removes
// everything it started when it ends. Every measurement has a fixed number
// of operations. The exit status is non-zero only when something failed,
// not when a goal was missed.
//
//	go run ./tools/bench [-apps 10000]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	capi "github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
	"github.com/berthpaas/berth/server"
)

// conc is the number of concurrent clients of the read and write rows.
const conc = 8

// listRequests is the number of list pages read at each fleet size.
const listRequests = 300

func main() {
	apps := flag.Int("apps", 10000, "the number of apps of the large fleet (list pages are also measured at 100 and 1,000)")
	limit := flag.Duration("timeout", 15*time.Minute, "give up (exit status 1) when the run takes longer")
	only := flag.String("only", "", `measure one row alone: "deploy" (deploy accepted -> job registered; needs NOMAD_ADDR)`)
	flag.Parse()
	b := &bench{big: *apps}
	// Bounded in time: the children (Consul, berth) die with the bench.
	watchdog := time.AfterFunc(*limit, func() {
		fmt.Fprintf(os.Stderr, "bench: the run did not finish within %v; giving up\n", *limit)
		os.Exit(1)
	})
	err := func() error {
		// The temporary directory and the children go even when a
		// measurement panics.
		defer b.cleanup()
		if *only != "" {
			return b.runOnly(*only)
		}
		return b.run()
	}()
	watchdog.Stop()
	b.print()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// row is one line of the table. Berth and baseline are figures in unit;
// ratio is berth/baseline; the goal is met when ratio (or the value, with
// abs) passes it.
type row struct {
	name        string
	berth, base float64
	unit        string
	hasBase     bool
	goal        string
	met         string // "yes", "NO", "-"
	note        string
	skipped     string
}

type bench struct {
	big       int
	tmp       string
	consulCmd *exec.Cmd
	consulAdr string // 127.0.0.1:port
	prefix    string
	rows      []row
	cleanups  []func()
	log       *bytes.Buffer
}

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	// Progress on stderr, so a long run shows where it is.
	fmt.Fprintf(os.Stderr, "bench: %s: %s\n", r.name, r.figures())
}

func (r row) figures() string {
	if r.skipped != "" {
		return "skipped: " + r.skipped
	}
	s := fmt.Sprintf("%s %s", num(r.berth), r.unit)
	if r.hasBase {
		s += fmt.Sprintf(" vs %s %s", num(r.base), r.unit)
	}
	return s
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func (b *bench) print() {
	if len(b.rows) == 0 {
		return
	}
	fmt.Println()
	fmt.Printf("== Berth vs the raw backends, side by side (%d clients for reads and writes; Consul dev agent on loopback; %d CPUs, load average %s) ==\n", conc, runtime.NumCPU(), loadAvg())
	fmt.Printf("%-44s %16s %16s %7s %-14s %s\n", "measure", "Berth", "baseline", "ratio", "goal", "met?")
	for _, r := range b.rows {
		if r.skipped != "" {
			fmt.Printf("%-44s %16s %16s %7s %-14s %s\n", r.name, "-", "-", "-", r.goal, "skipped: "+r.skipped)
			continue
		}
		base, ratio := "-", "-"
		if r.hasBase {
			base = num(r.base) + " " + r.unit
			if r.base > 0 {
				ratio = fmt.Sprintf("%.2f", r.berth/r.base)
			}
		}
		fmt.Printf("%-44s %16s %16s %7s %-14s %s\n", r.name, num(r.berth)+" "+r.unit, base, ratio, r.goal, r.met)
	}
	for _, r := range b.rows {
		if r.note != "" {
			fmt.Printf("  %s: %s\n", r.name, r.note)
		}
	}
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func (b *bench) run() error {
	var err error
	if b.tmp, err = os.MkdirTemp("", "berth-bench-"); err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { os.RemoveAll(b.tmp) })
	if err := b.startConsul(); err != nil {
		return err
	}
	b.prefix = fmt.Sprintf("berth-bench/%d/", time.Now().UnixNano())

	// The in-process server: Consul Store, sealed secrets, no scheduler
	// (and so no reconciler), on a loopback listener.
	srv, base, tok, err := b.inProcessServer()
	if err != nil {
		return err
	}
	st := srv.Engine().Store()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * conc, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}
	b.cleanups = append(b.cleanups, hc.CloseIdleConnections)

	// List pages at 100, 1k, 10k apps.
	have := 0
	var p99at100 float64
	for _, n := range []int{100, 1000, b.big} {
		if n > b.big || n <= have {
			continue
		}
		if err := seedApps(st, have, n); err != nil {
			return err
		}
		have = n
		lat, err := timeOps(1, listRequests, func(_, _ int) error {
			var items []json.RawMessage
			if err := getJSON(hc, base+"/api/v1/repos/?limit=100", tok, &items); err != nil {
				return err
			}
			if want := min(100, n); len(items) != want {
				return fmt.Errorf("a page of the repos list has %d apps, want %d", len(items), want)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list page at %d apps: %w", n, err)
		}
		p99 := ms(lat.pct(99))
		if n == 100 {
			p99at100 = p99
		}
		note := fmt.Sprintf("p50 %.2f ms", ms(lat.pct(50)))
		if n == b.big {
			note += fmt.Sprintf("; baseline: the same page at 100 apps (the ratio is the growth with the fleet); GET /api/v1/repos/?limit=100, one client, %d requests", listRequests)
		}
		b.add(row{name: fmt.Sprintf("list page of 100, p99 @%s apps", short(n)), berth: p99, base: p99at100, hasBase: true, unit: "ms",
			goal: "p99 < 20 ms", met: yes(p99 < 20), note: note})
	}

	// Read one app: Berth vs the raw Consul KV GET it wraps.
	ac, err := b.consulClient()
	if err != nil {
		return err
	}
	app := fmt.Sprintf("app%05d", have/2)
	key := b.prefix + state.AppKey(app)
	berthRead := func(_, _ int) error {
		var out map[string]any
		if err := getJSON(hc, base+"/api/v1/repos/"+app+"/", tok, &out); err != nil {
			return err
		}
		if out["appname"] != app {
			return fmt.Errorf("GET /api/v1/repos/%s/ answered %v", app, out)
		}
		return nil
	}
	rawRead := func(_, _ int) error {
		p, _, err := ac.KV().Get(key, nil)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("consul: %s is missing", key)
		}
		return nil
	}
	bl, rl, err := sideBySide(2, 2000, berthRead, rawRead)
	if err != nil {
		return fmt.Errorf("read one app: %w", err)
	}
	b.add(row{name: fmt.Sprintf("read one app @%s: throughput", short(have)), berth: bl.rate(), base: rl.rate(), hasBase: true, unit: "req/s", goal: "ratio >= 1.0", met: yes(bl.rate() >= rl.rate()),
		note: "GET /api/v1/repos/:app/ over loopback HTTP vs Consul KV GET of the app's key (consul/api), 8 clients, 2 rounds of 2,000 each, alternated"})
	b.add(row{name: fmt.Sprintf("read one app @%s: p50", short(have)), berth: ms(bl.pct(50)), base: ms(rl.pct(50)), hasBase: true, unit: "ms", goal: "ratio <= 1.2", met: yes(bl.pct(50) <= rl.pct(50)*12/10)})

	// Write: env set vs a raw CAS write, each client on an app of its own.
	berthWrite := func(w, i int) error {
		body := fmt.Sprintf(`{"envs":[{"name":"BENCH","value":"v%d"}],"norestart":true}`, i)
		return send(hc, "POST", fmt.Sprintf("%s/apps/app%05d/env", base, w), tok, body)
	}
	rawWrite := func(w, i int) error {
		k := b.prefix + state.AppKey(fmt.Sprintf("app%05d", conc+w))
		p, _, err := ac.KV().Get(k, nil)
		if err != nil {
			return err
		}
		if p == nil {
			return fmt.Errorf("consul: %s is missing", k)
		}
		ok, _, err := ac.KV().CAS(&capi.KVPair{Key: k, Value: p.Value, ModifyIndex: p.ModifyIndex}, nil)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("consul: CAS of %s failed", k)
		}
		return nil
	}
	bw, rw, err := sideBySide(2, 100, berthWrite, rawWrite)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	b.add(row{name: "write (env set) : throughput", berth: bw.rate(), base: rw.rate(), hasBase: true, unit: "req/s", goal: "(none set)", met: "-",
		note: "POST /apps/:app/env (norestart) vs Consul KV GET + CAS of the app's key, 8 clients on an app each, 2 rounds of 100 each"})
	b.add(row{name: "write (env set) : p50", berth: ms(bw.pct(50)), base: ms(rw.pct(50)), hasBase: true, unit: "ms", goal: "(none set)", met: "-"})

	// Deploy accepted -> job registered.
	if os.Getenv("NOMAD_ADDR") == "" {
		b.add(row{name: "deploy accepted -> job registered", goal: "ratio <= 1.1", skipped: "NOMAD_ADDR unset"})
	} else if err := b.deployToRegistered(); err != nil {
		return fmt.Errorf("deploy accepted -> job registered: %w", err)
	}

	// A full reconcile pass at the large fleet.
	if err := b.reconcilePass(have); err != nil {
		return err
	}

	// RSS of a real berth server process on that Consul.
	return b.serverRSS(have)
}

func short(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// lats are the latencies of a run and its wall time.
type lats struct {
	lat  []time.Duration
	wall time.Duration
}

func (l *lats) pct(p int) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	sort.Slice(l.lat, func(i, j int) bool { return l.lat[i] < l.lat[j] })
	i := len(l.lat) * p / 100
	if i >= len(l.lat) {
		i = len(l.lat) - 1
	}
	return l.lat[i]
}

func (l *lats) rate() float64 { return float64(len(l.lat)) / l.wall.Seconds() }

func (l *lats) merge(o *lats) {
	l.lat = append(l.lat, o.lat...)
	l.wall += o.wall
}

// timeOps runs per operations on each of workers goroutines and times
// each; the first error stops the run.
func timeOps(workers, per int, op func(w, i int) error) (*lats, error) {
	out := &lats{lat: make([]time.Duration, 0, workers*per)}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			mine := make([]time.Duration, 0, per)
			for i := 0; i < per; i++ {
				t := time.Now()
				err := op(w, i)
				mine = append(mine, time.Since(t))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			out.lat = append(out.lat, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	out.wall = time.Since(start)
	return out, first
}

// sideBySide alternates rounds of berth and raw (conc clients, per
// operations each per round), so that both see the same machine.
func sideBySide(rounds, per int, berth, raw func(w, i int) error) (*lats, *lats, error) {
	bl, rl := &lats{}, &lats{}
	// A short warm-up of each (connections, caches).
	if _, err := timeOps(conc, 10, berth); err != nil {
		return nil, nil, err
	}
	if _, err := timeOps(conc, 10, raw); err != nil {
		return nil, nil, err
	}
	for r := 0; r < rounds; r++ {
		x, err := timeOps(conc, per, raw)
		if err != nil {
			return nil, nil, err
		}
		rl.merge(x)
		y, err := timeOps(conc, per, func(w, i int) error { return berth(w, r*per+i) })
		if err != nil {
			return nil, nil, err
		}
		bl.merge(y)
	}
	return bl, rl, nil
}

func getJSON(hc *http.Client, url, tok string, out any) error {
	_, err := getPage(hc, url, tok, out)
	return err
}

// getPage GETs url into out and returns the X-Next header (the next
// page's cursor).
func getPage(hc *http.Client, url, tok string, out any) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return resp.Header.Get("X-Next"), json.Unmarshal(body, out)
}

func send(hc *http.Client, method, url, tok, body string) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	return nil
}

// consulBin is the Consul binary make agents builds.
func consulBin() string {
	if p := os.Getenv("BERTH_CONSUL_BIN"); p != "" {
		return p
	}
	return filepath.Join(cacheDir(), "bin", "consul")
}

func cacheDir() string {
	if d := os.Getenv("BERTH_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "berth")
}

// freePorts finds n distinct free loopback ports (also free for UDP: Serf
// uses both).
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n && tries < 100; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("could not find free loopback ports")
	}
	return ports, nil
}

// startConsul runs a Consul dev agent on free loopback ports and waits
// until its KV answers.
func (b *bench) startConsul() error {
	bin := consulBin()
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no Consul binary at %s (make agents builds it): %w", bin, err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.tmp, "consul")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(b.tmp, "consul.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-node", "berth-bench", "-log-level", "warn", "-data-dir", dir)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	b.consulCmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.cleanups = append(b.cleanups, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	b.consulAdr = "127.0.0.1:" + strconv.Itoa(ports[0])
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("PUT", "http://"+b.consulAdr+"/v1/kv/berth-bench-probe", strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				http.DefaultClient.CloseIdleConnections()
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the Consul dev agent exited: %v (log: %s)", err, filepath.Join(b.tmp, "consul.log"))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the Consul dev agent was not ready within 60s")
		}
	}
}

// consulClient is a raw Consul API client with as many idle connections
// as the clients need (the default pool keeps GOMAXPROCS+1).
func (b *bench) consulClient() (*capi.Client, error) {
	cfg := capi.DefaultNonPooledConfig()
	cfg.Address = b.consulAdr
	cfg.Scheme = "http"
	t := &http.Transport{MaxIdleConnsPerHost: 2 * conc, Proxy: nil}
	cfg.Transport = t
	b.cleanups = append(b.cleanups, t.CloseIdleConnections)
	return capi.NewClient(cfg)
}

// store is a Consul Store on the bench's prefix.
func (b *bench) store() (*consul.Store, error) { return b.storeAt(b.prefix) }

// replica is the Store `berth server` makes by default on Consul
// (consul { read_replica = true }): the bench's prefix read from an
// in-memory replica, writes to Consul.
func (b *bench) replica() (*consul.Replica, error) {
	cs, err := b.store()
	if err != nil {
		return nil, err
	}
	r := consul.NewReplica(cs)
	b.cleanups = append(b.cleanups, func() { r.Close() })
	// A member of the prefix's read leases (consul { read_leases = true }).
	if err := r.Join(consul.LeaseOptions{Listen: "127.0.0.1:0"}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Sync(ctx); err != nil {
		return nil, fmt.Errorf("the replica's first sync: %w", err)
	}
	for !r.Leased() {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the replica did not take its read lease in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, nil
}

// storeAt is a Consul Store on prefix.
func (b *bench) storeAt(prefix string) (*consul.Store, error) {
	// With the change log, as `berth server` writes by default.
	cs, err := consul.New(consul.Config{Address: b.consulAdr, Prefix: prefix, ChangeLog: true}, hclog.NewNullLogger())
	if err != nil {
		return nil, err
	}
	b.cleanups = append(b.cleanups, func() { cs.Close() })
	return cs, nil
}

// inProcessServer is a server.Server on the bench's Consul prefix (read
// through the replica, as `berth server` does by default) with
// sealed secrets and no scheduler, serving a loopback listener, and a
// token of the owner of the seeded apps.
func (b *bench) inProcessServer() (*server.Server, string, string, error) {
	cs, err := b.replica()
	if err != nil {
		return nil, "", "", err
	}
	dir, err := os.MkdirTemp(b.tmp, "server-")
	if err != nil {
		return nil, "", "", err
	}
	cfg := config.Default()
	cfg.DataDir = dir
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		return nil, "", "", err
	}
	b.cleanups = append(b.cleanups, func() { sec.Close() })
	s, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: cs, StoreName: "consul", Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		return nil, "", "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", "", err
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	b.cleanups = append(b.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		s.Close()
	})
	ctx := context.Background()
	if _, err := state.Create(ctx, cs, state.UserKey(reconcilertest.Owner), &state.User{ID: state.NewID(), Email: reconcilertest.Owner, Created: time.Now().UTC()}); err != nil {
		return nil, "", "", err
	}
	tok, _, err := s.Engine().IssueToken(ctx, reconcilertest.Owner, engine.TokenUser, "", time.Hour)
	if err != nil {
		return nil, "", "", err
	}
	return s, "http://" + ln.Addr().String(), tok, nil
}

// seedApps writes the apps app<from>..app<to-1> (deployed, one release of 5
// procs each, and a running deploy record) straight into the Store.
func seedApps(st backends.Store, from, to int) error {
	ctx := context.Background()
	var ops []backends.TxnOp
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := st.Txn(ctx, ops)
		ops = ops[:0]
		return err
	}
	for i := from; i < to; i++ {
		name := fmt.Sprintf("app%05d", i)
		av, err := json.Marshal(reconcilertest.App(name, reconcilertest.MV, true))
		if err != nil {
			return err
		}
		rv, err := json.Marshal(reconcilertest.Release(name, reconcilertest.MV))
		if err != nil {
			return err
		}
		dv, err := json.Marshal(&state.Deploy{App: name, Generation: 1, Operation: "deploy", MetaVersion: reconcilertest.MV, State: state.DeployRunning, LastRunning: reconcilertest.MV})
		if err != nil {
			return err
		}
		ops = append(ops,
			backends.TxnOp{Verb: backends.TxnSet, Key: state.AppKey(name), Value: av},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.ReleaseKey(name, reconcilertest.MV), Value: rv},
			backends.TxnOp{Verb: backends.TxnSet, Key: state.DeployKey(name), Value: dv})
		if len(ops)+3 > backends.MaxTxnOps {
			if err := flush(); err != nil {
				return fmt.Errorf("seeding apps: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("seeding apps: %w", err)
	}
	return nil
}

// reconcilePass times full reconcile passes over the n seeded apps on the
// Consul Store with an in-memory scheduler: the first submits every app (a
// server that starts on a scheduler that lost everything), the next ones
// find nothing to do (the periodic sweep).
func (b *bench) reconcilePass(n int) error {
	cs, err := b.replica()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(b.tmp, "reconciler-")
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir = dir
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		return err
	}
	b.cleanups = append(b.cleanups, func() { sec.Close() })
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sched := reconcilertest.NewMemScheduler()
	eng, err := engine.New(engine.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: cs, StoreName: "consul", Secrets: sec, SecretsName: "sealed", Scheduler: sched, SchedulerName: "mem"})
	if err != nil {
		return err
	}
	rec := reconciler.New(eng)
	b.cleanups = append(b.cleanups, func() { rec.Close(); eng.Close() })
	ctx := context.Background()
	t := time.Now()
	res, err := rec.Pass(ctx)
	first := time.Since(t)
	if err != nil {
		return fmt.Errorf("reconcile pass: %w", err)
	}
	if len(res.Submitted) != n || len(res.Failed) != 0 {
		return fmt.Errorf("the first reconcile pass submitted %d apps and failed %d, want %d and 0", len(res.Submitted), len(res.Failed), n)
	}
	const steadyPasses = 3
	var steady time.Duration
	cpu0 := cpuTime()
	for i := 0; i < steadyPasses; i++ {
		t = time.Now()
		res, err = rec.Pass(ctx)
		steady += time.Since(t)
		if err != nil {
			return fmt.Errorf("reconcile pass: %w", err)
		}
		if res.Checked != n || len(res.Submitted) != 0 {
			return fmt.Errorf("a steady reconcile pass checked %d apps and submitted %d, want %d and 0", res.Checked, len(res.Submitted), n)
		}
	}
	steady /= steadyPasses
	cpu := (cpuTime() - cpu0) / steadyPasses
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / (1 << 20)
	runtime.KeepAlive(rec)
	runtime.KeepAlive(sched)
	b.add(row{name: fmt.Sprintf("reconcile full pass @%s apps (steady)", short(n)), berth: steady.Seconds(), unit: "s", goal: "< 1 s", met: yes(steady < time.Second),
		note: fmt.Sprintf("mean of %d passes finding nothing to do, Consul Store, sealed secrets, in-memory scheduler; the first pass (submits all %d apps) took %.2f s; a steady pass used %.2f s of CPU in the bench process (wall time above; the machine's load average was %s); the reconciler's live heap after the passes (the in-memory scheduler's specs included) is %.1f MB", steadyPasses, n, first.Seconds(), cpu.Seconds(), loadAvg(), heap)})
	return nil
}

// serverRSS runs a real berth server process on the bench's Consul prefix
// (its own sealed secrets, local scheduler) while the bench holds the
// reconciler lock (so the process serves the API and does not start the
// seeded apps), makes a few list and get requests, and reads its VmRSS.
func (b *bench) serverRSS(n int) error {
	cs, err := b.store()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lead, err := cs.Elect(ctx, reconciler.LeaderKey, []byte(`{"holder":"berth-bench"}`), backends.ElectOptions{TTL: 10 * time.Second, Name: "berth bench"})
	if err != nil {
		return fmt.Errorf("taking the reconciler lock: %w", err)
	}
	b.cleanups = append(b.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = lead.Release(ctx)
	})

	bin := filepath.Join(b.tmp, "berth")
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/berth")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building berth (run from the repository's root): %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.tmp, "berth-data")
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cfgPath := filepath.Join(b.tmp, "berth.hcl")
	cfgText := fmt.Sprintf(`data_dir = %q
bind_addr = %q
log_level = "warn"
admins = ["admin@berth.bench"]
local {
  router_addr = "127.0.0.1:%d"
  isolation   = "none"
}
consul {
  address = %q
  prefix  = %q
}
`, dir, addr, ports[1], b.consulAdr, b.prefix)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	pwFile := filepath.Join(b.tmp, "admin-password")
	cu := exec.Command(bin, "admin", "create-user", "-config", cfgPath, "-data-dir", dir, "-email", "admin@berth.bench", "-admin", "-password-out", pwFile)
	if out, err := cu.CombinedOutput(); err != nil {
		return fmt.Errorf("berth admin create-user: %v: %s", err, out)
	}
	logf, err := os.Create(filepath.Join(b.tmp, "berth.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", "-config", cfgPath, "-data-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.cleanups = append(b.cleanups, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	base := "http://" + addr
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	b.cleanups = append(b.cleanups, hc.CloseIdleConnections)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("berth server exited: %v (log: %s)", err, filepath.Join(b.tmp, "berth.log"))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("berth server did not answer /healthz within 60s")
		}
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return err
	}
	lb, _ := json.Marshal(map[string]string{"password": strings.TrimSpace(string(pw))})
	resp, err := hc.Post(base+"/users/admin@berth.bench/tokens", "application/json", bytes.NewReader(lb))
	if err != nil {
		return err
	}
	var login struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		return fmt.Errorf("logging in to the berth server: %d %v", resp.StatusCode, err)
	}
	// A few list pages and gets, as a console would.
	next := "/api/v1/repos/?limit=100"
	for i := 0; i < 5; i++ {
		var items []map[string]any
		cur, err := getPage(hc, base+next, login.Token, &items)
		if err != nil {
			return err
		}
		if want := min(100, n-100*i); len(items) != want {
			return fmt.Errorf("page %d of the repos list of the berth server has %d apps, want %d", i+1, len(items), want)
		}
		name, _ := items[0]["appname"].(string)
		var one map[string]any
		if err := getJSON(hc, base+"/api/v1/repos/"+name+"/", login.Token, &one); err != nil {
			return err
		}
		if cur == "" {
			break
		}
		next = "/api/v1/repos/?limit=100&next=" + url.QueryEscape(cur)
	}
	var deployed []json.RawMessage
	if err := getJSON(hc, base+"/api/v1/apps/?limit=100", login.Token, &deployed); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the watches settle
	rss, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		return err
	}
	mb := float64(rss) / 1024
	b.add(row{name: fmt.Sprintf("berth server RSS @%s apps", short(n)), berth: mb, unit: "MB", goal: "< 200 MB", met: yes(mb < 200),
		note: "VmRSS of a `berth server` process on the Consul prefix (not the reconciler holder: the bench holds the lock) after up to 5 list pages of 100 and a get of an app of each"})
	return nil
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1-minute load average ("?" where /proc has none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// vmRSS is the VmRSS of pid in KiB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
