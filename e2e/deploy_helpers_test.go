package e2e

// Helpers of the deploy-engine end-to-end tests (deploy_*_test.go): the
// test web app, waiting for convergence, requests through the router,
// process checks through /proc, and a hard kill/restart of the server.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// appsDomain is the server's default apps domain (the harness config does
// not set apps.domain): an app is routed at <app>.apps.localhost.
const appsDomain = "apps.localhost"

// buildWebapp builds e2e/testdata/webapp into a temporary directory and
// returns the binary's path.
func buildWebapp(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(appReachable(t, t.TempDir()), "webapp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./testdata/webapp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test web app: %v\n%s", err, out)
	}
	return bin
}

// webRelease is a release whose web proc is the test web app; env entries
// are KEY=VALUE (WEBAPP_VERSION names the version in the app's answers).
func webRelease(mv, bin string, instances int, env ...string) map[string]any {
	web := map[string]any{"cmd": bin, "port": 8080, "memory": "32m", "cpu": 0.5, "num_instances": instances}
	if len(env) > 0 {
		web["env"] = env
	}
	return map[string]any{"meta_version": mv, "web": web}
}

// push records a release as u and checks it was accepted.
func (b *Berth) push(t testing.TB, u *User, app string, body map[string]any) {
	t.Helper()
	b.do(t, "POST", "/api/v1/repos/"+app+"/push/", u, body).want(t, http.StatusCreated)
}

func decodeAs[T any](t testing.TB, r *Resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Raw, &v); err != nil {
		t.Fatalf("%s: decoding the answer: %v", r, err)
	}
	return v
}

// deployed reads GET /api/v1/apps/:app/.
func (b *Berth) deployed(t testing.TB, u *User, app string) api.DeployedApp {
	t.Helper()
	return decodeAs[api.DeployedApp](t, b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusOK))
}

// proc reads GET /api/v1/apps/:app/procs/:proc/.
func (b *Berth) proc(t testing.TB, u *User, app, proc string) api.Proc {
	t.Helper()
	return decodeAs[api.Proc](t, b.do(t, "GET", "/api/v1/apps/"+app+"/procs/"+proc+"/", u, nil).want(t, http.StatusOK))
}

// generationOf is the generation a 202 (or restart's 200) answer names.
func generationOf(t testing.TB, r *Resp) int64 {
	t.Helper()
	g := r.Num("generation")
	if g < 1 {
		t.Fatalf("%s: the answer names no generation", r)
	}
	return int64(g)
}

// waitRunning waits until the app's operation of generation gen (or a
// later one) has converged to running, and returns the app's view. A
// failed deploy ends the test with the server's reason.
func (b *Berth) waitRunning(t testing.TB, u *User, app string, gen int64) api.DeployedApp {
	t.Helper()
	return b.waitRunningWithin(t, u, app, gen, 45*time.Second, 100*time.Millisecond)
}

// waitRunningWithin is waitRunning with a deadline and polling interval of
// the scheduler's pace.
func (b *Berth) waitRunningWithin(t testing.TB, u *User, app string, gen int64, within, every time.Duration) api.DeployedApp {
	t.Helper()
	var v api.DeployedApp
	deadline := time.Now().Add(within)
	for {
		v = b.deployed(t, u, app)
		if v.Deploy != nil && v.Deploy.Generation >= gen {
			switch v.State {
			case "running":
				return v
			case "failed":
				t.Fatalf("app %s generation %d failed: %s (operation %q)", app, gen, v.Message, v.Operation)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s did not reach running at generation %d within %v; last view: state %q generation %d deploy %+v message %q",
				app, gen, within, v.State, v.Generation, v.Deploy, v.Message)
		}
		time.Sleep(every)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Event string
	Data  map[string]any
}

// events streams GET /api/v1/apps/:app/events/?until=final to its end
// (the server closes it at a final state) and returns every event.
func (b *Berth) events(t testing.TB, u *User, app string) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", b.URL+"/api/v1/apps/"+app+"/events/?until=final", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "bearer "+u.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("events of %s: %v", app, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("events of %s: %d %s: %s", app, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Errorf("events of %s: data is not JSON: %q", app, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("events of %s: the stream did not end at a final state: %v (events so far: %v)", app, err, out)
	}
	return out
}

// webAnswer is what the test web app answers.
type webAnswer struct {
	App      string `json:"app"`
	Proc     string `json:"proc"`
	Instance string `json:"instance"`
	PID      int    `json:"pid"`
	Version  string `json:"version"`
	Greeting string `json:"greeting"`
	Host     string `json:"host"`
}

// viaRouter sends GET / with Host host through the local scheduler's
// router; it returns the status and, for a 200, the app's answer.
func (b *Berth) viaRouter(t testing.TB, host string) (int, webAnswer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.RouterAddr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, webAnswer{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a webAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("the app at %s answered 200 with non-JSON %q", host, body)
		}
	}
	return resp.StatusCode, a
}

// routed waits until a request for host through the router answers 200
// with an answer that ok accepts, and returns that answer.
func (b *Berth) routed(t testing.TB, host, what string, ok func(webAnswer) bool) webAnswer {
	t.Helper()
	var last webAnswer
	var code int
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, last = b.viaRouter(t, host)
		if code == http.StatusOK && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the router, %s did not answer %s within 20s: last %d %+v", host, what, code, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appHost(app string) string { return app + "." + appsDomain }

// --- Processes -------------------------------------------------------------

// procStat reads a process's state letter and start time from
// /proc/<pid>/stat ("" when there is no such process).
func procStat(pid int) (st, start string) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", ""
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", ""
	}
	f := strings.Fields(string(data[i+1:]))
	// After comm: state(3) ppid(4) ... starttime(22) -> f[0] and f[19].
	if len(f) < 20 {
		return "", ""
	}
	return f[0], f[19]
}

