package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/devagent"
)

// ownAgent is a Consul or Vault agent of this test alone (the harness's
// agents are shared by every test, so they cannot be stopped).
type ownAgent struct {
	name string
	bin  string
	args []string
	dir  string
	log  *syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func (a *ownAgent) start(t *testing.T) {
	t.Helper()
	a.log = &syncBuffer{}
	cmd := exec.Command(a.bin, a.args...)
	cmd.Dir = a.dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+a.dir)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", a.name, err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(a.done)
}

// stop ends the agent (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (a *ownAgent) stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		killGroup(a.cmd)
		<-a.done
	}
	killGroup(a.cmd)
	a.cmd = nil
}

func (a *ownAgent) signal(sig syscall.Signal) {
	if a.cmd != nil {
		_ = a.cmd.Process.Signal(sig)
	}
}

// freeze stops the agent (SIGSTOP) and returns once every thread of it
// is stopped. kill(2) returns before that: the stop reaches each thread
// when it is next scheduled, and on a busy machine a thread woken by an
// incoming request may still answer it first.
func (a *ownAgent) freeze(t *testing.T) {
	t.Helper()
	a.signal(syscall.SIGSTOP)
	dir := "/proc/" + strconv.Itoa(a.cmd.Process.Pid) + "/task"
	if _, err := os.Stat(dir); err != nil {
		time.Sleep(200 * time.Millisecond) // no /proc: give the stop time to land
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for !allStopped(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not every thread stopped 10s after SIGSTOP", a.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allStopped reports whether every thread under /proc/<pid>/task is in
// state T (stopped).
func allStopped(dir string) bool {
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// agentPorts finds n free loopback ports (TCP and UDP, as Serf uses both).
func agentPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		addr := freeAddr(t)
		p, _ := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
		ports = append(ports, p)
	}
	return ports
}

func httpReady(url, token string, ok func(code int, body []byte) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return ok(resp.StatusCode, buf.Bytes())
}

// ownConsul starts a Consul server that keeps its data in a directory
// (not -dev, which keeps it in memory), so that it can be stopped and
// started again with its data.
func ownConsul(t *testing.T) (*ownAgent, string) {
	t.Helper()
	bin := devagent.BinaryPath("consul")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no consul binary at %s (make agents builds it): %v", bin, err)
	}
	p := agentPorts(t, 4)
	dir := t.TempDir()
	a := &ownAgent{name: "consul", bin: bin, dir: dir, args: []string{"agent", "-server", "-bootstrap-expect", "1",
		"-data-dir", filepath.Join(dir, "data"), "-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
		"-http-port", strconv.Itoa(p[0]), "-serf-lan-port", strconv.Itoa(p[1]), "-serf-wan-port", strconv.Itoa(p[2]),
		"-server-port", strconv.Itoa(p[3]), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-node", "berth-e2e-down", "-log-level", "warn", "-hcl", "performance { raft_multiplier = 1 }"}}
	addr := "http://127.0.0.1:" + strconv.Itoa(p[0])
	a.start(t)
	t.Cleanup(a.stop)
	a.waitReady(t, addr)
	return a, addr
}

func (a *ownAgent) waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !httpReady(addr+"/v1/status/leader", "", func(code int, body []byte) bool {
		return code == 200 && len(bytes.Trim(body, "\" \n")) > 0
	}) {
		if time.Now().After(deadline) {
			t.Fatalf("consul not ready after 30s:\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownVault starts a Vault dev server.
func ownVault(t *testing.T) (*ownAgent, string, string) {
	t.Helper()
	bin := devagent.BinaryPath("vault")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no vault binary at %s (make agents builds it): %v", bin, err)
	}
	var port int
	for {
		// Vault binds PORT and PORT+1 (its cluster listener).
		port = agentPorts(t, 1)[0]
		if port < 65535 && !strings.HasSuffix(freeAddr(t), ":"+strconv.Itoa(port+1)) {
			break
		}
	}
	tok := "root-" + randHex(16)
	a := &ownAgent{name: "vault", bin: bin, dir: t.TempDir(), args: []string{"server", "-dev",
		"-dev-listen-address", "127.0.0.1:" + strconv.Itoa(port), "-dev-root-token-id", tok, "-dev-no-store-token", "-log-level", "warn"}}
	addr := "http://127.0.0.1:" + strconv.Itoa(port)
	a.start(t)
	t.Cleanup(a.stop)
	deadline := time.Now().Add(30 * time.Second)
	for !httpReady(addr+"/v1/secret/config", tok, func(code int, _ []byte) bool { return code == 200 }) {
		if time.Now().After(deadline) {
			t.Fatalf("vault not ready after 30s:\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a, addr, tok
}

// wantUnavailable checks a 503 naming backend, with Retry-After.
func wantUnavailable(t *testing.T, r *Resp, backend string) {
	t.Helper()
	r.want(t, http.StatusServiceUnavailable)
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra <= 0 {
		t.Errorf("%s: Retry-After %q, want seconds", r, r.Header.Get("Retry-After"))
	}
	if r.Str("backend") != backend || !strings.Contains(r.Str("error"), "("+backend+") is unavailable") || r.Num("retry_after") != float64(ra) {
		t.Errorf("%s: want the body to name %s", r, backend)
	}
}

// TestBackendsDown: with Consul stopped, reads and writes answer 503 with
// Retry-After and a body naming consul (at once: a stopped agent refuses
// connections), and /healthz says the store (consul) is down; when Consul
// is started again, requests succeed with no operator action and the app
// made before is there. With Vault frozen (SIGSTOP: it accepts
// connections and does not answer), requests that need it answer 503
// naming vault within the call deadline, not hang, while a read with a
// token already checked answers; when it resumes, they succeed.
func TestBackendsDown(t *testing.T) {
	consul, caddr := ownConsul(t)
	vault, vaddr, vtok := ownVault(t)
	b := startBerth(t, Options{Consul: caddr, Vault: vaddr, VaultToken: vtok})
	u := b.newUser(t, "dev")
	app := b.unique("kept")
	b.createApp(t, u, app)
	b.do(t, "GET", "/healthz", nil, nil).want(t, 200)

	consul.stop()
	start := time.Now()
	wantUnavailable(t, b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil), "consul")
	wantUnavailable(t, b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": b.unique("new")}), "consul")
	t.Logf("consul stopped: a read and a write answered 503 in %v", time.Since(start))
	eventually(t, 10*time.Second, "/healthz to name consul down", func() bool {
		r := b.do(t, "GET", "/healthz", nil, nil)
		st, _ := r.Obj()["backends"].(map[string]any)["store"].(map[string]any)
		sec, _ := r.Obj()["backends"].(map[string]any)["secrets"].(map[string]any)
		return r.Code == 503 && r.Str("status") == "degraded" && st["backend"] == "consul" && st["ok"] == false &&
			st["error"] != "" && sec["ok"] == true
	})

	consul.start(t)
	consul.waitReady(t, caddr)
	restarted := time.Now()
	eventually(t, 30*time.Second, "reads to succeed after consul's restart", func() bool {
		return b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil).Code == 200
	})
	t.Logf("consul back: reads succeed %v after its leader is elected", time.Since(restarted))
	if r := b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil).want(t, 200); !strings.Contains(string(r.Raw), app) {
		t.Fatalf("the app made before the outage: %s", r)
	}
	b.createApp(t, u, b.unique("after"))
	eventually(t, 10*time.Second, "/healthz ok again", func() bool { return b.do(t, "GET", "/healthz", nil, nil).Code == 200 })

	// Vault frozen: the requests at once, each bounded by the call
	// deadline. They are sent once every thread of Vault has stopped. A
	// token not used yet must be read from Vault, and so must a write of
	// private values: 503 naming vault. A read with a token the server
	// has already checked needs no Vault (the token cache): it answers.
	fresh := &User{Email: u.Email, Token: b.login(t, u.Email, u.Password)}
	vault.freeze(t)
	defer vault.signal(syscall.SIGCONT)
	var wg sync.WaitGroup
	resps := make([]*Resp, 3)
	start = time.Now()
	for i, req := range []struct {
		method, path string
		who          *User
		body         any
	}{{"GET", "/api/v1/repos/" + app + "/", fresh, nil}, {"POST", "/apps/" + app + "/env", u, map[string]any{"envs": []map[string]any{{"name": "TOKEN", "value": "s3cret"}}, "norestart": true}},
		{"GET", "/api/v1/repos/" + app + "/", u, nil}} {
		wg.Add(1)
		go func(i int, method, path string, who *User, body any) {
			defer wg.Done()
			r, err := b.try(method, path, who, body, nil)
			if err != nil {
				t.Errorf("%s %s with vault frozen: %v (a hang?)", method, path, err)
				return
			}
			resps[i] = r
		}(i, req.method, req.path, req.who, req.body)
	}
	wg.Wait()
	t.Logf("vault frozen: the requests answered in %v", time.Since(start))
	for _, r := range resps[:2] {
		if r != nil {
			wantUnavailable(t, r, "vault")
		}
	}
	if r := resps[2]; r != nil && r.Code != 200 {
		t.Errorf("a read with a token already checked, with vault frozen: %s", r)
	}
	vault.signal(syscall.SIGCONT)
	eventually(t, 20*time.Second, "requests to succeed after vault resumes", func() bool {
		return b.do(t, "GET", "/api/v1/repos/"+app+"/", u, nil).Code == 200
	})
}
