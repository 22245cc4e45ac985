package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/devagent"
)

// A cluster is several berth servers on one Consul prefix. The local
// scheduler is each server's own (processes it starts): apps run on the
// server that holds the reconciler lock, and a server that takes the lock
// over runs them anew. (Reads of instances and logs answer from the
// server's own scheduler: on the others they show no instances. With
// Nomad, one scheduler for all, they answer the same everywhere.)

// clusterHCL makes the reconciler lock's hand-over quick: the other
// servers end a killed holder's session once its heartbeat has not moved
// for leader_ttl (the dev agent takes TTLs from 1s), then nobody may take
// it for the lock delay. BERTH_E2E_LEADER_TTL (e.g. "10s", the default
// of a real deployment, with the default 1s lock delay) measures the
// hand-over of TestClusterKillHolderMidDeploy at another TTL.
var clusterHCL = func() string {
	if ttl := os.Getenv("BERTH_E2E_LEADER_TTL"); ttl != "" {
		return fmt.Sprintf("reconciler {\n  leader_ttl = %q\n}\n", ttl)
	}
	return "reconciler {\n  leader_ttl = \"2s\"\n  leader_lock_delay = \"500ms\"\n}\n"
}()

// startCluster starts n servers on one fresh Consul prefix.
func startCluster(t *testing.T, n int) []*Berth {
	t.Helper()
	vault, token := devagent.Vault(t) // tokens and private values live in Secrets: the servers share them
	first := startBerth(t, Options{Consul: devagent.Consul(t), Vault: vault, VaultToken: token, ExtraHCL: clusterHCL})
	out := []*Berth{first}
	for i := 1; i < n; i++ {
		out = append(out, startBerth(t, Options{Join: first, ExtraHCL: clusterHCL}))
	}
	return out
}

var leaderMetric = regexp.MustCompile(`(?m)^berth_reconciler_leader\{server="([^"]+)"\} ([01])$`)

// leads reads berth_reconciler_leader from the server's /metrics.
func (b *Berth) leads(t testing.TB) (bool, error) {
	t.Helper()
	r, err := b.try("GET", "/metrics", nil, nil, nil)
	if err != nil {
		return false, err
	}
	if r.Code != http.StatusOK {
		return false, fmt.Errorf("GET /metrics: %s", r)
	}
	m := leaderMetric.FindStringSubmatch(string(r.Raw))
	if m == nil {
		t.Fatalf("GET /metrics of %s has no berth_reconciler_leader gauge", b.URL)
	}
	return m[2] == "1", nil
}

// holder waits until exactly one of the live servers says it runs the
// reconciler, checks that the lock's key in Consul names it, and returns it.
func holder(t *testing.T, servers []*Berth, within time.Duration) *Berth {
	t.Helper()
	var h *Berth
	eventually(t, within, "one server to hold the reconciler lock", func() bool {
		h = nil
		n := 0
		for _, b := range servers {
			ok, err := b.leads(t)
			if err != nil {
				return false
			}
			if ok {
				h, n = b, n+1
			}
		}
		if n > 1 {
			t.Fatalf("%d servers run the reconciler at once", n)
		}
		return n == 1
	})
	var li struct{ Holder, Addr string }
	raw := consulKey(t, h.Opts.Consul, h.ConsulPrefix+"locks/reconciler-leader")
	if err := json.Unmarshal(raw, &li); err != nil {
		t.Fatalf("the lock's key holds %q: %v", raw, err)
	}
	if li.Addr != h.Addr {
		t.Errorf("the lock's key names the server at %s; the server that says it leads is %s", li.Addr, h.Addr)
	}
	return h
}

// consulKey reads one key's raw value from Consul (consistent).
func consulKey(t testing.TB, addr, key string) []byte {
	t.Helper()
	u := strings.TrimSuffix(addr, "/") + "/v1/kv/" + key + "?raw&consistent"
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("reading Consul key %s: %v", key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reading Consul key %s: %d %s", key, resp.StatusCode, b)
	}
	return b
}

// lockSession is the session holding a lock's key ("" when free).
func lockSession(t testing.TB, addr, key string) string {
	t.Helper()
	var pairs []struct{ Session string }
	consulGet(t, addr, "/v1/kv/"+key+"?consistent", &pairs)
	if len(pairs) == 0 {
		return ""
	}
	return pairs[0].Session
}

// sessionKnown says whether Consul still knows the session.
func sessionKnown(t testing.TB, addr, id string) bool {
	t.Helper()
	var entries []struct{ ID string }
	consulGet(t, addr, "/v1/session/info/"+id+"?consistent", &entries)
	return len(entries) > 0
}

