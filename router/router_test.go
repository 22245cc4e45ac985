package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/devagent"
)

func TestMain(m *testing.M) {
	// The agent is stopped before the check for leaked goroutines.
	goleak.VerifyTestMain(devagent.RunThenShutdown(m))
}

// counting counts the HTTP requests made to Consul.
type counting struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

type fixture struct {
	t      *testing.T
	client *api.Client // the test's own client (registrations)
	calls  *counting   // requests of the router's client
	src    *Consul
	url    string
	suffix string
}

func uniq(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newFixture starts a Consul-fed router on a dev agent. Its blocking
// queries wait up to 10 minutes: a change seen within the test's bounds
// came by the watch's index, not by a poll.
func newFixture(t *testing.T, cfg ConsulConfig) *fixture {
	t.Helper()
	addr := devagent.Consul(t)
	own, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	calls := &counting{base: tr}
	rc, err := api.NewClient(&api.Config{Address: addr, HttpClient: &http.Client{Transport: calls}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client = rc
	cfg.WaitTime = 10 * time.Minute
	src := NewConsul(cfg)
	p := NewProxy(src, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln, p, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		p.Close()
		src.Close()
		tr.CloseIdleConnections()
	})
	return &fixture{t: t, client: own, calls: calls, src: src, url: "http://" + ln.Addr().String(), suffix: uniq(t)}
}

// backend is an app instance: it answers its name and what the router
// forwarded.
type answer struct {
	Name, Host, XFF, XFHost, XFProto, Body string
}

func backend(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(answer{Name: name, Host: r.Host, XFF: r.Header.Get("X-Forwarded-For"),
			XFHost: r.Header.Get("X-Forwarded-Host"), XFProto: r.Header.Get("X-Forwarded-Proto"), Body: string(b)})
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(t *testing.T, rawURL string) (string, int) {
	h, p, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// register registers an instance of service name at rawURL with a TTL
// check in status, and deregisters it at the end of the test.
func (f *fixture) register(id, name, rawURL, status string, tags ...string) {
	f.t.Helper()
	h, p := hostPort(f.t, rawURL)
	err := f.client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Address: h, Port: p, Tags: tags,
		Check: &api.AgentServiceCheck{CheckID: "service:" + id, TTL: "1h", Status: status},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = f.client.Agent().ServiceDeregister(id) })
}

func (f *fixture) setHealth(id, status string) {
	f.t.Helper()
	if err := f.client.Agent().UpdateTTL("service:"+id, "", status); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) do(method, host, body string) (int, []byte, http.Header) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+"/some/path?q=1", strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatalf("%s via router (Host %s): %v", method, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// names sends n GETs for host and answers which instances answered; any
// other status fails the test.
func (f *fixture) names(host string, n int) map[string]int {
	f.t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		code, b, _ := f.do("GET", host, "")
		if code != http.StatusOK {
			f.t.Fatalf("GET Host %s: %d %s", host, code, b)
		}
		var a answer
		if err := json.Unmarshal(b, &a); err != nil {
			f.t.Fatalf("answer %q: %v", b, err)
		}
		got[a.Name]++
	}
	return got
}

// until waits (bounded) for cond, re-checking at every change of the
// router's copy of the catalog.
func (f *fixture) until(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		ch := f.src.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *fixture) status(host string) int {
	code, _, _ := f.do("GET", host, "")
	return code
}

func errorOf(t *testing.T, b []byte) string {
	var e map[string]string
	if err := json.Unmarshal(b, &e); err != nil || e["error"] == "" {
		t.Fatalf("answer %q: want a JSON body {\"error\": ...}", b)
	}
	return e["error"]
}

func TestRoutesToPassingInstancesOnly(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "web" + f.suffix
	host := app + ".apps.test"
	svc := app + "-web"
	tags := []string{"berth", "berth-app=" + app, "berth-proc=web", "urlprefix-" + host + "/"}
	a, b, c := backend(t, "a"), backend(t, "b"), backend(t, "c")
	f.register(svc+"-a", svc, a.URL, api.HealthPassing, tags...)
	f.register(svc+"-b", svc, b.URL, api.HealthPassing, tags...)
	f.register(svc+"-c", svc, c.URL, api.HealthCritical, tags...)
	f.until("two passing instances", func() bool {
		t, ok, err := f.src.Route(host)
		return err == nil && ok && len(t.Addrs) == 2
	})

	before := f.calls.n.Load()
	got := f.names(strings.ToUpper(host)+":8081", 40)
	if got["c"] != 0 || got["a"] != 20 || got["b"] != 20 {
		t.Fatalf("answers by instance %v: want a and b round robin (20 each), never c (critical)", got)
	}
	// Only the watches talk to Consul (a few rounds may fall meanwhile, as
	// the other tests' services come and go on the shared agent); a
	// request never does.
	if d := f.calls.n.Load() - before; d >= 10 {
		t.Errorf("40 routed requests came with %d requests to Consul; want only a few rounds of the watches (the router reads its copy)", d)
	}

	// The request as the instance sees it.
	code, body, _ := f.do("POST", host, "hello")
	var ans answer
	if code != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("POST: %d %s", code, body)
	}
	if ans.Host != host || ans.XFHost != host || ans.XFProto != "http" || ans.XFF != "127.0.0.1" || ans.Body != "hello" {
		t.Errorf("instance saw %+v: want Host and X-Forwarded-Host %s, X-Forwarded-Proto http, X-Forwarded-For 127.0.0.1, the body", ans, host)
	}
}

func TestFollowsHealthChanges(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "flip" + f.suffix
	host := app + ".apps.test"
	svc := app + "-web"
	tags := []string{"berth", "berth-app=" + app, "urlprefix-" + host + "/"}
	a, b := backend(t, "a"), backend(t, "b")

	f.until("the catalog read", func() bool { _, _, err := f.src.Route(host); return err == nil })
	if code, body, _ := f.do("GET", host, ""); code != http.StatusNotFound || !strings.Contains(errorOf(t, body), host) {
		t.Fatalf("before registration: %d %s, want 404 naming the host", code, body)
	}

	f.register(svc+"-a", svc, a.URL, api.HealthPassing, tags...)
	f.until("instance a routed", func() bool { return f.status(host) == 200 })

	// A new instance is picked up.
	f.register(svc+"-b", svc, b.URL, api.HealthPassing, tags...)
	f.until("instance b routed", func() bool { return f.names(host, 2)["b"] > 0 })

	// A failing one is dropped.
	f.setHealth(svc+"-a", api.HealthCritical)
	f.until("instance a dropped", func() bool { t, _, _ := f.src.Route(host); return len(t.Addrs) == 1 })
	if got := f.names(host, 6); got["b"] != 6 {
		t.Fatalf("after a failed its check, answers %v; want b only", got)
	}

	// None healthy: 502 naming the app.
	f.setHealth(svc+"-b", api.HealthCritical)
	f.until("no instance routed", func() bool { t, _, _ := f.src.Route(host); return len(t.Addrs) == 0 })
	code, body, _ := f.do("GET", host, "")
	if msg := errorOf(t, body); code != http.StatusBadGateway || !strings.Contains(msg, app) || !strings.Contains(msg, "no healthy") {
		t.Fatalf("no healthy instance: %d %s, want 502 saying the app has no healthy instance", code, body)
	}

	// Back to health, then gone from the catalog: 404.
	f.setHealth(svc+"-b", api.HealthPassing)
	f.until("b back", func() bool { return f.status(host) == 200 })
	_ = f.client.Agent().ServiceDeregister(svc + "-a")
	_ = f.client.Agent().ServiceDeregister(svc + "-b")
	f.until("the service gone", func() bool { return f.status(host) == http.StatusNotFound })
}

func TestHostsAndDomains(t *testing.T) {
	f := newFixture(t, ConsulConfig{TagsPrefix: "traefik.http.host=", ClusterID: "c1"})
	app := "dom" + f.suffix
	host, custom := app+".apps.test", "www."+app+".example.com"
	a, other, foreign := backend(t, "a"), backend(t, "other"), backend(t, "foreign")
	f.register(app+"-web-a", app+"-web", a.URL, api.HealthPassing,
		"berth", "berth-app="+app, "berth-cluster=c1", "traefik.http.host="+host+"/", "traefik.http.host="+custom+"/")
	// Not Berth's: no "berth" tag.
	f.register(app+"-x", app+"-x", other.URL, api.HealthPassing, "traefik.http.host=x."+app+".example.com/")
	// Another Berth cluster's app.
	f.register(app+"-y", app+"-y", foreign.URL, api.HealthPassing,
		"berth", "berth-app=y", "berth-cluster=c2", "traefik.http.host=y."+app+".example.com/")
	f.until("the app routed", func() bool { return f.status(host) == 200 })

	if got := f.names(custom+".", 3); got["a"] != 3 {
		t.Fatalf("custom domain answered by %v, want a", got)
	}
	for _, h := range []string{"x." + app + ".example.com", "y." + app + ".example.com", "nosuch." + app + ".example.com"} {
		code, body, _ := f.do("GET", h, "")
		if code != http.StatusNotFound || !strings.Contains(errorOf(t, body), h) {
			t.Errorf("Host %s: %d %s, want 404 naming the host", h, code, body)
		}
	}
}

func TestRetriesAnotherInstanceOnConnectFailure(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "retry" + f.suffix
	host := app + ".apps.test"
	tags := []string{"berth", "berth-app=" + app, "urlprefix-" + host + "/"}
	a := backend(t, "a")
	// An instance whose check still passes but whose process is gone.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	f.register(app+"-a", app+"-web", a.URL, api.HealthPassing, tags...)
	f.register(app+"-dead", app+"-web", dead, api.HealthPassing, tags...)
	f.until("both routed", func() bool { t, _, _ := f.src.Route(host); return len(t.Addrs) == 2 })
	for i := 0; i < 6; i++ {
		code, body, _ := f.do("PUT", host, "payload "+strconv.Itoa(i))
		var ans answer
		if code != 200 || json.Unmarshal(body, &ans) != nil || ans.Name != "a" || ans.Body != "payload "+strconv.Itoa(i) {
			t.Fatalf("PUT %d: %d %s, want a's answer with the whole body", i, code, body)
		}
	}
	// Only the dead one: 502 naming the app.
	f.setHealth(app+"-a", api.HealthCritical)
	f.until("a dropped", func() bool { t, _, _ := f.src.Route(host); return len(t.Addrs) == 1 })
	code, body, _ := f.do("GET", host, "")
	if code != http.StatusBadGateway || !strings.Contains(errorOf(t, body), app) {
		t.Fatalf("dead instance only: %d %s, want 502 naming the app", code, body)
	}
}

func TestUpgradeAndStreamingPassThrough(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "ws" + f.suffix
	host := app + ".apps.test"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			// A stream: lines written one by one, flushed.
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 3; i++ {
				_, _ = io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
				w.(http.Flusher).Flush()
			}
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		_, _ = rw.WriteString("echo " + line)
		_ = rw.Flush()
	}))
	defer up.Close()
	f.register(app+"-a", app+"-web", up.URL, api.HealthPassing, "berth", "berth-app="+app, "urlprefix-"+host+"/")
	f.until("routed", func() bool { t, _, _ := f.src.Route(host); return len(t.Addrs) == 1 })

	code, body, hdr := f.do("GET", host, "")
	if code != 200 || string(body) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q %v", code, body, hdr)
	}

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(f.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_, _ = io.WriteString(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("after the upgrade: %q %v, want the instance's echo", line, err)
	}
}

