package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/api"
)

// logsClient is an API client as u on a plain HTTP client: the logs answer
// is a stream of JSON lines, which the OpenAPI-validating transport of the
// harness would read to its end before handing it over.
func (b *Berth) logsClient(t testing.TB, u *User) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: b.URL, Token: u.Token, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loggingRelease: a worker that writes a line to stdout and one to stderr,
// then a numbered tick to stdout every 200ms.
func loggingRelease(mv string, instances int) map[string]any {
	return map[string]any{"meta_version": mv, "worker": map[string]any{
		"cmd":    `echo "hello from stdout"; echo "hello from stderr" >&2; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done`,
		"memory": "16m", "num_instances": instances,
	}}
}

func lineTexts(ls []api.LogLine) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Stream+":"+l.Line)
	}
	return out
}

// TestLogs deploys an app that prints to stdout and stderr and reads its
// output through GET /api/v1/apps/:app/logs/: every line with its proc,
// instance, stream and time; the proc, instance, stream, lines and since
// filters; follow receiving a line written after it started; who may
// read; and the stderr of a release that crashes.
func TestLogs(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "logger")
	app := "logsapp"
	b.createApp(t, u, app)
	b.push(t, u, app, loggingRelease(metaVersion(), 2))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	c := b.logsClient(t, u)

	// Both instances' first lines, on their streams.
	var all []api.LogLine
	eventually(t, 15*time.Second, "both instances' stdout and stderr", func() bool {
		var err error
		all, _, err = c.Logs().Get(app, api.LogQuery{}, nil)
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		n := 0
		for _, l := range all {
			if (l.Stream == api.LogStdout && l.Line == "hello from stdout") || (l.Stream == api.LogStderr && l.Line == "hello from stderr") {
				n++
			}
		}
		return n == 4
	})
	for i, l := range all {
		if l.Proc != "worker" || (l.Instance != 0 && l.Instance != 1) || l.Time == nil || time.Since(*l.Time) > time.Minute {
			t.Fatalf("line %+v: want proc worker, instance 0 or 1, a recent time", l)
		}
		if i > 0 && l.Time.Before(*all[i-1].Time) {
			t.Fatalf("lines out of time order: %+v then %+v", all[i-1], l)
		}
	}

	// The wire: JSON lines, one object per line with time, proc, instance,
	// stream and line.
	req, _ := http.NewRequest("GET", b.URL+"/api/v1/apps/"+app+"/logs/?proc=worker&instance=1&stream=stderr", nil)
	req.Header.Set("Authorization", "bearer "+u.Token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("logs answer: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var raw []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a line of the answer is not a JSON object: %q", sc.Text())
		}
		raw = append(raw, m)
	}
	resp.Body.Close()
	if len(raw) != 1 || raw[0]["line"] != "hello from stderr" || raw[0]["stream"] != "stderr" || raw[0]["proc"] != "worker" || raw[0]["instance"] != 1.0 {
		t.Fatalf("stderr of worker 1: %v", raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, raw[0]["time"].(string)); err != nil {
		t.Fatalf("time %v: %v", raw[0]["time"], err)
	}

	// Lines: the latest n of the selection; since: only what came after.
	last, _, err := c.Logs().Get(app, api.LogQuery{Proc: "worker", Instance: "0", Stream: api.LogStdout, Lines: 3}, nil)
	if err != nil || len(last) != 3 || !strings.HasPrefix(last[2].Line, "tick ") || last[0].Instance != 0 {
		t.Fatalf("last 3 stdout lines of worker 0: %v %v", lineTexts(last), err)
	}
	since, _, err := c.Logs().Get(app, api.LogQuery{Instance: "0", Since: *last[2].Time}, nil)
	if err != nil || len(since) == 0 || since[0].Line != last[2].Line || !since[0].Time.Equal(*last[2].Time) {
		t.Fatalf("since the last line's time: %v %v (want it first)", lineTexts(since), err)
	}
	if ls, _, err := c.Logs().Get(app, api.LogQuery{SinceAgo: time.Hour}, nil); err != nil || len(ls) < len(all) {
		t.Fatalf("since 1h ago: %d lines, %v; want at least %d", len(ls), err, len(all))
	}
	if ls, _, err := c.Logs().Get(app, api.LogQuery{Proc: "web"}, nil); err != nil || len(ls) != 0 {
		t.Fatalf("a proc the app does not have: %v %v", lineTexts(ls), err)
	}

	// Follow: after the latest line, a tick written later arrives.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []api.LogLine
	err = c.Logs().Follow(ctx, app, api.LogQuery{Instance: "1", Stream: api.LogStdout, Lines: 1}, func(l api.LogLine) error {
		got = append(got, l)
		if len(got) > 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(got) < 2 {
		t.Fatalf("following: %v after %v", err, lineTexts(got))
	}
	if !strings.HasPrefix(got[1].Line, "tick ") || got[1].Line == got[0].Line || got[1].Time.Before(*got[0].Time) {
		t.Fatalf("followed %v: want a newer tick after the first line", lineTexts(got))
	}

	// Bad queries; who may read.
	for _, q := range []string{"lines=-1", "lines=many", "since=yesterday", "follow=maybe", "stream=stdin", "proc=Web", "instance=first"} {
		b.do(t, "GET", "/api/v1/apps/"+app+"/logs/?"+q, u, nil).want(t, http.StatusBadRequest)
	}
	stranger := b.newUser(t, "stranger")
	if _, _, err := b.logsClient(t, stranger).Logs().Get(app, api.LogQuery{}, nil); api.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("a user without a role on the app: %v, want 403", err)
	}
	if _, _, err := b.logsClient(t, &User{}).Logs().Get(app, api.LogQuery{}, nil); api.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous: %v, want 401", err)
	}
	tok := b.appToken(t, u, app)
	if ls, _, err := b.logsClient(t, tok).Logs().Get(app, api.LogQuery{Lines: 1}, nil); err != nil || len(ls) != 1 {
		t.Fatalf("the app's token: %v %v", lineTexts(ls), err)
	}
	if _, _, err := b.logsClient(t, u).Logs().Get("nosuchapp", api.LogQuery{}, nil); !api.IsNotFound(err) {
		t.Fatalf("an unknown app: %v, want 404", err)
	}

	// A release that crashes: its stderr is there to read (the deploy
	// fails, and is reverted to the release before).
	mv := metaVersion()
	b.push(t, u, app, map[string]any{"meta_version": mv, "worker": map[string]any{
		"cmd": `echo "fatal: cannot reach the database at db:5432" >&2; exit 3`, "memory": "16m", "num_instances": 1,
	}})
	before := time.Now()
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": mv}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	eventually(t, 60*time.Second, "the crashing release to fail", func() bool {
		v := b.deployed(t, u, app)
		return (v.State == "failed" && v.Generation == gen) || (v.Deploy != nil && v.Deploy.Reverted != nil && v.Deploy.Reverted.Generation == gen)
	})
	crash, _, err := c.Logs().Get(app, api.LogQuery{Stream: api.LogStderr, Since: before}, nil)
	if err != nil || !slices.ContainsFunc(crash, func(l api.LogLine) bool {
		return l.Line == "fatal: cannot reach the database at db:5432" && l.Proc == "worker" && l.Instance == 0 && l.Stream == api.LogStderr
	}) {
		t.Fatalf("stderr since the crashing release: %v %v", lineTexts(crash), err)
	}
}