func consulGet(t testing.TB, addr, path string, into any) {
	t.Helper()
	u := strings.TrimSuffix(addr, "/") + path
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// keepSessionRenewed renews a session every 200ms until Consul no longer
// knows it (or the test ends), as if its holder were still alive to
// Consul; the function it returns says how many renewals succeeded.
func keepSessionRenewed(t *testing.T, addr, id string) func() int {
	t.Helper()
	u := strings.TrimSuffix(addr, "/") + "/v1/session/renew/" + id
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	var mu sync.Mutex
	n := 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			req, _ := http.NewRequest("PUT", u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return // ended
			}
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func others(all []*Berth, not ...*Berth) []*Berth {
	var out []*Berth
next:
	for _, b := range all {
		for _, n := range not {
			if b == n {
				continue next
			}
		}
		out = append(out, b)
	}
	return out
}

// submits counts the local scheduler's submits of app at version mv
// ("" = any) in the server's log.
func (b *Berth) submits(app, mv string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(b.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "submitted: app="+app+" ") && (mv == "" || strings.Contains(l, "meta_version="+mv)) {
			n++
		}
	}
	return n
}

// TestClusterServesWholeAPI: two servers on one Consul prefix are one
// Berth: a write on either is read on the other at once (no waiting, no
// sticky session), a login on one is good on the other, exactly one of
// them runs the reconciler, and the events stream of a deploy follows it
// to running from the server that does not run the reconciler.
func TestClusterServesWholeAPI(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	srv := startCluster(t, 2)
	a, b := srv[0], srv[1]

	u := a.newUser(t, "clusterdev") // registered and logged in on a
	if r := b.do(t, "GET", "/users/info", u, nil); !r.check(t, http.StatusOK) || r.Str("email") != u.Email {
		t.Fatalf("a token issued by one server is not good on the other: %s", r)
	}
	app := "clusterweb"
	a.createApp(t, u, app)
	b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil).want(t, http.StatusOK)

	for i := 0; i < 5; i++ {
		val := fmt.Sprintf("v%d-%s", i, randHex(4))
		w, r := a, b
		if i%2 == 0 {
			w, r = b, a
		}
		w.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{"envs": []map[string]any{{"name": "GREETING", "value": val}}, "norestart": true}).want(t, http.StatusOK)
		got := r.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK)
		found := ""
		for _, v := range got.List() {
			if m, _ := v.(map[string]any); m["name"] == "GREETING" {
				found, _ = m["value"].(string)
			}
		}
		if found != val {
			t.Errorf("env set on %s to %q; read at once on %s: %q", w.URL, val, r.URL, found)
		}
	}

	h := holder(t, srv, 20*time.Second)
	other := others(srv, h)[0]
	t.Logf("the reconciler runs on %s", h.URL)

	// A deploy asked of the server that does not reconcile; its progress
	// streamed from that server.
	mv := metaVersion()
	other.push(t, u, app, webRelease(mv, bin, 2, "WEBAPP_VERSION=one"))
	r := other.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	evs := other.events(t, u, app)
	if len(evs) == 0 || evs[len(evs)-1].Event != "running" {
		t.Fatalf("the events stream of the server that does not reconcile did not end at running: %+v", evs)
	}
	v := h.waitRunning(t, u, app, gen)
	ps.note(t, app, v.Procs[0].Instances)
	if got := other.deployed(t, u, app); got.State != "running" || got.MetaVersion != mv {
		t.Errorf("the other server says %q %s, the holder running %s", got.State, got.MetaVersion, mv)
	}
	h.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })
	if n := other.submits(app, ""); n != 0 {
		t.Errorf("the server that does not hold the reconciler lock submitted %s %d times", app, n)
	}
	if n := h.submits(app, mv); n != 1 {
		t.Errorf("the holder submitted %s at %s %d times, want once", app, mv, n)
	}
	// Logs from either server: the instances run on the holder (the local
	// scheduler is each server's own); the other passes the request on.
	for _, s := range srv {
		lr := s.do(t, "GET", "/api/v1/apps/"+app+"/logs/?stream=stdout", u, nil)
		if !lr.check(t, http.StatusOK) {
			continue
		}
		if n := strings.Count(string(lr.Raw), "listening on"); n != 2 {
			t.Errorf("the logs read from %s (holder: %v) show %d instances listening, want 2: %s", s.URL, s == h, n, lr.Raw)
		}
	}
	// Someone without access to the app is refused on either server.
	stranger := a.newUser(t, "stranger")
	for _, s := range srv {
		s.do(t, "GET", "/api/v1/apps/"+app+"/logs/", stranger, nil).want(t, http.StatusForbidden)
	}
}

