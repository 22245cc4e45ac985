package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// runIn runs cmd in app as u through api.Runs (on a plain HTTP client: the
// answer is a stream), returning its stdout and stderr lines.
func (b *Berth) runIn(t testing.TB, u *User, app string, req *api.RunRequest) (stdout, stderr []string, res *api.RunResult, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err = b.logsClient(t, u).Runs().Run(ctx, app, req, func(stream, line string) error {
		if stream == api.LogStderr {
			stderr = append(stderr, line)
		} else {
			stdout = append(stdout, line)
		}
		return nil
	})
	return stdout, stderr, res, err
}

// TestRun deploys an app with a private variable and runs one-off commands
// in it: `env` shows the variable, the exit code comes back, an outsider
// is refused (403), the run is in the audit log, and `berth run` prints
// the output and exits with the command's status.
func TestRun(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "runner")
	app := "runapp"
	b.createApp(t, u, app)
	b.push(t, u, app, map[string]any{"meta_version": metaVersion(), "worker": map[string]any{
		"cmd": "exec sleep 3600", "memory": "16m", "num_instances": 1, "env": []string{"PROC_LEVEL=from-release"},
	}})
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	secret := "e2e-run-secret-" + randHex(12)
	b.remember(secret, "a private env value")
	r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{"envs": []map[string]any{
		{"name": "GREETING", "value": "hi", "public": true},
		{"name": "SECRET", "value": secret, "public": false},
	}}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))

	// env: the app's public and private variables and the proc's.
	out, errs, res, err := b.runIn(t, u, app, &api.RunRequest{Command: []string{"env"}})
	if err != nil {
		t.Fatal(err)
	}
	env := "\n" + strings.Join(out, "\n") + "\n"
	for _, want := range []string{"SECRET=" + secret, "GREETING=hi", "PROC_LEVEL=from-release", "BERTH_APP=" + app, "BERTH_PROC=worker"} {
		if !strings.Contains(env, "\n"+want+"\n") {
			t.Errorf("the run's env lacks %s:\n%s", want, env)
		}
	}
	if res.ExitCode != 0 || res.Error != "" || len(errs) != 0 || res.Proc != "worker" || res.RunID == "" {
		t.Errorf("env run: result %+v, stderr %q", res, errs)
	}

	// The exit code, and both streams.
	out, errs, res, err = b.runIn(t, u, app, &api.RunRequest{Command: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || strings.Join(out, "|") != "to-stdout" || strings.Join(errs, "|") != "to-stderr" {
		t.Errorf("exit 3 run: result %+v, stdout %q, stderr %q", res, out, errs)
	}

	// A timeout kills the command and says so.
	start := time.Now()
	_, _, res, err = b.runIn(t, u, app, &api.RunRequest{Command: []string{"sleep", "60"}, Timeout: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || !strings.Contains(res.Error, "timeout") || time.Since(start) > 20*time.Second {
		t.Errorf("timed-out run: result %+v after %s", res, time.Since(start))
	}

	// The client going away kills the command (and its children).
	marker := "299." + strings.TrimLeft(fmt.Sprint(time.Now().UnixNano()%1000000), "0")
	ctx, cancel := context.WithCancel(context.Background())
	seen := false
	_, err = b.logsClient(t, u).Runs().Run(ctx, app, &api.RunRequest{Command: []string{"sh", "-c", "sleep " + marker + " & echo started; wait"}},
		func(stream, line string) error {
			if line == "started" {
				seen = len(procsWithArg(marker)) > 0
				cancel()
			}
			return nil
		})
	cancel()
	if !errors.Is(err, context.Canceled) || !seen {
		t.Errorf("a run whose client went away: %v (its sleep seen running: %v)", err, seen)
	}
	eventually(t, 15*time.Second, "the command of a run whose client went away to be killed", func() bool {
		return len(procsWithArg(marker)) == 0
	})

	// Refused: an outsider (403), a bad request (400), an unknown proc.
	outsider := b.newUser(t, "run-outsider")
	_, _, _, err = b.runIn(t, outsider, app, &api.RunRequest{Command: []string{"env"}})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("an outsider's run: %v, want 403", err)
	}
	for what, req := range map[string]*api.RunRequest{
		"no command":     {},
		"a bad timeout":  {Command: []string{"env"}, Timeout: "soon"},
		"an absent proc": {Command: []string{"env"}, Proc: "nosuch"},
	} {
		_, _, _, err = b.runIn(t, u, app, req)
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", what, err)
		}
	}

	// Audited: who ran what in which app.
	_, evs, _ := auditPage(t, b, "/api/v1/events/?limit=1000")
	found := false
	for _, e := range evs {
		if e["action"] == "app.run" && e["actor"] == u.Email && e["target"] == app {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit event app.run by %s on %s in %v", u.Email, app, evs)
	}

	// The CLI: the output on stdout and stderr, the command's exit status.
	cli := exec.Command(berthBin, "run", "-address", b.URL, "-token", u.Token, app, "--", "sh", "-c", `echo "secret=$SECRET"; echo oops >&2; exit 3`)
	var stdout, stderr strings.Builder
	cli.Stdout, cli.Stderr = &stdout, &stderr
	err = cli.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("berth run: %v, want exit status 3 (stderr %q)", err, stderr.String())
	}
	if stdout.String() != "secret="+secret+"\n" || stderr.String() != "oops\n" {
		t.Errorf("berth run printed stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	cli = exec.Command(berthBin, "run", "-address", b.URL, "-token", outsider.Token, app, "--", "env")
	if out, err := cli.CombinedOutput(); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "403") && !strings.Contains(strings.ToLower(string(out)), "permission") {
		t.Errorf("berth run as an outsider: %v, %s", err, out)
	}
}

// procsWithArg lists the processes that have arg among their arguments.
func procsWithArg(arg string) []string {
	var out []string
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				out = append(out, p)
			}
		}
	}
	return out
}
