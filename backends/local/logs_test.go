package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
)

func texts(lines []backends.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

// collect reads the whole answer of a Logs call that does not follow.
func collect(t testing.TB, s *Scheduler, app string, q backends.LogQuery) []backends.LogLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := s.Logs(ctx, app, q)
	if err != nil {
		t.Fatalf("Logs(%s, %+v): %v", app, q, err)
	}
	var out []backends.LogLine
	for l := range ch {
		out = append(out, l)
	}
	if ctx.Err() != nil {
		t.Fatalf("Logs(%s, %+v) did not end", app, q)
	}
	return out
}

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.0.stdout.log")
	l := &logFile{path: path, max: 100, files: 3}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Each kept line is 20 (time) + 1 + 9 + 1 = 31 bytes: three fit in 100.
	for i := range 10 {
		if err := l.write(t0.Add(time.Duration(i)*time.Second), fmt.Appendf(nil, "line %04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	l.f.Close()
	var names []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		names = append(names, e.Name())
		if fi, _ := e.Info(); fi.Size() > 100 {
			t.Errorf("%s is %d bytes, over the 100 allowed", e.Name(), fi.Size())
		}
	}
	if got := strings.Join(names, " "); got != "web.0.stdout.log web.0.stdout.log.1 web.0.stdout.log.2" {
		t.Fatalf("files after rotation: %s", got)
	}
	cur, _ := os.ReadFile(path)
	if want := "2026-01-02T03:04:14Z line 0009\n"; string(cur) != want {
		t.Errorf("current file %q, want %q", cur, want)
	}
	// Read back: the kept lines (3 + 3 + 1 of the 10), oldest first, with
	// their times; Lines and Since select among them.
	k := streamKey{"web", 0, backends.StreamStdout}
	got, tl := readKept(dir, k, backends.LogQuery{})
	tl.close()
	if want := "line 0003 line 0004 line 0005 line 0006 line 0007 line 0008 line 0009"; strings.Join(texts(got), " ") != want {
		t.Fatalf("kept lines %q, want %q", texts(got), want)
	}
	if !got[0].Time.Equal(t0.Add(3*time.Second)) || got[0].Proc != "web" || got[0].Instance != 0 || got[0].Stream != "stdout" {
		t.Errorf("first line %+v", got[0])
	}
	got, tl = readKept(dir, k, backends.LogQuery{Lines: 2})
	tl.close()
	if want := "line 0008 line 0009"; strings.Join(texts(got), " ") != want {
		t.Errorf("Lines 2: %q, want %q", texts(got), want)
	}
	got, tl = readKept(dir, k, backends.LogQuery{Since: t0.Add(7 * time.Second)})
	tl.close()
	if want := "line 0007 line 0008 line 0009"; strings.Join(texts(got), " ") != want {
		t.Errorf("Since +7s: %q, want %q", texts(got), want)
	}

	// One file only: it is emptied instead.
	one := &logFile{path: filepath.Join(dir, "one.0.stderr.log"), max: 40, files: 1}
	for i := range 3 {
		_ = one.write(t0, fmt.Appendf(nil, "line %04d", i))
	}
	one.f.Close()
	b, _ := os.ReadFile(one.path)
	if want := "2026-01-02T03:04:05Z line 0002\n"; string(b) != want {
		t.Errorf("single file %q, want %q", b, want)
	}
}

func TestTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	l := &logFile{path: filepath.Join(dir, "w.0.stdout.log"), max: 64, files: 3}
	defer l.f.Close()
	tl := &tail{key: streamKey{"w", 0, "stdout"}, path: l.path}
	defer tl.close()
	var seen []string
	for i := range 8 {
		_ = l.write(time.Now(), fmt.Appendf(nil, "n%d", i))
		if i%2 == 0 { // read now and then: two rotations happen in between
			for _, b := range tl.read() {
				_, text := parseLogLine(b)
				seen = append(seen, text)
			}
		}
	}
	for _, b := range tl.read() {
		_, text := parseLogLine(b)
		seen = append(seen, text)
	}
	if got := strings.Join(seen, " "); got != "n0 n1 n2 n3 n4 n5 n6 n7" {
		t.Fatalf("tail read %q across rotations", got)
	}
}

func logsSpecProc(name, proc, cmd string) *backends.AppSpec {
	spec := logsSpec(name, cmd, 1)
	spec.Procs[0].Name = proc
	return spec
}

func logsSpec(name, cmd string, instances int) *backends.AppSpec {
	return &backends.AppSpec{App: name, MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "worker", Type: backends.ProcWorker, Instances: instances, CPU: 0.1, MemoryMB: 16, Cmd: cmd}}}
}