func TestNotReadyWithoutConsul(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rc, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	src := NewConsul(ConsulConfig{Client: rc})
	defer src.Close()
	p := NewProxy(src, Options{})
	defer p.Close()
	// Wait for the first failed read (the answer then names its error).
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		ch := src.Changed()
		if _, _, err := src.Route("x.apps.test"); err != nil && strings.Contains(err.Error(), "connect") {
			break
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatal("no failed read of the catalog reported")
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://x.apps.test/", nil)
	p.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !bytes.Contains(w.Body.Bytes(), []byte("Consul")) {
		t.Fatalf("before the catalog was read: %d %v %s, want 503 with Retry-After naming Consul", w.Code, w.Header(), w.Body)
	}
}

// A node's own check failing (here: maintenance mode) takes its instances
// out; they come back with it.
func TestNodeChecks(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "node" + f.suffix
	host := app + ".apps.test"
	a := backend(t, "a")
	f.register(app+"-a", app+"-web", a.URL, api.HealthPassing, "berth", "berth-app="+app, "urlprefix-"+host+"/")
	f.until("routed", func() bool { return f.status(host) == 200 })
	if err := f.client.Agent().EnableNodeMaintenance("router test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.client.Agent().DisableNodeMaintenance() })
	f.until("the node's instances dropped", func() bool { return f.status(host) == http.StatusBadGateway })
	if err := f.client.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	f.until("the node's instances back", func() bool { return f.status(host) == 200 })
}

// An instance re-registered with another route (its checks unchanged)
// serves the new host.
func TestRoutesChangeInPlace(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	app := "inplace" + f.suffix
	host, custom := app+".apps.test", "new."+app+".example.com"
	a := backend(t, "a")
	f.register(app+"-a", app+"-web", a.URL, api.HealthPassing, "berth", "berth-app="+app, "urlprefix-"+host+"/")
	f.until("routed", func() bool { return f.status(host) == 200 })
	if code := f.status(custom); code != http.StatusNotFound {
		t.Fatalf("%s before it was added: %d, want 404", custom, code)
	}
	f.register(app+"-a", app+"-web", a.URL, api.HealthPassing, "berth", "berth-app="+app, "urlprefix-"+host+"/", "urlprefix-"+custom+"/")
	f.until("the new route served", func() bool { return f.status(custom) == 200 })
	if code := f.status(host); code != 200 {
		t.Fatalf("%s after the route was added: %d", host, code)
	}
}

// The cost of a change grows with the change, not with the apps: with
// many routed services, one instance failing its check costs a round of
// the checks watch and one read of that service.
func TestOneChangeOneRead(t *testing.T) {
	f := newFixture(t, ConsulConfig{})
	const n = 100
	a := backend(t, "a")
	host := func(i int) string { return "many" + strconv.Itoa(i) + "-" + f.suffix + ".apps.test" }
	for i := 0; i < n; i++ {
		app := "many" + strconv.Itoa(i) + "-" + f.suffix
		f.register(app+"-a", app+"-web", a.URL, api.HealthPassing, "berth", "berth-app="+app, "urlprefix-"+host(i)+"/")
	}
	f.until("every service routed", func() bool {
		for i := 0; i < n; i++ {
			if t, _, err := f.src.Route(host(i)); err != nil || len(t.Addrs) != 1 {
				return false
			}
		}
		return true
	})
	// Settled: the checks watch has seen every check, no read pending.
	f.until("the watches settled", func() bool {
		f.src.mu.RLock()
		defer f.src.mu.RUnlock()
		for i := 0; i < n; i++ {
			if !strings.Contains(f.src.prints["many"+strconv.Itoa(i)+"-"+f.suffix+"-web"], "=passing") {
				return false
			}
		}
		return len(f.src.dirty) == 0 && !f.src.reading
	})
	before := f.calls.n.Load()
	f.setHealth("many7-"+f.suffix+"-a", api.HealthCritical)
	f.until("the failing instance dropped", func() bool { t, _, _ := f.src.Route(host(7)); return len(t.Addrs) == 0 })
	d := f.calls.n.Load() - before
	t.Logf("%d routed services: one check failing cost %d requests to Consul", n, d)
	if d > 4 {
		t.Errorf("one check change among %d services cost %d requests to Consul; want a watch round and one read (about 2)", n, d)
	}
}
