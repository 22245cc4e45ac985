package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// logsEngine is an engine on a local scheduler whose data dir holds the
// kept output of app "hello" (as the scheduler writes it) and no process.
func logsEngine(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs", "hello")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"web.0.stdout.log":    "2026-01-01T00:00:01Z listening\n2026-01-01T00:00:04Z GET /\n",
		"web.0.stderr.log":    "2026-01-01T00:00:02Z warning: old config\n",
		"web.1.stderr.log":    "2026-01-01T00:00:03Z panic: no database\n2026-01-01T00:00:05Z goroutine 1 [running]\n2026-01-01T00:00:06Z exit status 2\n",
		"worker.0.stdout.log": "2026-01-01T00:00:02Z working\n",
	} {
		if err := os.WriteFile(filepath.Join(logs, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := local.New(local.Config{DataDir: dir, Isolation: local.IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sch.Close() })
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) { d.Scheduler = sch })
	ctx := context.Background()
	for _, name := range []string{"hello", "other"} {
		a := &state.App{Name: name, Owner: "dev@example.com", Maintainers: map[string]string{"dev@example.com": state.RoleDeveloper}}
		if _, err := state.Put(ctx, e.store, state.AppKey(name), a, 0); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func readAll(t *testing.T, ch <-chan backends.LogLine) []string {
	t.Helper()
	var out []string
	for l := range ch {
		out = append(out, fmt.Sprintf("%s.%d %s: %s", l.Proc, l.Instance, l.Stream, l.Text))
	}
	return out
}

func TestLogsPermissionAndQuery(t *testing.T) {
	e := logsEngine(t)
	ctx := context.Background()
	dev := &Identity{Email: "dev@example.com"}

	ch, err := e.Logs(ctx, dev, "hello", backends.LogQuery{Proc: "web", Lines: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, ch)
	if strings.Join(got, "|") != "web.0 stdout: GET /|web.1 stderr: goroutine 1 [running]|web.1 stderr: exit status 2" {
		t.Fatalf("last 3 lines of web, both streams, in time order: %q", got)
	}

	// An app token of the app reads it; of another app, or a stranger, not.
	tok := &Identity{Email: "dev@example.com", AppToken: true, App: "hello"}
	if ch, err := e.Logs(ctx, tok, "hello", backends.LogQuery{Proc: "worker"}); err != nil {
		t.Fatalf("app token of hello: %v", err)
	} else if got := readAll(t, ch); strings.Join(got, "|") != "worker.0 stdout: working" {
		t.Fatalf("worker: %q", got)
	}
	for _, id := range []*Identity{{Email: "stranger@example.com"}, {Email: "dev@example.com", AppToken: true, App: "other"}} {
		if _, err := e.Logs(ctx, id, "hello", backends.LogQuery{}); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: err = %v, want forbidden", id.Name(), err)
		}
	}
	// No such app; an app that was never deployed; a bad query.
	if _, err := e.Logs(ctx, dev, "nosuch", backends.LogQuery{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown app: %v", err)
	}
	if _, err := e.Logs(ctx, dev, "other", backends.LogQuery{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not been deployed") {
		t.Errorf("app never deployed: %v", err)
	}
	for _, q := range []backends.LogQuery{{Lines: -1}, {Lines: MaxLogLines + 1}, {Stream: "stdin"}, {Proc: "Web"}, {Instance: "zero"}} {
		if _, err := e.Logs(ctx, dev, "hello", q); !errors.Is(err, ErrInvalid) {
			t.Errorf("query %+v: err = %v, want invalid", q, err)
		}
	}
}

func TestLastStderr(t *testing.T) {
	e := logsEngine(t)
	got := e.LastStderr(context.Background(), "hello", 2)
	if strings.Join(got, "|") != "goroutine 1 [running]|exit status 2" {
		t.Fatalf("LastStderr(2) = %q: want the last two lines of web.1, the last to write", got)
	}
	got = e.LastStderr(context.Background(), "hello", 10)
	if strings.Join(got, "|") != "panic: no database|goroutine 1 [running]|exit status 2" {
		t.Fatalf("LastStderr(10) = %q: want web.1's lines only", got)
	}
	if got := e.LastStderr(context.Background(), "other", 10); got != nil {
		t.Fatalf("LastStderr of an app without output = %q", got)
	}
	if msg := StderrMessage("exited with status 2", []string{"a", "b"}); msg != "exited with status 2; last lines of stderr:\na\nb" {
		t.Fatalf("StderrMessage = %q", msg)
	}
}