func TestLogsReadBack(t *testing.T) {
	dir := t.TempDir()
	s := newScheduler(t, dir)
	defer s.Close()
	spec := logsSpec("logs", `echo "out $BERTH_PROC.$BERTH_INSTANCE"; echo "err $BERTH_INSTANCE" >&2; echo "more $BERTH_INSTANCE"; exec sleep 300`, 2)
	spec.Procs = append(spec.Procs, backends.ProcSpec{Name: "other", Type: backends.ProcWorker, Instances: 1, CPU: 0.1, MemoryMB: 16,
		Cmd: `echo other; exec sleep 300`})
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "logs", "running", running)

	all := collect(t, s, "logs", backends.LogQuery{})
	if len(all) != 7 {
		t.Fatalf("every line: %+v, want 7", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) || all[i].Time.IsZero() {
			t.Fatalf("lines not in time order: %+v", all)
		}
	}
	if time.Since(all[0].Time) > time.Minute {
		t.Errorf("first line stamped %s", all[0].Time)
	}
	got := collect(t, s, "logs", backends.LogQuery{Proc: "worker", Instance: "1"})
	// Order holds within a stream (stdout and stderr are read apart).
	var out, errs []string
	for _, l := range got {
		if l.Stream == backends.StreamStdout {
			out = append(out, l.Text)
		} else {
			errs = append(errs, l.Text)
		}
	}
	if strings.Join(out, "|") != "out worker.1|more 1" || strings.Join(errs, "|") != "err 1" {
		t.Errorf("worker 1: %q", texts(got))
	}
	for _, l := range got {
		want := backends.StreamStdout
		if strings.HasPrefix(l.Text, "err") {
			want = backends.StreamStderr
		}
		if l.Proc != "worker" || l.Instance != 1 || l.Stream != want {
			t.Errorf("line %+v", l)
		}
	}
	got = collect(t, s, "logs", backends.LogQuery{Instance: "logs/worker/0", Stream: backends.StreamStderr})
	if strings.Join(texts(got), "|") != "err 0" {
		t.Errorf("stderr of instance id logs/worker/0: %q", texts(got))
	}
	got = collect(t, s, "logs", backends.LogQuery{Proc: "other"})
	if strings.Join(texts(got), "|") != "other" {
		t.Errorf("proc other: %q", texts(got))
	}
	got = collect(t, s, "logs", backends.LogQuery{Lines: 2})
	if len(got) != 2 || got[0] != all[5] || got[1] != all[6] {
		t.Errorf("last 2 lines: %+v, want %+v", got, all[5:])
	}
	got = collect(t, s, "logs", backends.LogQuery{Since: all[6].Time})
	if len(got) != 1 || got[0] != all[6] {
		t.Errorf("since the last line's time: %+v", got)
	}
	if _, err := s.Logs(context.Background(), "logs", backends.LogQuery{Instance: "first"}); err == nil {
		t.Error("instance \"first\" accepted")
	}
	if _, err := s.Logs(context.Background(), "nosuch", backends.LogQuery{}); err == nil {
		t.Error("logs of an unknown app answered")
	}
}

func TestLogsFollow(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, StopTimeout: 3 * time.Second, LogMaxBytes: 200, LogFiles: 2,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Prints a numbered line whenever the file "go" exists, then removes it.
	trigger := filepath.Join(t.TempDir(), "go")
	spec := logsSpec("follow", fmt.Sprintf(`echo start; i=0; while :; do if [ -e %s ]; then i=$((i+1)); echo "tick $i"; echo "tock $i" >&2; rm -f %s; fi; sleep 0.05; done`, trigger, trigger), 1)
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "follow", "running", running)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := s.Logs(ctx, "follow", backends.LogQuery{Follow: true, Stream: backends.StreamStdout})
	if err != nil {
		t.Fatal(err)
	}
	next := func() backends.LogLine {
		t.Helper()
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatal("follow ended")
			}
			return l
		case <-ctx.Done():
			t.Fatal("no line in time")
		}
		return backends.LogLine{}
	}
	if l := next(); l.Text != "start" {
		t.Fatalf("first line %+v", l)
	}
	// Enough lines to rotate the 200-byte file a few times.
	for i := 1; i <= 12; i++ {
		if err := os.WriteFile(trigger, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if l := next(); l.Text != fmt.Sprintf("tick %d", i) || l.Stream != backends.StreamStdout {
			t.Fatalf("line %d: %+v", i, l)
		}
	}
	cancel()
	for range ch { // closed once ctx has ended
	}
}

func TestCrashedInstanceStderrKept(t *testing.T) {
	dir := t.TempDir()
	s := newScheduler(t, dir)
	defer s.Close()
	spec := logsSpec("crash", `echo "boom: cannot open config" >&2; exit 3`, 1)
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "crash", "failed", func(st *backends.AppStatus) bool { return st.Deployment == backends.DeployFailed })
	if err := s.Stop(context.Background(), "crash"); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, "crash", backends.LogQuery{Stream: backends.StreamStderr, Lines: 1})
	if len(got) != 1 || got[0].Text != "boom: cannot open config" || got[0].Proc != "worker" {
		t.Fatalf("stderr of the crashed app after Stop: %+v", got)
	}
}

func TestLogsFollowEndsWithClose(t *testing.T) {
	s := newScheduler(t, t.TempDir())
	spec := logsSpec("closing", `echo up; exec sleep 300`, 1)
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "closing", "running", running)
	ch, err := s.Logs(context.Background(), "closing", backends.LogQuery{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := <-ch; l.Text != "up" {
		t.Fatalf("first line %+v", l)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a line after Close")
		}
	default:
		t.Fatal("Close returned with a follow still open")
	}
	if _, err := s.Logs(context.Background(), "closing", backends.LogQuery{}); err == nil {
		t.Fatal("Logs after Close: no error")
	}
}