// procPgid reads a process's group from /proc/<pid>/stat (0 when gone).
func procPgid(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// procEnviron reads a process's environment from /proc/<pid>/environ.
func procEnviron(t testing.TB, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatalf("reading the environment of pid %d: %v", pid, err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// procs remembers every instance process a test has seen (pid and start
// time, so that a recycled pid is not mistaken for the instance) and checks
// that none of them outlives what should have stopped it.
type procTracker struct {
	mu   sync.Mutex
	seen map[int]string // pid -> start time
	app  map[int]string
}

// trackProcs returns a tracker whose final check runs when the test ends,
// after the server has been stopped (call it before startBerth, so that its
// cleanup runs after the server's).
func trackProcs(t *testing.T) *procTracker {
	p := &procTracker{seen: map[int]string{}, app: map[int]string{}}
	t.Cleanup(func() {
		p.mu.Lock()
		pids := make([]int, 0, len(p.seen))
		for pid := range p.seen {
			pids = append(pids, pid)
		}
		p.mu.Unlock()
		sort.Ints(pids)
		p.waitGone(t, pids, 15*time.Second, "after the server stopped")
	})
	return p
}

// note records the instances of a view and returns their pids (0 for an
// instance without a process).
func (p *procTracker) note(t testing.TB, app string, ins []api.Instance) []int {
	t.Helper()
	out := make([]int, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.PID)
		if in.PID <= 0 {
			continue
		}
		st, start := procStat(in.PID)
		if st == "" {
			continue // already gone
		}
		p.mu.Lock()
		if _, ok := p.seen[in.PID]; !ok {
			p.seen[in.PID] = start
			p.app[in.PID] = app
		}
		p.mu.Unlock()
	}
	return out
}

// alive reports whether pid is still the instance process first seen
// under that pid (a zombie counts as gone).
func (p *procTracker) alive(pid int) bool {
	p.mu.Lock()
	start, ok := p.seen[pid]
	p.mu.Unlock()
	st, cur := procStat(pid)
	if st == "" || st == "Z" || st == "X" {
		return false
	}
	if ok && cur != start {
		return false // the pid was recycled
	}
	return syscall.Kill(pid, 0) == nil
}

// waitGone waits until none of pids is alive.
func (p *procTracker) waitGone(t testing.TB, pids []int, timeout time.Duration, when string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, pid := range pids {
			if pid > 0 && p.alive(pid) {
				p.mu.Lock()
				left = append(left, fmt.Sprintf("%d (%s)", pid, p.app[pid]))
				p.mu.Unlock()
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("instance processes left behind %s: %s", when, strings.Join(left, ", "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesOf lists the live (non-zombie) processes whose environment says
// they are an instance of app (BERTH_APP=app), whatever server started them.
func processesOf(app string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("\x00BERTH_APP=" + app + "\x00")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), want) {
			continue
		}
		if st, _ := procStat(pid); st != "" && st != "Z" && st != "X" {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// --- Hard kill and restart of the server ------------------------------------

// killHard sends SIGKILL to the berth server (no graceful shutdown: its
// child processes lose their parent) and waits for it to be gone.
func (b *Berth) killHard(t testing.TB) {
	t.Helper()
	if b.cmd == nil {
		t.Fatal("the server is not running")
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL to berth: %v", err)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not die within 10s of SIGKILL")
	}
	killGroup(b.cmd) // only the server's own group; app instances have their own
	b.killed = true
}

// restartSame starts a new berth server on the same config (data dir,
// API and router ports) in place of one that was killed, and waits for
// /healthz. The harness's cleanup stops it as usual.
func (b *Berth) restartSame(t testing.TB) {
	t.Helper()
	select {
	case <-b.exited:
	default:
		t.Fatal("restartSame: the previous server is still running")
	}
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(berthBin, "server", "-config", b.ConfigPath)
		cmd.Dir = b.Dir
		cmd.Stdout, cmd.Stderr = b.log, b.log
		cmd.SysProcAttr = serverProcAttr()
		fmt.Fprintf(b.log, "\n=== e2e: restarting berth on the same data dir (attempt %d) ===\n", attempt)
		if err := cmd.Start(); err != nil {
			t.Fatalf("restarting berth: %v", err)
		}
		exited := make(chan struct{})
		b.cmd, b.exited, b.killed = cmd, exited, false
		go func() { b.exitErr = cmd.Wait(); close(exited) }()
		for {
			select {
			case <-exited:
				if time.Now().After(deadline) {
					t.Fatalf("the restarted server keeps exiting (%v); log:\n%s", b.exitErr, b.log.String())
				}
				time.Sleep(300 * time.Millisecond) // e.g. a port still held
			default:
				resp, err := b.http.Get(b.URL + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("the restarted server did not answer /healthz within 30s (%v)", err)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
	}
}

// operate sends a state-changing request on a deployed app that the test
// has just seen converge. The server publishes the final state of an
// operation a moment before it releases the app's lease (see
// TestDeployLeaseFreeAtFinalState), so a 409 "busy" is retried for a few
// seconds here; every retry is logged.
func (b *Berth) operate(t testing.TB, method, path string, u *User, body any) *Resp {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := b.do(t, method, path, u, body)
		if r.Code != http.StatusConflict || time.Now().After(deadline) {
			return r
		}
		if _, busy := r.Obj()["lock_holder"]; !busy {
			return r
		}
		t.Logf("retrying %s %s: the app's lease was still held after its operation had converged: %s", method, path, r.Str("error"))
		time.Sleep(20 * time.Millisecond)
	}
}
