package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/server"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what a user sees of one command.
type result struct {
	out, err string
	code     int
}

// berth runs the CLI in this process, as `berth args...` would.
func berth(in string, args ...string) result {
	var out, errw syncBuffer
	code := runCLI(args, strings.NewReader(in), &out, &errw)
	return result{out.String(), errw.String(), code}
}

// ok runs a command that must succeed and returns its output.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := berth("", args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// okJSON runs a read with -json and decodes its output into v.
func okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := ok(t, append(args, "-json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("berth %s -json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail with code and say want on stderr.
func fails(t *testing.T, code int, want string, args ...string) result {
	t.Helper()
	r := berth("", args...)
	if r.code != code || !strings.Contains(r.err, want) {
		t.Fatalf("berth %s: exit %d (want %d), stderr %q (want %q)\nstdout: %s", strings.Join(args, " "), r.code, code, r.err, want, r.out)
	}
	return r
}

// TestHelpOfEveryCommand: every command, alias and noun answers -h with
// its usage (exit 0, on stdout) and lists each of its options; a client
// command also lists the general options.
func TestHelpOfEveryCommand(t *testing.T) {
	t.Setenv("BERTH_ADDR", "http://127.0.0.1:1") // nothing may be called
	cmds := commands(&Meta{})
	if len(cmds) < 60 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for name, f := range cmds {
		for _, h := range []string{"-h", "-help", "--help"} {
			r := berth("", append(strings.Fields(name), h)...)
			if r.code != 0 || !strings.HasPrefix(r.out, "Usage: berth "+name+" ") || r.err != "" {
				t.Fatalf("berth %s %s: exit %d\nstdout: %s\nstderr: %s", name, h, r.code, r.out, r.err)
			}
		}
		c, _ := f()
		cc, isCmd := c.(*cmd)
		if c.Synopsis() == "" || !isCmd && c.Help() == "" {
			t.Errorf("%s has no synopsis or help", name)
		}
		if !isCmd {
			continue
		}
		help := berth("", append(strings.Fields(name), "-h")...).out
		cc.flagSet(&run{}).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(help, "\n  -"+f.Name) && !strings.HasPrefix(f.Usage, "(hidden)") {
				t.Errorf("berth %s -h does not list -%s:\n%s", name, f.Name, help)
			}
		})
		if !cc.local && !strings.Contains(help, "-address=<addr>") {
			t.Errorf("berth %s -h has no general options", name)
		}
		if cc.jsonOut && !strings.Contains(help, "JSON: ") {
			t.Errorf("berth %s -h does not name its JSON type", name)
		}
	}
	// `berth deploy -h` is help, not an app named -h; so is -h after args.
	if r := berth("", "deploy", "hello", "-h"); r.code != 0 || !strings.Contains(r.out, "Usage: berth deploy [options] APP [VERSION]") {
		t.Fatalf("deploy hello -h: %+v", r)
	}
	top := berth("", "-h")
	for _, want := range []string{"Client commands:", "Server commands:", "    app ", "    server ", "BERTH_ADDR", "Exit codes"} {
		if top.code != 0 || !strings.Contains(top.out, want) {
			t.Fatalf("berth -h lacks %q: %+v", want, top)
		}
	}
	if strings.Contains(top.out, "proc-shim") || strings.Contains(top.out, "    app-create") {
		t.Fatalf("berth -h lists hidden commands:\n%s", top.out)
	}
}

