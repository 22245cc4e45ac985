package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// collectRun reads a run to its end.
func collectRun(t *testing.T, h *backends.RunHandle) (stdout, stderr []string, res backends.RunResult) {
	t.Helper()
	for l := range h.Lines {
		if l.Stream == backends.StreamStderr {
			stderr = append(stderr, l.Text)
		} else {
			stdout = append(stdout, l.Text)
		}
	}
	return stdout, stderr, <-h.Result
}

func runSpec(cmd ...string) backends.RunSpec {
	return backends.RunSpec{
		ID: "r1",
		App: &backends.AppSpec{App: "oneoff", MetaVersion: "v1",
			Env:        map[string]string{"PUBLIC_ONE": "pub", "BERTH_TEST_TOKEN": token},
			PrivateEnv: map[string]string{"DB_PASSWORD": "s3cret"}},
		Proc:    backends.ProcSpec{Name: "web", Type: backends.ProcWeb, Cmd: "./server", Env: map[string]string{"PROC_VAR": "p"}},
		Command: cmd,
	}
}

func TestRunOutputEnvAndExitCode(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	h, err := s.Run(ctx, "oneoff", runSpec("sh", "-c", "env; echo to-stderr >&2; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	out, errs, res := collectRun(t, h)
	if res.ExitCode != 3 || res.Err != nil {
		t.Fatalf("result %+v, want exit code 3 and no error", res)
	}
	env := strings.Join(out, "\n")
	for _, want := range []string{"DB_PASSWORD=s3cret", "PUBLIC_ONE=pub", "PROC_VAR=p", "BERTH_APP=oneoff", "BERTH_PROC=web"} {
		if !strings.Contains("\n"+env+"\n", "\n"+want+"\n") {
			t.Errorf("env of the run lacks %s:\n%s", want, env)
		}
	}
	if len(errs) != 1 || errs[0] != "to-stderr" {
		t.Errorf("stderr = %q, want [to-stderr]", errs)
	}
	// The run is not an instance of the app: nothing is running.
	if _, err := s.Status(ctx, "oneoff"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Status after a run = %v, want ErrNotFound", err)
	}
}

func TestRunArgsAreNotShellWords(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	h, err := s.Run(context.Background(), "oneoff", runSpec("echo", "a  b", "$HOME;ls"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, res := collectRun(t, h)
	if res.ExitCode != 0 || len(out) != 1 || out[0] != "a  b $HOME;ls" {
		t.Fatalf("out %q, result %+v", out, res)
	}
}

func TestRunMissingProgram(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	h, err := s.Run(context.Background(), "oneoff", runSpec("no-such-program-here"))
	if err != nil {
		t.Fatal(err)
	}
	_, errs, res := collectRun(t, h)
	if res.ExitCode != 127 || !strings.Contains(strings.Join(errs, "\n"), "no-such-program-here") {
		t.Fatalf("stderr %q, result %+v; want 127 and a message naming the program", errs, res)
	}
}

func TestRunKilledOnCancel(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A child in the background too: the whole tree goes.
	h, err := s.Run(ctx, "oneoff", runSpec("sh", "-c", `sleep 300 & echo "pids $$ $!"; wait`))
	if err != nil {
		t.Fatal(err)
	}
	first := <-h.Lines
	f := strings.Fields(first.Text)
	if len(f) != 3 || f[0] != "pids" {
		t.Fatalf("first line %q", first.Text)
	}
	var pids []int
	for _, p := range f[1:] {
		n, _ := strconv.Atoi(p)
		pids = append(pids, n)
	}
	start := time.Now()
	cancel()
	_, _, res := collectRun(t, h)
	if !errors.Is(res.Err, context.Canceled) {
		t.Errorf("result %+v, want the ctx's error", res)
	}
	if res.ExitCode != 128+15 {
		t.Errorf("exit code %d, want 143 (SIGTERM)", res.ExitCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %s to end after cancel", d)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d of the run is still alive", p)
		}
	}
}

func TestRunStoppedByClose(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	h, err := s.Run(context.Background(), "oneoff", runSpec("sh", "-c", `echo up; exec sleep 300`))
	if err != nil {
		t.Fatal(err)
	}
	<-h.Lines
	done := make(chan error)
	go func() { done <- s.Close() }()
	_, _, res := collectRun(t, h)
	if res.Err == nil {
		t.Errorf("result %+v: a run ended by Close has an error", res)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), "oneoff", runSpec("true")); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestRunAsTheAppsUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uid isolation needs root")
	}
	s, data, apps := isolatedScheduler(t, IsolationUID)
	h, err := s.Run(context.Background(), "oneoff", runSpec("sh", "-c", `id -u; pwd; echo "HOME=$HOME"; cat `+filepath.Join(data, "secret")))
	if err != nil {
		t.Fatal(err)
	}
	out, errs, res := collectRun(t, h)
	uid, err := s.uids.uid("oneoff")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(apps, "oneoff")
	if len(out) != 3 || out[0] != strconv.Itoa(uid) || out[1] != dir || out[2] != "HOME="+dir {
		t.Errorf("stdout %q; want uid %d, working dir and HOME %s", out, uid, dir)
	}
	if res.ExitCode == 0 || !strings.Contains(strings.Join(errs, "\n"), "Permission denied") {
		t.Errorf("the run could read berth's data dir: stderr %q, result %+v", errs, res)
	}
}

func TestRunStoppedWithTheApp(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	defer s.Close()
	h, err := s.Run(context.Background(), "oneoff", runSpec("sh", "-c", `echo up; exec sleep 300`))
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Run(context.Background(), "other", runSpec("sh", "-c", `echo up; exec sleep 300`))
	if err != nil {
		t.Fatal(err)
	}
	<-h.Lines
	<-other.Lines
	if err := s.Stop(context.Background(), "oneoff"); err != nil {
		t.Fatal(err)
	}
	// Stop returned once the app's run had ended.
	select {
	case res := <-h.Result:
		if !errors.Is(res.Err, errAppStopped) {
			t.Errorf("result %+v, want the app stopped", res)
		}
	case <-time.After(time.Second):
		t.Fatal("the run of a stopped app goes on")
	}
	select {
	case res := <-other.Result:
		t.Fatalf("another app's run ended with Stop: %+v", res)
	case <-time.After(200 * time.Millisecond):
	}
}
