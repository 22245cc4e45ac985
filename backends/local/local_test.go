package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/schedulertest"
	"github.com/berthpaas/berth/names"
)

var (
	helloOnce sync.Once
	helloBin  string
	helloErr  error
	helloDir  string
	// token marks every process this test binary starts (through the
	// app's Env), so that leftovers can be found.
	token = "berth-local-test-" + randToken()
)

func TestMain(m *testing.M) {
	// This test binary is also the process shim of the schedulers it runs
	// (Config.Shim defaults to os.Executable() proc-shim).
	if len(os.Args) > 1 && os.Args[1] == ShimCommand {
		os.Exit(ShimMain(os.Args[2:]))
	}
	if os.Getenv("BERTH_LOCAL_HELPER") == "unpriv" {
		unprivHelper()
		return
	}
	if os.Getenv("BERTH_LOCAL_HELPER") != "" {
		helperMain()
		return
	}
	// Every scheduler the tests start is closed, and Close returns only
	// once its goroutines (spawner, supervisors, probes, router) are gone:
	// after the tests, none may be left.
	goleak.VerifyTestMain(checkedM{m})
}

// checkedM runs the tests, then checks for (and kills) processes they left
// behind; a leftover fails the run.
type checkedM struct{ m *testing.M }

func (c checkedM) Run() int {
	code := c.m.Run()
	if helloDir != "" {
		os.RemoveAll(helloDir)
	}
	if left := processesWithToken(token); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left behind by the tests: %v\n", left)
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

// hello builds testdata/hello once per test binary.
func hello(t testing.TB) string {
	t.Helper()
	helloOnce.Do(func() {
		helloDir, helloErr = os.MkdirTemp("", "berth-hello-")
		if helloErr != nil {
			return
		}
		helloBin = filepath.Join(helloDir, "hello")
		cmd := exec.Command("go", "build", "-o", helloBin, "./testdata/hello")
		out, err := cmd.CombinedOutput()
		if err != nil {
			helloErr = fmt.Errorf("go build testdata/hello: %v\n%s", err, out)
		}
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloBin
}

// processesWithToken lists the processes whose environment carries tok.
func processesWithToken(tok string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "BERTH_TEST_TOKEN="+tok+"\x00") {
			// A zombie has an empty environ, so this one is alive.
			out = append(out, pid)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func newScheduler(t testing.TB, dir string) *Scheduler {
	t.Helper()
	s, err := New(Config{
		DataDir:     dir,
		RouterAddr:  "127.0.0.1:0",
		AppsDomain:  "apps.localhost",
		StopTimeout: 3 * time.Second,
		Logger:      hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func helloSpec(t testing.TB, name string) *backends.AppSpec {
	bin := hello(t)
	return &backends.AppSpec{
		App:         name,
		MetaVersion: "v1",
		Procs: []backends.ProcSpec{
			{Name: "web", Type: backends.ProcWeb, Cmd: bin, Instances: 1, CPU: 0.1, MemoryMB: 32,
				Env: map[string]string{"GREETING": "hi"}, HealthCheck: "/ping"},
			{Name: "worker", Type: backends.ProcWorker, Cmd: "sleep 300", Instances: 1, CPU: 0.1, MemoryMB: 16},
		},
		Env:        map[string]string{"BERTH_TEST_TOKEN": token},
		PrivateEnv: map[string]string{"SECRET_SET": "s3cr3t"},
		Routes:     []string{name + ".apps.localhost"},
	}
}

type helloAnswer struct {
	App      string `json:"app"`
	Instance string `json:"instance"`
	PID      int    `json:"pid"`
	Greeting string `json:"greeting"`
	Secret   bool   `json:"secret"`
	Host     string `json:"host"`
}

// get sends a request for host through the router.
func get(t testing.TB, s *Scheduler, host, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.RouterURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// servingThroughRouter checks that requests through the router reach every
// running web instance, round robin, with the app's environment.
func servingThroughRouter(t testing.TB, bs backends.Scheduler, spec *backends.AppSpec, st *backends.AppStatus) {
	t.Helper()
	s := bs.(*Scheduler)
	want := map[string]bool{}
	for _, in := range st.Instances {
		if in.Proc == "web" {
			want[strconv.Itoa(in.Index)] = true
		}
	}
	got := map[string]int{}
	for i := 0; i < 3*len(want); i++ {
		code, body := get(t, s, spec.Routes[0]+":8081", "/")
		if code != http.StatusOK {
			t.Fatalf("GET via router: %d %s", code, body)
		}
		var a helloAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("answer %q: %v", body, err)
		}
		if a.App != spec.App || a.Greeting != "hi" || !a.Secret {
			t.Fatalf("answer %+v: want app %s, greeting hi, secret set", a, spec.App)
		}
		got[a.Instance]++
	}
	for k := range want {
		if got[k] != 3 {
			t.Errorf("round robin over %d instances: instance %s answered %d of %d requests (%v)", len(want), k, got[k], 3*len(want), got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("answered by instances %v, want exactly %v", got, want)
	}
}

func noneLeft(t testing.TB, spec *backends.AppSpec, last *backends.AppStatus) {
	t.Helper()
	for _, in := range last.Instances {
		if in.PID != 0 && alive(in.PID) {
			t.Errorf("instance %s (pid %d) still alive after Stop", in.ID, in.PID)
		}
	}
}

func TestConformance(t *testing.T) {
	schedulertest.Run(t, func(t testing.TB) backends.Scheduler {
		return newScheduler(t, t.TempDir())
	}, schedulertest.AppFactory{
		New:     helloSpec,
		Serving: servingThroughRouter,
		Gone:    noneLeft,
		Crashing: func(t testing.TB, name string) *backends.AppSpec {
			spec := helloSpec(t, name)
			spec.Procs = spec.Procs[:1]
			spec.Procs[0].Env = map[string]string{"HELLO_CRASH": "1"}
			return spec
		},
		CrashStderr: "hello: crashing as asked",
		Logging: func(t testing.TB, name string) *backends.AppSpec {
			return logsSpecProc(name, "log", schedulertest.LoggingCmd)
		},
		Timeout: 30 * time.Second,
	})
}

func waitStatus(t testing.TB, s *Scheduler, app string, what string, cond func(*backends.AppStatus) bool) *backends.AppStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *backends.AppStatus
	for time.Now().Before(deadline) {
		st, err := s.Status(context.Background(), app)
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last status %+v", what, last)
	return nil
}

func running(st *backends.AppStatus) bool { return st.Deployment == backends.DeployRunning }

func TestKilledInstanceIsHealed(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	spec := helloSpec(t, "heal")
	spec.Procs = spec.Procs[:1]
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, s, "heal", "running", running)
	pid := st.Instances[0].PID
	if pid == 0 || !alive(pid) {
		t.Fatalf("instance pid %d not alive", pid)
	}
	// The command is simple, so the pid is hello's own (the shell exec'd it).
	code, body := get(t, s, "heal.apps.localhost", "/")
	var a helloAnswer
	_ = json.Unmarshal(body, &a)
	if code != 200 || a.PID != pid {
		t.Fatalf("answer %d %s: want pid %d", code, body, pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, s, "heal", "a new pid, running", func(st *backends.AppStatus) bool {
		in := st.Instances[0]
		return in.State == backends.StateRunning && in.PID != pid && in.PID != 0
	})
	in := st.Instances[0]
	if in.Restarts != 1 || !strings.Contains(in.Message, "ready") {
		t.Errorf("healed instance: restarts %d message %q", in.Restarts, in.Message)
	}
	if code, body := get(t, s, "heal.apps.localhost", "/"); code != 200 {
		t.Fatalf("after healing: %d %s", code, body)
	}
	if err := s.Stop(context.Background(), "heal"); err != nil {
		t.Fatal(err)
	}
	if alive(in.PID) {
		t.Fatalf("pid %d alive after Stop", in.PID)
	}
}

func TestRouterErrors(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	code, body := get(t, s, "nosuch.apps.localhost", "/")
	var e map[string]string
	if code != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e["error"] == "" {
		t.Fatalf("unknown host: %d %s, want 404 with a JSON error", code, body)
	}
	spec := helloSpec(t, "idle")
	spec.Procs = spec.Procs[:1]
	spec.Procs[0].Instances = 0
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	// Without Routes the app is still served at <app>.<AppsDomain>.
	noRoutes := helloSpec(t, "plain")
	noRoutes.Procs = noRoutes.Procs[:1]
	noRoutes.Routes = nil
	if err := s.Submit(context.Background(), noRoutes); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "plain", "running", running)
	if code, body := get(t, s, "plain.apps.localhost", "/"); code != 200 || !strings.Contains(string(body), `"app":"plain"`) {
		t.Fatalf("app without routes: %d %s", code, body)
	}
	code, body = get(t, s, "idle.apps.localhost", "/")
	if code != http.StatusBadGateway || json.Unmarshal(body, &e) != nil || !strings.Contains(e["error"], "idle") {
		t.Fatalf("app without instances: %d %s, want 502 with a JSON error", code, body)
	}
}

func TestRouteSwap(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	a, b := helloSpec(t, "blue"), helloSpec(t, "green")
	a.Procs, b.Procs = a.Procs[:1], b.Procs[:1]
	for _, sp := range []*backends.AppSpec{a, b} {
		if err := s.Submit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, s, sp.App, "running", running)
	}
	who := func(host string) string {
		code, body := get(t, s, host, "/")
		var ans helloAnswer
		if code != 200 || json.Unmarshal(body, &ans) != nil {
			t.Fatalf("%s: %d %s", host, code, body)
		}
		return ans.App
	}
	if who("blue.apps.localhost") != "blue" || who("GREEN.apps.localhost:80") != "green" {
		t.Fatal("routes before the swap are wrong")
	}
	a.Routes, b.Routes = b.Routes, a.Routes
	for _, sp := range []*backends.AppSpec{a, b} {
		if err := s.Submit(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	if who("blue.apps.localhost") != "green" || who("green.apps.localhost") != "blue" {
		t.Fatal("routes were not swapped")
	}
}

func TestImageProcRefused(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	spec := &backends.AppSpec{App: "img", MetaVersion: "v1", Procs: []backends.ProcSpec{
		{Name: "web", Type: backends.ProcWeb, Image: "nginx:1", Instances: 1, CPU: 1, MemoryMB: 64},
	}}
	err := s.Submit(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "image") || !strings.Contains(err.Error(), "nomad") {
		t.Fatalf("Submit(image proc) = %v, want an error explaining image procs need the nomad scheduler", err)
	}
	if _, err := s.Status(context.Background(), "img"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("refused app is known: %v", err)
	}
}

// TestSubmitRejectsNames: app, proc and route names follow package names
// (the API's rule); a refused spec leaves nothing behind.
func TestSubmitRejectsNames(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	web := func(name string) []backends.ProcSpec {
		return []backends.ProcSpec{{Name: name, Type: backends.ProcWeb, Cmd: "true", Instances: 1, CPU: 1, MemoryMB: 64}}
	}
	for _, c := range []struct {
		spec *backends.AppSpec
		kind string
	}{
		{&backends.AppSpec{App: "1abc", Procs: web("web")}, "app name"},
		{&backends.AppSpec{App: "..", Procs: web("web")}, "app name"},
		{&backends.AppSpec{App: "a", Procs: web("We")}, "proc name"},
		{&backends.AppSpec{App: "a", Procs: web("web"), Routes: []string{"a.apps.localhost:8080"}}, "host name"},
		{&backends.AppSpec{App: "a", Procs: web("web"), Routes: []string{"a..localhost"}}, "host name"},
	} {
		c.spec.MetaVersion = "v1"
		err := s.Submit(context.Background(), c.spec)
		var ne *names.Error
		if !errors.As(err, &ne) || ne.Kind != c.kind {
			t.Errorf("Submit(app %q, proc %q, routes %q) = %v, want a %s error", c.spec.App, c.spec.Procs[0].Name, c.spec.Routes, err, c.kind)
		}
	}
	if apps, err := s.Apps(context.Background()); err != nil || len(apps) != 0 {
		t.Fatalf("Apps after refused submits = %v, %v", apps, err)
	}
	// Route host names are case-insensitive: the router lower-cases them.
	ok := &backends.AppSpec{App: "upper", MetaVersion: "v1", Procs: web("web"), Routes: []string{"Upper.Apps.Localhost"}}
	if err := s.Submit(context.Background(), ok); err != nil {
		t.Fatalf("Submit(route in capitals) = %v", err)
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	spec := &backends.AppSpec{App: "stubborn", MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "worker", Type: backends.ProcWorker, Instances: 1, CPU: 0.1, MemoryMB: 16,
			// Ignores SIGTERM, and has a child of its own.
			Cmd: `trap '' TERM; sleep 300 & while true; do sleep 1; done`}}}
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "stubborn", "running", running)
	start := time.Now()
	if err := s.Stop(context.Background(), "stubborn"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 3*time.Second {
		t.Errorf("Stop took %s: a process ignoring SIGTERM should get the 3s StopTimeout", took)
	}
	time.Sleep(200 * time.Millisecond)
	for _, pid := range processesWithToken(token) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(b), "BERTH_APP=stubborn\x00") {
			t.Errorf("process %d of the stopped app is alive", pid)
		}
	}
}

func TestOneshotRunsOncePerSpec(t *testing.T) {
	dir := t.TempDir()
	s := newScheduler(t, dir)
	defer s.Close()
	marks := filepath.Join(dir, "marks")
	spec := &backends.AppSpec{App: "once", MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "migrate", Type: backends.ProcOneshot, Instances: 1, CPU: 0.1, MemoryMB: 16,
			Cmd: "echo run >> " + marks}}}
	ctx := context.Background()
	complete := func(st *backends.AppStatus) bool {
		return running(st) && len(st.Instances) == 1 && st.Instances[0].State == backends.StateComplete
	}
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "once", "oneshot complete", complete)
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	spec.MetaVersion = "v2"
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "once", "oneshot v2 complete", func(st *backends.AppStatus) bool {
		return complete(st) && st.MetaVersion == "v2"
	})
	b, _ := os.ReadFile(marks)
	if string(b) != "run\nrun\n" {
		t.Fatalf("oneshot ran %q; want once for v1 (resubmit included) and once for v2", b)
	}

	// A failing oneshot ends failed, and so does the deployment.
	spec.MetaVersion = "v3"
	spec.Procs[0].Cmd = "exit 7"
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, s, "once", "deployment failed", func(st *backends.AppStatus) bool { return st.Deployment == backends.DeployFailed })
	if !strings.Contains(st.Message, "status 7") {
		t.Errorf("failed deployment message %q does not tell the exit status", st.Message)
	}
}

// TestRollKeepsOldUntilNewReady: a new version whose web proc never becomes
// ready leaves the old instance serving, and the deployment failed.
func TestRollKeepsOldUntilNewReady(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	spec := helloSpec(t, "roll")
	spec.Procs = spec.Procs[:1]
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, s, "roll", "running", running)
	oldPID := st.Instances[0].PID
	spec.MetaVersion = "v2"
	spec.Procs[0].Env = map[string]string{"HELLO_CRASH": "1"}
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, s, "roll", "deployment failed", func(st *backends.AppStatus) bool { return st.Deployment == backends.DeployFailed })
	if !strings.Contains(st.Message, "still serving") {
		t.Errorf("message %q", st.Message)
	}
	code, body := get(t, s, "roll.apps.localhost", "/")
	var a helloAnswer
	if code != 200 || json.Unmarshal(body, &a) != nil || a.PID != oldPID {
		t.Fatalf("during the failed roll: %d %s; want the old instance (pid %d) answering", code, body, oldPID)
	}
	// Fixing the release rolls onto a good version and stops the old one.
	spec.MetaVersion = "v3"
	spec.Procs[0].Env = map[string]string{"GREETING": "hi"}
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, s, "roll", "v3 running", func(st *backends.AppStatus) bool { return running(st) && st.MetaVersion == "v3" })
	deadline := time.Now().Add(10 * time.Second)
	for alive(oldPID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(oldPID) {
		t.Fatalf("old instance %d alive after v3 is running", oldPID)
	}
	if st.Instances[0].PID == oldPID {
		t.Fatal("v3 reports the old pid")
	}
}

