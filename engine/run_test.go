package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

func newRunEngine(t *testing.T) (*Engine, *reconcilertest.MemScheduler) {
	t.Helper()
	m := reconcilertest.NewMemScheduler()
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) { d.Scheduler, d.SchedulerName = m, "mem" })
	return e, m
}

func drainRun(t *testing.T, rc *RunningCommand) ([]string, backends.RunResult) {
	t.Helper()
	var out []string
	for l := range rc.Lines {
		out = append(out, l.Stream+": "+l.Text)
	}
	return out, <-rc.Result
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	e, m := newRunEngine(t)
	dev := addUser(t, e, "dev@example.com")
	outsider := addUser(t, e, "outsider@example.com")
	addApp(t, e, dev, "hello", "")

	_, err := e.Run(ctx, dev, "hello", RunRequest{Command: []string{"env"}})
	wantKind(t, "a run before any push", err, ErrInvalid)

	push(t, e, "hello", "1-aaa")
	if _, err := e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "GREETING", Value: "hi", Public: true}, {Name: "DB_PASSWORD", Value: "s3cret"}}, false); err != nil {
		t.Fatal(err)
	}
	m.SetRun(func(spec backends.RunSpec) ([]backends.LogLine, int) {
		return []backends.LogLine{
			{Stream: backends.StreamStdout, Text: "private=" + spec.App.PrivateEnv["DB_PASSWORD"]},
			{Stream: backends.StreamStderr, Text: "public=" + spec.App.Env["GREETING"]},
		}, 3
	})
	rc, err := e.Run(ctx, dev, "hello", RunRequest{Command: []string{"sh", "-c", "env"}})
	if err != nil {
		t.Fatal(err)
	}
	out, res := drainRun(t, rc)
	if strings.Join(out, "|") != "stdout: private=s3cret|stderr: public=hi" || res.ExitCode != 3 || res.Err != nil {
		t.Fatalf("output %q, result %+v", out, res)
	}
	if rc.Proc != "web" || rc.MetaVersion != "1-aaa" || !strings.HasPrefix(rc.ID, "r") {
		t.Errorf("run %+v: want proc web (the first web proc) of 1-aaa", rc)
	}
	runs := m.Runs()
	got := runs[len(runs)-1]
	if got.Proc.Name != "web" || got.Proc.Cmd != "./web" || got.App.App != "hello" || strings.Join(got.Command, " ") != "sh -c env" || got.ID != rc.ID {
		t.Errorf("the scheduler got %+v", got)
	}

	// The proc named; an unknown one.
	rc, err = e.Run(ctx, dev, "hello", RunRequest{Command: []string{"true"}, Proc: "mailer"})
	if err != nil {
		t.Fatal(err)
	}
	drainRun(t, rc)
	if runs := m.Runs(); runs[len(runs)-1].Proc.Name != "mailer" || runs[len(runs)-1].Proc.MemoryMB != 32 {
		t.Errorf("run as mailer: %+v", runs[len(runs)-1].Proc)
	}
	_, err = e.Run(ctx, dev, "hello", RunRequest{Command: []string{"true"}, Proc: "nosuch"})
	wantKind(t, "an unknown proc", err, ErrInvalid)

	for what, req := range map[string]RunRequest{
		"no command":       {},
		"an empty program": {Command: []string{""}},
		"a NUL":            {Command: []string{"echo", "a\x00b"}},
		"a short timeout":  {Command: []string{"true"}, Timeout: time.Millisecond},
		"a long timeout":   {Command: []string{"true"}, Timeout: 48 * time.Hour},
		"a bad proc name":  {Command: []string{"true"}, Proc: "Not_A_Label"},
		"a huge command":   {Command: []string{strings.Repeat("x", 70<<10)}},
	} {
		_, err := e.Run(ctx, dev, "hello", req)
		wantKind(t, what, err, ErrInvalid)
	}
	n := len(m.Runs())
	_, err = e.Run(ctx, outsider, "hello", RunRequest{Command: []string{"env"}})
	wantKind(t, "an outsider's run", err, ErrForbidden)
	_, err = e.Run(ctx, dev, "nosuch", RunRequest{Command: []string{"env"}})
	wantKind(t, "a run in an unknown app", err, ErrNotFound)
	if len(m.Runs()) != n {
		t.Error("a refused run reached the scheduler")
	}
}

func TestRunTimeoutAndCancel(t *testing.T) {
	e, m := newRunEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	// Lines nobody reads until the ctx ends.
	m.SetRun(func(spec backends.RunSpec) ([]backends.LogLine, int) {
		return make([]backends.LogLine, 1000), 0
	})
	rc, err := e.Run(context.Background(), dev, "hello", RunRequest{Command: []string{"sleep", "300"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	<-rc.Lines
	time.Sleep(1200 * time.Millisecond)
	_, res := drainRun(t, rc)
	if !errors.Is(res.Err, ErrTimeout) {
		t.Errorf("result %+v, want a timeout", res)
	}

	ctx, cancel := context.WithCancel(context.Background())
	rc, err = e.Run(ctx, dev, "hello", RunRequest{Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	<-rc.Lines
	cancel()
	if _, res := drainRun(t, rc); !errors.Is(res.Err, context.Canceled) {
		t.Errorf("result %+v, want context.Canceled", res)
	}
}
