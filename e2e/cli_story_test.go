package e2e

// The whole story of issue 10, told only with the built berth binary: a new
// user registers, logs in, creates a team and an app, pushes and deploys,
// sees a crashing release's stderr, scales, sets env, adds a domain, binds a
// MySQL instance, runs a one-off command, rolls back, reads the history,
// uses and revokes a team token for CI, and undeploys. Every check is on
// what the user sees: the CLI's stdout, stderr and exit code (and the app's
// answers through the router).

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// cliResult is one run of the berth binary.
type cliResult struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return "berth " + strings.Join(r.args, " ") + "\n  exit code: " + strconv.Itoa(r.code) +
		"\n  stdout:\n" + indent(r.stdout) + "\n  stderr:\n" + indent(r.stderr)
}

func indent(s string) string {
	if strings.TrimSpace(s) == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// cliUser runs berth as one person: their own credentials file, the
// server's address in BERTH_ADDR and, when set, BERTH_TOKEN and
// BERTH_PASSWORD.
type cliUser struct {
	t        *testing.T
	addr     string
	creds    string
	token    string
	password string
}

func (c *cliUser) run(args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTH_") {
			env = append(env, kv)
		}
	}
	env = append(env, "BERTH_ADDR="+c.addr, "BERTH_CREDENTIALS="+c.creds)
	if c.token != "" {
		env = append(env, "BERTH_TOKEN="+c.token)
	}
	if c.password != "" {
		env = append(env, "BERTH_PASSWORD="+c.password)
	}
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{args: args, stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		c.t.Fatalf("timed out after 4m:\n%s", res)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// ok runs berth and fails the test unless it exits 0.
func (c *cliUser) ok(args ...string) cliResult {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("want exit code 0:\n%s", r)
	}
	return r
}

// fails runs berth and fails the test unless it exits with code.
func (c *cliUser) fails(code int, args ...string) cliResult {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code {
		c.t.Fatalf("want exit code %d:\n%s", code, r)
	}
	return r
}

// says fails the test unless r's stdout (or stderr) contains every want.
func says(t *testing.T, r cliResult, stream string, want ...string) {
	t.Helper()
	got := r.stdout
	if stream == "stderr" {
		got = r.stderr
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("want %q in %s:\n%s", w, stream, r)
		}
	}
}

// status reads `berth status APP -json`.
func (c *cliUser) status(app string) api.DeployedApp {
	c.t.Helper()
	r := c.ok("status", "-json", app)
	var v api.DeployedApp
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		c.t.Fatalf("status -json is not an api.DeployedApp (%v):\n%s", err, r)
	}
	return v
}