// TestClusterKillHolderMidDeploy: three servers; the reconciler's holder
// is killed (SIGKILL) while a deploy is under way. Another server takes
// the reconciler over through the lock's heartbeat, within about the TTL:
// the test keeps the dead holder's Consul session renewed, so Consul
// alone (which lets a session go only after twice its TTL) would never
// hand it over; the new holder ended that session. The deploy converges;
// the new holder submits the version being deployed exactly once, and
// the third server never submits.
func TestClusterKillHolderMidDeploy(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	srv := startCluster(t, 3)
	u := srv[0].newUser(t, "clusterkill")
	app := "killweb"
	srv[1].createApp(t, u, app)
	h := holder(t, srv, 20*time.Second)
	rest := others(srv, h)
	v1, v2 := metaVersion(), metaVersion()
	rest[0].push(t, u, app, webRelease(v1, bin, 2, "WEBAPP_VERSION=one"))
	r := rest[0].do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	v := rest[1].waitRunning(t, u, app, generationOf(t, r))
	before := ps.note(t, app, h.proc(t, u, app, "web").Instances)
	if len(before) != 2 {
		t.Fatalf("instances on the holder before the kill: %+v (app view %+v)", before, v)
	}

	// v2 takes 3s to listen: the deploy is under way when the holder dies.
	rest[1].push(t, u, app, webRelease(v2, bin, 2, "WEBAPP_VERSION=two", "WEBAPP_START_DELAY=3s"))
	r = rest[1].operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	eventually(t, 10*time.Second, "the holder to submit v2", func() bool { return h.submits(app, v2) == 1 })
	if st := rest[0].deployed(t, u, app).State; st != "pending" && st != "deploying" {
		t.Fatalf("the deploy was not under way when the holder was to be killed: state %q", st)
	}
	sess := lockSession(t, h.Opts.Consul, h.ConsulPrefix+"locks/reconciler-leader")
	h.killHard(t)
	killed := time.Now()
	renewals := keepSessionRenewed(t, h.Opts.Consul, sess)
	ps.waitGone(t, before, 10*time.Second, "after the holder was killed")

	h2 := holder(t, rest, 60*time.Second)
	took := time.Since(killed)
	if n := renewals(); n == 0 {
		t.Errorf("the dead holder's session was never renewed after the kill: the hand-over proves nothing")
	}
	if s := lockSession(t, h.Opts.Consul, h.ConsulPrefix+"locks/reconciler-leader"); s == sess || s == "" {
		t.Errorf("after the hand-over the lock names session %q (the dead holder's was %s)", s, sess)
	}
	if sessionKnown(t, h.Opts.Consul, sess) {
		t.Errorf("the dead holder's session %s is still known after the hand-over: nobody ended it", sess)
	}
	conv := h2.waitRunningWithin(t, u, app, gen, 45*time.Second, 100*time.Millisecond)
	t.Logf("the reconciler moved to %s %v after the kill (%q; the dead holder's session kept renewed by the test, so only its heartbeat handed it over); the deploy converged %v after the kill",
		h2.URL, took.Round(100*time.Millisecond), strings.TrimSpace(strings.ReplaceAll(clusterHCL, "\n", " ")), time.Since(killed).Round(100*time.Millisecond))
	if conv.MetaVersion != v2 || conv.Deploy == nil || conv.Deploy.Generation != gen {
		t.Errorf("converged to %s generation %+v, want %s generation %d", conv.MetaVersion, conv.Deploy, v2, gen)
	}
	// Read from the third server too.
	third := others(rest, h2)[0]
	if got := third.deployed(t, u, app); got.State != "running" || got.MetaVersion != v2 {
		t.Errorf("the third server says %q %s", got.State, got.MetaVersion)
	}
	inst := h2.proc(t, u, app, "web").Instances
	ps.note(t, app, inst)
	if len(inst) != 2 {
		t.Errorf("the new holder runs %d instances, want 2: %+v", len(inst), inst)
	}
	h2.routed(t, appHost(app), "version two on the new holder", func(a webAnswer) bool { return a.Version == "two" })
	if n := h2.submits(app, v2); n != 1 {
		t.Errorf("the new holder submitted %s at %s %d times, want once", app, v2, n)
	}
	if n := h2.submits(app, v1); n != 0 {
		t.Errorf("the new holder submitted the old version %s %d times", v1, n)
	}
	if n := third.submits(app, ""); n != 0 {
		t.Errorf("the server that never held the lock submitted %s %d times", app, n)
	}
	// The app is operated as usual through the new cluster.
	r = third.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 1}).want(t, http.StatusAccepted)
	third.waitRunning(t, u, app, generationOf(t, r))
	eventually(t, 15*time.Second, "the new holder to run one instance", func() bool { return len(h2.proc(t, u, app, "web").Instances) == 1 })
	h2.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, 15*time.Second, "no process of "+app, func() bool { return len(processesOf(app)) == 0 })
}