// TestOrphansDieWithBerth runs a scheduler in a child process (this test
// binary in helper mode), kills it with SIGKILL, and checks that its
// instances do not outlive it: the exec'd program dies through Pdeathsig,
// and a new scheduler on the same DataDir kills what is left (here a shell's
// background child).
func TestOrphansDieWithBerth(t *testing.T) {
	dir := t.TempDir()
	tok := "orphan-" + randToken()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_LOCAL_HELPER=1", "HELPER_DIR="+dir, "HELPER_TOKEN="+tok)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, p := range processesWithToken(tok) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}()
	sc := bufio.NewScanner(stdout)
	ready := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("helper ended before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready in 30s")
	}
	before := processesWithToken(tok)
	if len(before) < 3 { // simple (exec'd sleep), complex (sh + background sleep + loop sleep)
		t.Fatalf("helper runs %d processes (%v), want at least 3", len(before), before)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	// The exec'd instance dies with berth (Pdeathsig).
	deadline := time.Now().Add(5 * time.Second)
	simpleGone := func() bool {
		for _, p := range processesWithToken(tok) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
			if strings.Contains(string(b), "BERTH_PROC=simple\x00") && alive(p) {
				return false
			}
		}
		return true
	}
	for !simpleGone() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !simpleGone() {
		t.Error("the exec'd instance outlived berth")
	}

	// A new scheduler on the same DataDir kills what is left.
	s := newScheduler(t, dir)
	defer s.Close()
	deadline = time.Now().Add(5 * time.Second)
	for len(livePids(processesWithToken(tok))) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := livePids(processesWithToken(tok)); len(left) > 0 {
		t.Fatalf("processes of the killed scheduler still alive after New: %v", left)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "run")); len(ents) != 0 {
		t.Errorf("pid files left in run/: %d", len(ents))
	}
}

func livePids(pids []int) []int {
	var out []int
	for _, p := range pids {
		if alive(p) {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// helperMain is the child side of TestOrphansDieWithBerth.
func helperMain() {
	s, err := New(Config{DataDir: os.Getenv("HELPER_DIR"), StopTimeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	spec := &backends.AppSpec{App: "orphan", MetaVersion: "v1",
		Env: map[string]string{"BERTH_TEST_TOKEN": os.Getenv("HELPER_TOKEN")},
		Procs: []backends.ProcSpec{
			{Name: "complex", Type: backends.ProcWorker, Instances: 1, Cmd: "sleep 300 & while true; do sleep 1; done"},
			{Name: "simple", Type: backends.ProcWorker, Instances: 1, Cmd: "sleep 300"},
		}}
	if err := s.Submit(context.Background(), spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < 300; i++ {
		st, err := s.Status(context.Background(), "orphan")
		if err == nil && st.Deployment == backends.DeployRunning {
			fmt.Println("READY")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Hour)
}
