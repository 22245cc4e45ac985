package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestReleaseCommands drives release list, rollback and history against a
// real server: two pushes and deploys, the releases newest first with who
// pushed them, a rollback to the release before (with progress), the
// history of the three operations, and what a user does wrong.
func TestReleaseCommands(t *testing.T) {
	addr, dir := testServer(t)
	t.Setenv("BERTH_CREDENTIALS", filepath.Join(dir, "creds"))
	t.Setenv("BERTH_ADDR", addr)
	t.Setenv("BERTH_PASSWORD", "s3cret-pw")
	ok(t, "user", "create", "dev@example.com")
	t.Setenv("BERTH_TOKEN", loginToken(t, addr, "dev@example.com", "s3cret-pw"))
	ok(t, "team", "create", "devs")
	ok(t, "app", "create", "hello", "-team", "devs")

	if out := ok(t, "release", "list", "hello"); !strings.Contains(out, "hello has no releases") {
		t.Fatalf("release list before a push: %q", out)
	}
	if out := ok(t, "history", "hello"); !strings.Contains(out, "hello has no deploy history yet") {
		t.Fatalf("history before a deploy: %q", out)
	}
	fails(t, 1, `app "hello" is not deployed`, "rollback", "hello")

	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n")
	ok(t, "push", "hello", "1700000000-aaa", spec)
	ok(t, "deploy", "hello")
	fails(t, 1, "no earlier release that ran", "rollback", "hello")
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 96m\n")
	ok(t, "push", "hello", "1700000001-bbb", spec)
	ok(t, "deploy", "hello")

	var rs []api.Release
	okJSON(t, &rs, "release", "list", "hello")
	if len(rs) != 2 || rs[0].MetaVersion != "1700000001-bbb" || rs[1].MetaVersion != "1700000000-aaa" || !rs[0].Current || rs[1].Current {
		t.Fatalf("release list -json: %+v", rs)
	}
	if rs[0].PushedBy != "dev@example.com" || len(rs[0].Procs) != 1 || rs[0].Procs[0].MemoryMB != 96 || rs[1].Procs[0].MemoryMB != 64 {
		t.Fatalf("release list -json procs and pusher: %+v", rs)
	}
	out := ok(t, "releases", "hello") // the alias
	for _, want := range []string{"VERSION", "1700000001-bbb *", "dev@example.com", "web(web) x1", "96M", "64M", "python3 -m http.server"} {
		if !strings.Contains(out, want) {
			t.Fatalf("release list lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "1700000001-bbb") > strings.Index(out, "1700000000-aaa") {
		t.Fatalf("release list is not newest first:\n%s", out)
	}

	out = ok(t, "rollback", "hello")
	for _, want := range []string{"==> hello: rollback to 1700000000-aaa (generation ", "following its progress", "hello: running (rollback to 1700000000-aaa)", "==> hello: running 1700000000-aaa in "} {
		if !strings.Contains(out, want) {
			t.Fatalf("rollback output lacks %q:\n%s", want, out)
		}
	}

	var h []api.HistoryEntry
	okJSON(t, &h, "history", "hello")
	if len(h) != 3 {
		t.Fatalf("history -json: %+v", h)
	}
	for i, want := range []string{"rollback to 1700000000-aaa", "deploy 1700000001-bbb", "deploy 1700000000-aaa"} {
		if h[i].Operation != want || h[i].Result != api.ResultRunning || h[i].By != "dev@example.com" || h[i].DurationMS <= 0 {
			t.Fatalf("history entry %d: %+v, want %q running", i, h[i], want)
		}
	}
	out = ok(t, "history", "hello")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "OPERATION") || !strings.Contains(lines[1], "rollback to 1700000000-aaa") || !strings.Contains(lines[1], "running") || !strings.Contains(lines[3], "deploy 1700000000-aaa") {
		t.Fatalf("history:\n%s", out)
	}

	// By name, without following: -json prints the accepted operation.
	var op api.Operation
	okJSON(t, &op, "rollback", "hello", "1700000001-bbb")
	if op.Operation != "rollback to 1700000001-bbb" || op.State != api.DeployPending || op.MetaVersion != "1700000001-bbb" {
		t.Fatalf("rollback -json: %+v", op)
	}
	c, err := api.NewClient(&api.Config{Address: addr, Token: loginToken(t, addr, "dev@example.com", "s3cret-pw")})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Deploys().Wait(context.Background(), "hello", 100*time.Millisecond, nil); err != nil || v.State != api.DeployRunning || v.MetaVersion != "1700000001-bbb" {
		t.Fatalf("after rollback by name: %+v %v", v, err)
	}

	// Wrong uses: exit 2 with the usage; a release never pushed, exit 1.
	fails(t, 2, "Usage: berth rollback", "rollback")
	fails(t, 2, "Usage: berth release list", "release", "list", "hello", "extra")
	fails(t, 2, "Usage: berth history", "history", "-nosuch", "hello")
	fails(t, 1, "no release 1700000009-zzz", "rollback", "hello", "1700000009-zzz")

	// Someone who is not a maintainer may do none of it.
	ok(t, "user", "create", "other@example.com")
	t.Setenv("BERTH_TOKEN", loginToken(t, addr, "other@example.com", "s3cret-pw"))
	fails(t, 1, "HTTP 403", "rollback", "hello")
	fails(t, 1, "HTTP 403", "history", "hello")
	fails(t, 1, "HTTP 403", "release", "list", "hello")
}