// TestNomadLogs reads an app's output on a real Nomad (NOMAD_ADDR; from
// the allocation logs API): both streams with proc and instance, the last
// lines, and follow receiving a line written after it started.
func TestNomadLogs(t *testing.T) {
	addr, nc := nomadEnv(t)
	b := startBerth(t, Options{ExtraHCL: nomadHCL(addr)})
	if tok := os.Getenv("NOMAD_TOKEN"); tok != "" {
		b.remember(tok, "the Nomad token")
	}
	u := b.newUser(t, "nomadlogs")
	app := fmt.Sprintf("nlogs%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		_, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil)
	})
	b.createApp(t, u, app)
	b.push(t, u, app, loggingRelease(metaVersion(), 1))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	c := b.logsClient(t, u)

	eventually(t, time.Minute, "stdout and stderr from Nomad", func() bool {
		all, _, err := c.Logs().Get(app, api.LogQuery{Proc: "worker"}, nil)
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		out := slices.ContainsFunc(all, func(l api.LogLine) bool {
			return l.Stream == api.LogStdout && l.Line == "hello from stdout" && l.Proc == "worker" && l.Instance == 0
		})
		errs := slices.ContainsFunc(all, func(l api.LogLine) bool {
			return l.Stream == api.LogStderr && l.Line == "hello from stderr" && l.Proc == "worker" && l.Instance == 0
		})
		return out && errs
	})
	last, _, err := c.Logs().Get(app, api.LogQuery{Stream: api.LogStdout, Lines: 2}, nil)
	if err != nil || len(last) != 2 || !strings.HasPrefix(last[1].Line, "tick ") {
		t.Fatalf("the last 2 stdout lines: %v %v", lineTexts(last), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []api.LogLine
	err = c.Logs().Follow(ctx, app, api.LogQuery{Stream: api.LogStdout, Lines: 1}, func(l api.LogLine) error {
		got = append(got, l)
		if len(got) > 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(got) < 2 || !strings.HasPrefix(got[1].Line, "tick ") || got[1].Line == got[0].Line || got[1].Time == nil {
		t.Fatalf("following on Nomad: %v after %v (want a newer tick, with the time it was received)", err, lineTexts(got))
	}
}