// TestUsageErrors: unknown flags, commands and wrong numbers of arguments
// exit 2 with the usage, before any call to the server.
func TestUsageErrors(t *testing.T) {
	var calls int
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"not yours","status":403}`)
	}))
	defer hs.Close()
	t.Setenv("BERTH_ADDR", hs.URL)
	t.Setenv("BERTH_CREDENTIALS", filepath.Join(t.TempDir(), "creds"))
	for name, f := range commands(&Meta{}) {
		c, _ := f()
		if _, isCmd := c.(*cmd); !isCmd {
			continue
		}
		r := berth("", append(strings.Fields(name), "-no-such-flag", "x")...)
		if r.code != 2 || !strings.Contains(r.err, "flag provided but not defined: -no-such-flag") || !strings.Contains(r.err, "Usage: berth "+name) {
			t.Fatalf("berth %s -no-such-flag: %+v", name, r)
		}
	}
	fails(t, 2, "not enough arguments", "deploy")
	fails(t, 2, "too many arguments (b c)", "app", "info", "a", "b", "c")
	fails(t, 2, "N must be a number", "scale", "hello", "web", "many")
	fails(t, 2, "is not KEY=VALUE", "env", "set", "hello", "NOEQUALS")
	fails(t, 2, "-auto-revert wants true or false", "deploy", "hello", "-auto-revert", "maybe")
	fails(t, 2, "missing subcommand", "app")
	fails(t, 2, `unknown command "frobnicate"`, "frobnicate")
	fails(t, 2, "unknown option -frob before a command", "-frob", "app", "list")
	fails(t, 2, "Usage: berth [-version]", []string{}...)
	fails(t, 2, "invalid address", "app", "list", "-address", "ftp://x")
	if calls != 0 {
		t.Fatalf("usage errors made %d calls to the server", calls)
	}
	// A refused call is exit 1.
	fails(t, 1, "Error: not yours (HTTP 403)", "app", "list")
}

// testServer runs a real server (bolt, sealed, local scheduler) on
// httptest with a user dev@example.com and an admin admin@example.com.
func testServer(t *testing.T) (string, string) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Reconcile.IntervalDur = time.Second
	redis := map[string]string{"addr": "127.0.0.1:6379"}
	cfg.BrokerTargets = append(cfg.BrokerTargets, &config.BrokerTarget{Name: "local-redis", Broker: "redis", Settings: redis, Resolved: redis})
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sec.Close() })
	sch, err := local.New(local.Config{DataDir: filepath.Join(dir, "local"), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sch.Close() })
	brokers := plugins.NewManager(plugins.ManagerConfig{Logger: hclog.NewNullLogger(), StateDir: filepath.Join(dir, "plugins")})
	t.Cleanup(brokers.Close)
	srv, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, Secrets: sec, Scheduler: sch, Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	if _, err := engine.CreateUser(context.Background(), st, "admin@example.com", "admin-pw-1", true); err != nil {
		t.Fatal(err)
	}
	return hs.URL, dir
}

// TestStory drives the CLI against a real server through what a developer
// does: register, log in, team, app, push, deploy (with progress), status,
// info, scale, env, restart, a failing release, Ctrl-C while following,
// undeploy, logout.
func TestStory(t *testing.T) {
	addr, dir := testServer(t)
	t.Setenv("BERTH_CREDENTIALS", filepath.Join(dir, "creds"))
	t.Setenv("BERTH_ADDR", "")
	t.Setenv("BERTH_TOKEN", "")

	// Register and log in; a wrong password is exit 1 naming the 401.
	t.Setenv("BERTH_PASSWORD", "s3cret-pw")
	if out := ok(t, "user", "create", "dev@example.com", "-address", addr); !strings.Contains(out, "created user dev@example.com") {
		t.Fatalf("user create: %q", out)
	}
	t.Setenv("BERTH_PASSWORD", "")
	if r := berth("wrong-password\n", "login", "dev@example.com", "-address", addr); r.code != 1 || !strings.Contains(r.err, "401") {
		t.Fatalf("login with a wrong password: %+v", r)
	}
	// The old spelling: flags after the email, -addr; the password on stdin.
	if r := berth("s3cret-pw\n", "login", "dev@example.com", "-addr", addr); r.code != 0 || !strings.Contains(r.out, "logged in to "+addr+" as dev@example.com") {
		t.Fatalf("login: %+v", r)
	}
	if fi, err := os.Stat(filepath.Join(dir, "creds")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	var me api.UserInfo
	okJSON(t, &me, "user", "info")
	if me.Email != "dev@example.com" || me.IsAdmin {
		t.Fatalf("user info: %+v", me)
	}
	if out := ok(t, "whoami"); !strings.Contains(out, "dev@example.com on "+addr) {
		t.Fatalf("whoami: %q", out)
	}

	// The saved token goes only to the address it was saved for.
	var gotAuth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"no token","status":401}`)
	}))
	defer other.Close()
	fails(t, 1, "no token (HTTP 401)", "user", "info", "-address", other.URL)
	fails(t, 1, "no token (HTTP 401)", "user", "info", "-address", other.URL, "-token", "given")
	t.Setenv("BERTH_ADDR", other.URL)
	fails(t, 1, "no token (HTTP 401)", "user", "info")
	t.Setenv("BERTH_ADDR", "")
	if len(gotAuth) != 3 || gotAuth[0] != "" || gotAuth[1] != "bearer given" || gotAuth[2] != "" {
		t.Fatalf("Authorization sent to another server: %q", gotAuth)
	}

	// A team, and an app it owns.
	ok(t, "team", "create", "devs")
	var team api.Team
	okJSON(t, &team, "team", "info", "devs")
	if team.Name != "devs" || len(team.Users) != 1 || team.Users[0] != "dev@example.com" {
		t.Fatalf("team info: %+v", team)
	}
	var teams []api.Team
	okJSON(t, &teams, "team", "list")
	if len(teams) != 1 || teams[0].Name != "devs" {
		t.Fatalf("team list: %+v", teams)
	}
	fails(t, 1, "HTTP 404", "team", "info", "nosuch")
	if out := ok(t, "app", "create", "hello", "-team", "devs"); !strings.Contains(out, "created app hello") {
		t.Fatalf("app create: %q", out)
	}
	fails(t, 1, "HTTP 409", "app-create", "hello")
	var apps []api.App
	okJSON(t, &apps, "app", "list")
	if len(apps) != 1 || apps[0].Name != "hello" || apps[0].TeamOwner != "devs" {
		t.Fatalf("app list: %+v", apps)
	}

	// Push and deploy, following the progress.
	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n")
	var pushed api.PushResult
	okJSON(t, &pushed, "push", "hello", "1700000000-abc", spec)
	if pushed.MetaVersion != "1700000000-abc" || len(pushed.Procs) != 1 || pushed.Procs[0].Name != "web" || pushed.Procs[0].MemoryMB != 64 {
		t.Fatalf("push: %+v", pushed)
	}
	out := ok(t, "deploy", "hello")
	for _, want := range []string{"==> hello: deploy 1700000000-abc (generation ", "following its progress", "hello: running (deploy 1700000000-abc)", "==> hello: running 1700000000-abc in "} {
		if !strings.Contains(out, want) {
			t.Fatalf("deploy output lacks %q:\n%s", want, out)
		}
	}
	var dep api.DeployedApp
	okJSON(t, &dep, "status", "hello")
	if dep.State != api.DeployRunning || len(dep.Procs) != 1 || len(dep.Procs[0].Instances) != 1 || dep.Procs[0].Instances[0].Address == "" {
		t.Fatalf("status: %+v", dep)
	}
	resp, err := http.Get("http://" + dep.Procs[0].Instances[0].Address + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the instance at its address: %v %v", resp, err)
	}
	resp.Body.Close()
	if out := ok(t, "status", "hello"); !strings.Contains(out, "hello 1700000000-abc: running") || !strings.Contains(out, "URL: http://hello.apps.localhost/") || !strings.Contains(out, dep.Procs[0].Instances[0].Address) {
		t.Fatalf("status: %q", out)
	}
	var info api.AppInfo
	okJSON(t, &info, "app", "info", "hello")
	if info.App.Name != "hello" || len(info.URLs) != 1 || info.URLs[0] != "http://hello.apps.localhost/" || info.Deployed == nil ||
		info.Deployed.State != api.DeployRunning || info.Deployed.Deploy == nil || info.Deployed.Deploy.By != "dev@example.com" || len(info.Bound) != 0 {
		t.Fatalf("app info: %+v", info)
	}
	if out := ok(t, "app", "info", "hello"); !strings.Contains(out, "http://hello.apps.localhost/") || !strings.Contains(out, "deploy 1700000000-abc: running by dev@example.com") || !strings.Contains(out, "Bound services: none") {
		t.Fatalf("app info: %q", out)
	}
	if out := ok(t, "app", "open", "hello"); out != "http://hello.apps.localhost/\n" {
		t.Fatalf("app open: %q", out)
	}

	// Scale, then the procs show two instances.
	if out := ok(t, "scale", "hello", "web", "2"); !strings.Contains(out, "scale web to 2") || !strings.Contains(out, "==> hello: running") {
		t.Fatalf("scale: %q", out)
	}
	var procs []api.Proc
	okJSON(t, &procs, "proc", "list", "hello")
	if len(procs) != 1 || procs[0].NumInstances != 2 || len(procs[0].Instances) != 2 {
		t.Fatalf("proc list after scale 2: %+v", procs)
	}
	if out := ok(t, "proc", "patch", "hello", "web", "-memory", "96m"); !strings.Contains(out, "==> hello: running") {
		t.Fatalf("proc patch: %q", out)
	}
	okJSON(t, &procs, "proc", "list", "hello")
	if procs[0].Memory != "96m" && procs[0].Memory != "96M" && !strings.HasPrefix(procs[0].Memory, "96") {
		t.Fatalf("memory after proc patch: %+v", procs[0])
	}

	// env set redeploys and follows it; private values are masked.
	if out := ok(t, "env", "set", "hello", "-private", "TOKEN=abc123", "MODE=prod"); !strings.Contains(out, "set 2 variable(s) of hello") || !strings.Contains(out, "==> hello: running") {
		t.Fatalf("env set: %q", out)
	}
	var vars []api.EnvVar
	okJSON(t, &vars, "env", "get", "hello")
	if len(vars) != 2 || vars[1].Name != "TOKEN" || vars[1].Value != "*** (private)" || vars[1].Public {
		t.Fatalf("env get: %+v", vars)
	}
	if out := ok(t, "env", "hello"); !strings.Contains(out, "TOKEN=*** (private)") || strings.Contains(out, "abc123") {
		t.Fatalf("env: %q", out)
	}
	if out := ok(t, "env-unset", "hello", "MODE"); !strings.Contains(out, "==> hello: running") {
		t.Fatalf("env unset: %q", out)
	}
	if out := ok(t, "app", "restart", "hello"); !strings.Contains(out, "restart") || !strings.Contains(out, "==> hello: running") {
		t.Fatalf("restart: %q", out)
	}

	// A crashing release fails: exit 1 with the reason.
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: sh -c 'echo boom >&2; exit 3'\n  memory: 64m\n")
	ok(t, "push", "hello", "1700000001-bad", spec)
	r := berth("", "deploy", "hello", "-auto-revert", "false")
	if r.code != 1 || !strings.Contains(r.err, "hello: deploy 1700000001-bad failed after") || !strings.Contains(r.out, "hello: failed") {
		t.Fatalf("deploy of a crashing release: %+v", r)
	}

	// Ctrl-C while following: the deploy goes on on the server.
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: sh -c 'sleep 3; exec python3 -m http.server $PORT --bind 127.0.0.1'\n  memory: 64m\n")
	ok(t, "push", "hello", "1700000002-slow", spec)
	var sout, serr syncBuffer
	done := make(chan int)
	go func() {
		done <- runCLI([]string{"deploy", "hello", "1700000002-slow"}, strings.NewReader(""), &sout, &serr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sout.String(), "following its progress") {
		if time.Now().After(deadline) {
			t.Fatalf("deploy did not start following: %q %q", sout.String(), serr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 1 || !strings.Contains(serr.String(), "The operation continues on the server") || !strings.Contains(serr.String(), "berth status hello") {
		t.Fatalf("deploy interrupted: exit %d\n%s\n%s", code, sout.String(), serr.String())
	}
	for {
		okJSON(t, &dep, "status", "hello")
		if dep.MetaVersion == "1700000002-slow" && dep.State == api.DeployRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted deploy did not go on: %+v", dep)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A service, an instance of it, bound to the app with progress.
	r = berth("id: clitest-cache\nbroker: redis\ntarget: local-redis\nteam: devs\ndoc: Redis for tests\n", "service", "create", "-json", "-")
	var svc api.Service
	if r.code != 0 || json.Unmarshal([]byte(r.out), &svc) != nil || svc.ID != "clitest-cache" || svc.Broker != "redis" {
		t.Fatalf("service create: %+v", r)
	}
	if out := ok(t, "service", "doc", svc.ID); out != "Redis for tests\n" {
		t.Fatalf("service doc: %q", out)
	}
	var inst api.ServiceInstance
	okJSON(t, &inst, "instance", "create", svc.ID, "clitest-cache1")
	if inst.Name != "clitest-cache1" || inst.State != api.InstanceReady {
		t.Fatalf("instance create: %+v", inst)
	}
	t.Cleanup(func() {
		berth("", "unbind", "clitest-cache1", "hello")
		berth("", "instance", "remove", "clitest-cache1")
	})
	out = ok(t, "bind", "clitest-cache1", "hello")
	if !strings.Contains(out, "bound clitest-cache1 to hello; the app gets REDIS_") || !strings.Contains(out, "(bind clitest-cache1)") || !strings.Contains(out, "==> hello: running") {
		t.Fatalf("bind: %q", out)
	}
	okJSON(t, &info, "app", "info", "hello")
	if len(info.Bound) != 1 || info.Bound[0].Name != "clitest-cache1" || info.Bound[0].ServiceName != svc.ID {
		t.Fatalf("app info after bind: %+v", info.Bound)
	}
	var sis []api.ServiceInstanceSummary
	okJSON(t, &sis, "service", "info", svc.ID)
	if len(sis) != 1 || len(sis[0].Apps) != 1 || sis[0].Apps[0] != "hello" {
		t.Fatalf("service info: %+v", sis)
	}
	fails(t, 1, "HTTP 403", "instance", "remove", "clitest-cache1")
	if out := ok(t, "unbind", "clitest-cache1", "hello"); !strings.Contains(out, "(unbind clitest-cache1)") || !strings.Contains(out, "==> hello: running") {
		t.Fatalf("unbind: %q", out)
	}
	var ist api.InstanceStatus
	okJSON(t, &ist, "instance", "status", "clitest-cache1")
	if ist.Name != "clitest-cache1" || ist.State != api.InstanceReady || ist.Broker != "succeeded" {
		t.Fatalf("instance status: %+v", ist)
	}
	ok(t, "instance", "remove", "clitest-cache1")
	ok(t, "service", "remove", svc.ID)

	// Undeploy follows until nothing runs; status then says so (exit 1).
	if out := ok(t, "undeploy", "hello"); !strings.Contains(out, "undeployed") {
		t.Fatalf("undeploy: %q", out)
	}
	fails(t, 1, "not deployed", "status", "hello")

	// The audit log and quotas are for site admins.
	fails(t, 1, "HTTP 403", "events")
	adminTok := loginToken(t, addr, "admin@example.com", "admin-pw-1")
	var page api.EventsPage
	okJSON(t, &page, "events", "-limit", "5", "-token", adminTok, "-address", addr)
	if len(page.Events) != 5 || page.Next == "" {
		t.Fatalf("events: %+v", page)
	}
	ok(t, "quota", "set", "dev@example.com", "3", "-token", adminTok)
	var q api.Quota
	okJSON(t, &q, "quota", "get", "dev@example.com")
	if q.Items != 3 || q.Available != 2 {
		t.Fatalf("quota: %+v", q)
	}

	ok(t, "app", "remove", "hello")
	if out := ok(t, "logout"); !strings.Contains(out, "logged out") {
		t.Fatalf("logout: %q", out)
	}
	fails(t, 1, "HTTP 401", "user", "info")
}

// TestAutocomplete: with the shell's COMP_LINE (as `complete -C berth
// berth`, which `berth -autocomplete-install` adds to the shell's rc file,
// runs it) berth prints the completions: verbs of a noun, options of a
// command; hidden commands are not offered.
func TestAutocomplete(t *testing.T) {
	complete := func(line string) []string {
		t.Helper()
		t.Setenv("COMP_LINE", line)
		t.Setenv("COMP_POINT", fmt.Sprint(len(line)))
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout := os.Stdout
		os.Stdout = pw
		r := berth("")
		os.Stdout = stdout
		pw.Close()
		b, _ := io.ReadAll(pr)
		if r.code != 0 {
			t.Fatalf("completing %q: %+v", line, r)
		}
		got := strings.Fields(string(b))
		sort.Strings(got)
		return got
	}
	if got := complete("berth app i"); strings.Join(got, " ") != "info" {
		t.Fatalf("berth app i<TAB>: %q", got)
	}
	if got := complete("berth deploy -d"); strings.Join(got, " ") != "-detach" {
		t.Fatalf("berth deploy -d<TAB>: %q", got)
	}
	if got := complete("berth app"); !slices.Contains(got, "app") || slices.Contains(got, "app-create") {
		t.Fatalf("berth app<TAB>: %q", got)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func loginToken(t *testing.T, addr, email, pw string) string {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := c.Users().Login(email, pw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l.Token
}