// waitStatus polls `berth status APP -json` until ok accepts it.
func (c *cliUser) waitStatus(app, what string, ok func(api.DeployedApp) bool) api.DeployedApp {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		v := c.status(app)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(v, "", "  ")
			c.t.Fatalf("berth status %s -json did not show %s within 90s; last:\n%s", app, what, b)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func runningInstances(v api.DeployedApp, proc string) int {
	n := 0
	for _, p := range v.Procs {
		if p.ProcName != proc {
			continue
		}
		for _, in := range p.Instances {
			if in.State == "running" {
				n++
			}
		}
	}
	return n
}

func TestCLIStory(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:3306", 3*time.Second); err != nil {
		t.Skipf("MariaDB is unreachable at 127.0.0.1:3306 (%v): run /work/shared/services-up.sh", err)
	} else {
		c.Close()
	}
	webapp := buildWebapp(t)
	b := startBerth(t, Options{})
	dir := t.TempDir()

	// Every command the story uses answers -h with its usage, exit 0.
	help := &cliUser{t: t, addr: b.URL, creds: filepath.Join(dir, "nobody")}
	for _, name := range []string{"user create", "user login", "user info", "team create", "app create", "app open",
		"push", "deploy", "logs", "scale", "env set", "domain add", "service create", "service grant",
		"instance create", "bind", "unbind", "run", "rollback", "history", "token create", "token revoke",
		"status", "undeploy", "instance remove", "env", "app info", "release list", "domain list", "token list"} {
		args := append(strings.Fields(name), "-h")
		r := help.ok(args...)
		if !strings.Contains(r.stdout+r.stderr, "Usage: berth "+name) {
			t.Fatalf("-h does not show the usage of berth %s:\n%s", name, r)
		}
	}
	// An unknown flag is a usage error.
	r := help.fails(2, "deploy", "-no-such-flag", "x")
	if !strings.Contains(r.stderr, "no-such-flag") {
		t.Fatalf("an unknown flag is refused without naming it:\n%s", r)
	}

	// 1. Register and log in.
	email := b.unique("storyteller") + "@e2e.test"
	password := "story-" + randHex(12)
	b.remember(password, "the story user's password")
	me := &cliUser{t: t, addr: b.URL, creds: filepath.Join(dir, "me", "credentials"), password: password}
	says(t, me.ok("user", "create", email), "stdout", "created user "+email)
	says(t, me.ok("user", "login", email), "stdout", "logged in to "+b.URL+" as "+email)
	if fi, err := os.Stat(me.creds); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("berth user login saved no credentials (mode 0600) at $BERTH_CREDENTIALS: %v %v", fi, err)
	}
	me.password = "" // from now on the saved token speaks
	says(t, me.ok("user", "info"), "stdout", email)

	// 2. A team and an app.
	team := b.unique("storyteam")
	app := b.unique("story")
	me.ok("team", "create", team)
	me.ok("app", "create", "-team", team, app)

	// 3. Push and deploy: the progress is printed, the app answers.
	yaml := func(name, cmd string, env ...string) string {
		var s strings.Builder
		s.WriteString("appname: " + app + "\nweb:\n  cmd: " + cmd + "\n  port: 8080\n  memory: 32m\n  num_instances: 1\n")
		if len(env) > 0 {
			s.WriteString("  env:\n")
			for _, e := range env {
				s.WriteString("    - " + e + "\n")
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1, v2, v3, v4 := metaVersion(), metaVersion(), metaVersion(), metaVersion()
	says(t, me.ok("push", app, v1, yaml("v1.yaml", webapp, "WEBAPP_VERSION=one")), "stdout", v1)
	r = me.ok("deploy", app)
	t.Logf("berth deploy:\n%s", r)
	// The states the events stream showed (a fast deploy may be past
	// pending when the CLI starts following), ending in running.
	says(t, r, "stdout", "==> "+app+": deploy "+v1, "Ctrl-C stops following, not the operation",
		app+": running (deploy "+v1+")", "==> "+app+": running "+v1+" in ")
	if v := me.status(app); v.State != "running" || v.MetaVersion != v1 {
		t.Fatalf("after deploy, status says %q at %q; want running at %s", v.State, v.MetaVersion, v1)
	}
	says(t, me.ok("app", "open", app), "stdout", appHost(app))
	b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })

	// 4. A crashing release: the deploy fails saying why, its stderr is in the logs.
	marker := "story-crash-" + randHex(4)
	me.ok("push", app, v2, yaml("v2.yaml", "sh -c 'echo "+marker+" >&2; exit 3'"))
	r = me.fails(1, "deploy", app)
	t.Logf("berth deploy of the crashing release:\n%s", r)
	says(t, r, "stdout", app+": failed (deploy "+v2)
	says(t, r, "stderr", "failed", "exited with status 3", marker)
	r = me.ok("logs", "-stream", "stderr", app)
	says(t, r, "stdout", "web.0 stderr: "+marker)
	if strings.Contains(r.stdout, " stdout: ") {
		t.Fatalf("logs -stream stderr shows stdout lines:\n%s", r)
	}
	// The app is back on (or still at) version one.
	b.routed(t, appHost(app), "version one after the failed deploy", func(a webAnswer) bool { return a.Version == "one" })
	me.waitStatus(app, "the app settled on version one", func(v api.DeployedApp) bool {
		return v.State == "running" && v.MetaVersion == v1 && runningInstances(v, "web") == 1
	})

	// 5. Scale.
	me.ok("scale", app, "web", "2")
	me.waitStatus(app, "two running web instances", func(v api.DeployedApp) bool { return runningInstances(v, "web") == 2 })

	// 6. Env.
	me.ok("env", "set", app, "GREETING=hello-story")
	says(t, me.ok("env", app), "stdout", "GREETING")
	b.routed(t, appHost(app), "the new greeting", func(a webAnswer) bool { return a.Greeting == "hello-story" })

	// 7. A custom domain, served by the router.
	host := "www." + app + ".example.com"
	me.ok("domain", "add", app, host)
	says(t, me.ok("domain", "list", app), "stdout", host)
	got := b.routed(t, host, "the app at its custom domain", func(a webAnswer) bool { return a.App == app })
	if got.Host != host {
		t.Fatalf("the app saw Host %q, want %q", got.Host, host)
	}

	// 8. MySQL: the admin registers the service and grants the team; the
	// user provisions an instance and binds it.
	admin := &cliUser{t: t, addr: b.URL, creds: filepath.Join(dir, "admin", "credentials"), token: b.Admin.Token}
	opsTeam := b.unique("ops")
	admin.ok("team", "create", opsTeam)
	svc := b.unique("storymysql")
	svcFile := filepath.Join(dir, "mysql.yaml")
	def := "id: " + svc + "\nbroker: mysql\nendpoint: {production: \"127.0.0.1:3306\"}\ntarget: e2e-mysql\nteam: " + opsTeam + "\ndoc: MySQL for the story\n"
	if err := os.WriteFile(svcFile, []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.ok("service", "create", svcFile)
	admin.ok("service", "grant", svc, team)
	inst := "story-" + randHex(3)
	t.Cleanup(func() {
		// Instances live on the shared MariaDB: remove this one.
		me.run("unbind", inst, app)
		me.run("instance", "remove", inst)
	})
	me.ok("instance", "create", svc, inst)
	says(t, me.ok("bind", inst, app), "stdout", "bound "+inst+" to "+app, "DATABASE_URL", app+": running (bind "+inst+")")
	// The app's one view shows its URLs, its instances and the bound instance.
	r = me.ok("app", "info", app)
	says(t, r, "stdout", appHost(app), host, inst, "web")
	says(t, me.ok("release", "list", app), "stdout", v1, v2)
	r = me.ok("run", app, "--", "env")
	for _, k := range []string{"MYSQL_HOST=", "MYSQL_PORT=", "MYSQL_USER=", "MYSQL_PASSWORD=", "MYSQL_DATABASE=", "DATABASE_URL=", "GREETING=hello-story"} {
		if !strings.Contains(r.stdout, k) {
			t.Fatalf("berth run %s -- env does not show %s:\n%s", app, k, r)
		}
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "MYSQL_PASSWORD="); ok {
			b.remember(v, "the binding's MySQL password")
		}
	}
	me.fails(3, "run", app, "--", "sh", "-c", "exit 3")

	// 9. A team token for CI pushes and deploys version three.
	r = me.ok("token", "create", "-team", team, "-description", "story CI", "-action", "app.push,app.deploy,app.read", "-json")
	var tok api.TeamTokenCreated
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Token == "" || tok.ID == "" {
		t.Fatalf("token create -json is not an api.TeamTokenCreated with a token (%v):\n%s", err, r)
	}
	b.remember(tok.Token, "the story's team token")
	says(t, me.ok("token", "list"), "stdout", tok.ID)
	ci := &cliUser{t: t, addr: b.URL, creds: filepath.Join(dir, "ci", "credentials"), token: tok.Token}
	ci.ok("push", app, v3, yaml("v3.yaml", webapp, "WEBAPP_VERSION=three"))
	ci.ok("deploy", app)
	b.routed(t, appHost(app), "version three", func(a webAnswer) bool { return a.Version == "three" })

	// 10. Rollback goes back to the release before: version one.
	me.ok("rollback", app)
	b.routed(t, appHost(app), "version one after the rollback", func(a webAnswer) bool { return a.Version == "one" })
	if v := me.status(app); v.MetaVersion != v1 {
		t.Fatalf("after the rollback status says %s, want %s", v.MetaVersion, v1)
	}

	// 11. History shows the operations, newest first.
	r = me.ok("history", "-json", app)
	var hist []api.HistoryEntry
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil || len(hist) == 0 {
		t.Fatalf("history -json is not a list of api.HistoryEntry (%v):\n%s", err, r)
	}
	if !strings.HasPrefix(hist[0].Operation, "rollback") || hist[0].MetaVersion != v1 {
		t.Fatalf("the newest history entry is %+v, want the rollback to %s:\n%s", hist[0], v1, r)
	}
	var ops []string
	failed := false
	for _, h := range hist {
		ops = append(ops, h.Operation)
		if h.MetaVersion == v2 && (h.Result == "failed" || h.Result == "reverted") {
			failed = true
		}
	}
	joined := strings.Join(ops, "\n")
	for _, w := range []string{"deploy " + v1, "deploy " + v3, "scale"} {
		if !strings.Contains(joined, w) {
			t.Fatalf("history has no %q:\n%s", w, r)
		}
	}
	if !failed {
		t.Fatalf("history does not show the crashing release %s as failed:\n%s", v2, r)
	}
	says(t, me.ok("history", app), "stdout", "rollback to "+v1, "auto-revert to "+v1, "team-token:"+team+"/"+tok.ID, marker)

	// 12. Revoked, the team token is refused.
	me.ok("token", "revoke", tok.ID)
	r = ci.fails(1, "push", app, v4, yaml("v4.yaml", webapp, "WEBAPP_VERSION=four"))
	says(t, r, "stderr", "HTTP 401")
	says(t, ci.fails(1, "deploy", app), "stderr", "HTTP 401")
	if v := me.status(app); v.MetaVersion != v1 {
		t.Fatalf("after the refused CI deploy status says %s, want %s", v.MetaVersion, v1)
	}

	// 13. Unbind and undeploy: nothing answers any more.
	me.ok("unbind", inst, app)
	r = me.ok("undeploy", app)
	t.Logf("berth undeploy:\n%s", r)
	var st cliResult
	eventually(t, 60*time.Second, "berth status to say the app is not deployed", func() bool {
		st = me.run("status", app)
		return st.code == 1 && strings.Contains(st.stderr, "not deployed")
	})
	eventually(t, 30*time.Second, "the router to stop serving "+app, func() bool {
		code, _ := b.viaRouter(t, appHost(app))
		return code != 200
	})
	me.ok("instance", "remove", inst)
}
