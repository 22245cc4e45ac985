package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// cliLogin registers email with password on the test server and logs the
// CLI in as that user (credentials in dir).
func cliLogin(t *testing.T, addr, dir, email, password string) {
	t.Helper()
	t.Setenv("BERTH_CREDENTIALS", filepath.Join(dir, "creds-"+email))
	t.Setenv("BERTH_ADDR", "")
	t.Setenv("BERTH_TOKEN", "")
	t.Setenv("BERTH_PASSWORD", password)
	ok(t, "user", "create", email, "-address", addr)
	t.Setenv("BERTH_PASSWORD", "")
	if r := berth(password+"\n", "login", email, "-address", addr); r.code != 0 {
		t.Fatalf("login: %+v", r)
	}
}

// TestLogsCommand deploys a worker that writes to stdout and stderr and
// reads its output with `berth logs`: text and -json, the -stream and -n
// filters, usage errors, and -f following new lines until Ctrl-C.
func TestLogsCommand(t *testing.T) {
	addr, dir := testServer(t)
	cliLogin(t, addr, dir, "dev@example.com", "s3cret-pw")
	ok(t, "app", "create", "talk")
	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: talk\nworker:\n  cmd: sh -c 'echo out-line; echo err-line >&2; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done'\n  memory: 16m\n")
	ok(t, "push", "talk", "1700000000-abc", spec)
	ok(t, "deploy", "talk")

	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out = ok(t, "logs", "talk", "-n", "0")
		if strings.Contains(out, "worker.0 stdout: out-line\n") && strings.Contains(out, "worker.0 stderr: err-line\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs did not show both streams:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Lines start with their time.
	first := strings.SplitN(out, "\n", 2)[0]
	if ts, _, _ := strings.Cut(first, " "); ts == "" {
		t.Fatalf("a line without its time: %q", first)
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Fatalf("a line's time %q: %v", ts, err)
	}

	if out := ok(t, "logs", "talk", "-stream", "stderr", "-n", "0"); out == "" || strings.Contains(out, "stdout") || !strings.Contains(out, "err-line") {
		t.Fatalf("logs -stream stderr:\n%s", out)
	}
	if out := ok(t, "logs", "talk", "-n", "2", "-proc", "worker", "-instance", "0"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "tick") {
		t.Fatalf("logs -n 2:\n%s", out)
	}
	if out := ok(t, "logs", "talk", "-proc", "nosuch"); out != "" {
		t.Fatalf("logs of a proc the app does not have: %q", out)
	}
	if out := ok(t, "logs", "talk", "-since", "1h", "-n", "0"); !strings.Contains(out, "out-line") {
		t.Fatalf("logs -since 1h:\n%s", out)
	}
	// -json: one api.LogLine per line.
	js := ok(t, "logs", "talk", "-json", "-n", "3")
	sc := bufio.NewScanner(strings.NewReader(js))
	n := 0
	for sc.Scan() {
		var ln api.LogLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ln); err != nil || ln.Proc != "worker" || ln.Time == nil || ln.Stream == "" {
			t.Fatalf("logs -json line %q: %+v %v", sc.Text(), ln, err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("logs -json -n 3 printed %d lines:\n%s", n, js)
	}

	fails(t, exitUsage, "-stream must be stdout or stderr", "logs", "talk", "-stream", "both")
	fails(t, exitUsage, "-since must be a duration", "logs", "talk", "-since", "yesterday")
	fails(t, exitUsage, "not enough arguments", "logs")
	fails(t, exitUsage, "flag provided but not defined", "logs", "talk", "-tail")
	fails(t, exitError, "HTTP 404", "logs", "nosuch")

	// -f prints lines written after it started, until Ctrl-C (exit 0).
	var sout, serr syncBuffer
	done := make(chan int)
	go func() {
		done <- runCLI([]string{"logs", "talk", "-f", "-n", "1", "-stream", "stdout"}, strings.NewReader(""), &sout, &serr)
	}()
	ticks := func() []string {
		var ts []string
		for _, l := range strings.Split(sout.String(), "\n") {
			if _, tick, ok := strings.Cut(l, "stdout: tick "); ok {
				ts = append(ts, tick)
			}
		}
		return ts
	}
	deadline = time.Now().Add(15 * time.Second)
	for len(ticks()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("logs -f did not print new lines: %q %q", sout.String(), serr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("logs -f ended by Ctrl-C: exit %d\n%s", code, serr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs -f did not end on Ctrl-C")
	}
	ts := ticks()
	for i := 1; i < len(ts); i++ {
		if ts[i-1] == ts[i] {
			t.Fatalf("logs -f printed a line twice: %v", ts)
		}
	}
	ok(t, "undeploy", "talk")
}

// TestDomainCommands adds, lists and removes an app's custom domains with
// `berth domain`; a host name of another app is refused naming it.
func TestDomainCommands(t *testing.T) {
	addr, dir := testServer(t)
	cliLogin(t, addr, dir, "dev@example.com", "s3cret-pw")
	ok(t, "app", "create", "site")
	ok(t, "app", "create", "rival")

	// Not deployed: the change is at once.
	if out := ok(t, "domain", "add", "site", "www.site.example", "Shop.Site.Example."); !strings.Contains(out, "site added: www.site.example, Shop.Site.Example.; routes: site.apps.localhost, www.site.example, shop.site.example") ||
		!strings.Contains(out, "not redeployed") {
		t.Fatalf("domain add: %q", out)
	}
	if out := ok(t, "domain", "list", "site"); out != "site.apps.localhost\nwww.site.example (custom)\nshop.site.example (custom)\n" {
		t.Fatalf("domain list: %q", out)
	}
	var d api.Domains
	okJSON(t, &d, "domain", "list", "site")
	if d.AppName != "site" || !slices.Equal(d.CName, []string{"www.site.example", "shop.site.example"}) {
		t.Fatalf("domain list -json: %+v", d)
	}
	r := fails(t, exitError, "HTTP 409", "domain", "add", "rival", "www.site.example")
	if !strings.Contains(r.err, `"site"`) {
		t.Fatalf("the 409 does not name the app that has the host: %q", r.err)
	}
	fails(t, exitError, "HTTP 400", "domain", "add", "rival", "not_a_host.example")
	fails(t, exitUsage, "not enough arguments", "domain", "add", "rival")

	// Deployed: the routes are redeployed and followed.
	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: site\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n")
	ok(t, "push", "site", "1700000000-abc", spec)
	ok(t, "deploy", "site")
	if out := ok(t, "domain", "remove", "site", "www.site.example"); !strings.Contains(out, "remove domain www.site.example") || !strings.Contains(out, "==> site: running") {
		t.Fatalf("domain remove: %q", out)
	}
	var dep api.DeployedApp
	okJSON(t, &dep, "status", "site")
	if !slices.Equal(dep.Routes, []string{"site.apps.localhost", "shop.site.example"}) {
		t.Fatalf("routes after domain remove: %v", dep.Routes)
	}
	fails(t, exitError, "HTTP 404", "domain", "remove", "site", "www.site.example")
	if out := ok(t, "domain", "add", "rival", "www.site.example"); !strings.Contains(out, "rival added") {
		t.Fatalf("domain add of a freed host: %q", out)
	}
	ok(t, "undeploy", "site")
}
