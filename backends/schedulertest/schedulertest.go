// Package schedulertest is the conformance suite every backends.Scheduler
// implementation runs: the embedded local scheduler always, the Nomad one
// when a Nomad agent is reachable.
package schedulertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// AppFactory describes the test app the suite deploys.
type AppFactory struct {
	// New returns the spec of a fresh test app called name (MetaVersion
	// "v1"): a proc named "web" of type web with Instances 1 whose instances
	// report an Address, and optionally more procs (the suite removes them
	// at one step and checks that their instances go away).
	New func(t testing.TB, name string) *backends.AppSpec
	// Serving, if set, is called whenever the app has converged to running;
	// it checks what a user would see (e.g. requests through a router reach
	// every running web instance).
	Serving func(t testing.TB, s backends.Scheduler, spec *backends.AppSpec, st *backends.AppStatus)
	// Gone, if set, is called after Stop with the last status the app had;
	// it checks that nothing of the app is left (e.g. no process).
	Gone func(t testing.TB, spec *backends.AppSpec, last *backends.AppStatus)
	// Crashing, if set, returns the spec of an app whose web proc exits at
	// once; the suite checks its deployment ends failed. Nil skips that test.
	Crashing func(t testing.TB, name string) *backends.AppSpec
	// CrashStderr, if set, is what the crashing app's instance writes to
	// stderr before it exits: the suite checks Logs shows it.
	CrashStderr string
	// Logging, if set, returns the spec of an app with a proc named "log"
	// of type worker, 1 instance, running LoggingCmd; the suite reads its
	// output with Logs. Nil skips that test.
	Logging func(t testing.TB, name string) *backends.AppSpec
	// Timeout bounds each wait for convergence; 0 means 60s.
	Timeout time.Duration
	// Prefix is prepended to app names the suite uses (unique per run keeps
	// runs against a shared cluster apart); "" means "bt".
	Prefix string
}

// LoggingCmd is the command of the Logging app's proc: a line on stdout and
// one on stderr, then a numbered line on stdout every half second.
const LoggingCmd = `echo berth-logs-out; echo berth-logs-err >&2; i=0; while :; do i=$((i+1)); echo "berth-logs-tick $i"; sleep 0.5; done`

// Run runs the conformance suite. factory returns a fresh scheduler; the
// suite closes it at the end of each subtest.
func Run(t *testing.T, factory func(t testing.TB) backends.Scheduler, app AppFactory) {
	if app.Timeout == 0 {
		app.Timeout = 60 * time.Second
	}
	if app.Prefix == "" {
		app.Prefix = "bt"
	}
	name := func(s string) string { return app.Prefix + "-" + s }

	t.Run("UnknownApp", func(t *testing.T) {
		s := open(t, factory)
		ctx := testCtx(t, app.Timeout)
		if _, err := s.Status(ctx, name("nosuchapp")); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Status(unknown app) = %v, want ErrNotFound", err)
		}
		if err := s.Restart(ctx, name("nosuchapp"), ""); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Restart(unknown app) = %v, want ErrNotFound", err)
		}
		if err := s.Stop(ctx, name("nosuchapp")); err != nil {
			t.Fatalf("Stop(unknown app) = %v, want nil", err)
		}
		if err := s.Health(ctx); err != nil {
			t.Fatalf("Health = %v", err)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		s := open(t, factory)
		ctx := testCtx(t, 10*app.Timeout)
		spec := app.New(t, name("life"))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), app.Timeout)
			defer cancel()
			_ = s.Stop(c, spec.App)
		})

		// Submit, converge.
		mustSubmit(t, ctx, s, spec)
		st := waitConverged(t, ctx, s, spec, app.Timeout)
		if app.Serving != nil {
			app.Serving(t, s, spec, st)
		}
		apps, err := s.Apps(ctx)
		if err != nil || !slices.Contains(apps, spec.App) {
			t.Fatalf("Apps() = %v, %v; want it to contain %s", apps, err, spec.App)
		}
		if !slices.IsSorted(apps) {
			t.Fatalf("Apps() = %v, not sorted", apps)
		}

		// The same spec again changes nothing.
		before := identities(st)
		mustSubmit(t, ctx, s, spec)
		time.Sleep(time.Second)
		st = waitConverged(t, ctx, s, spec, app.Timeout)
		if got := identities(st); !sameIdentities(before, got) {
			t.Fatalf("resubmitting the same spec replaced instances: before %v, after %v", before, got)
		}

		// Scale web up to 3 (and drop any other proc).
		web0 := before[key{"web", 0}]
		spec = clone(spec)
		spec.Procs = onlyWeb(spec.Procs)
		setInstances(spec, "web", 3)
		mustSubmit(t, ctx, s, spec)
		st = waitConverged(t, ctx, s, spec, app.Timeout)
		if got := identities(st)[key{"web", 0}]; got != web0 {
			t.Errorf("scaling up replaced web instance 0: %v -> %v", web0, got)
		}
		if app.Serving != nil {
			app.Serving(t, s, spec, st)
		}

		// Scale down to 1.
		setInstances(spec, "web", 1)
		mustSubmit(t, ctx, s, spec)
		st = waitConverged(t, ctx, s, spec, app.Timeout)
		if got := identities(st)[key{"web", 0}]; got != web0 {
			t.Errorf("scaling down replaced web instance 0: %v -> %v", web0, got)
		}

		// A new version rolls the instances.
		spec = clone(spec)
		spec.MetaVersion = "v2"
		setInstances(spec, "web", 2)
		before = identities(st)
		mustSubmit(t, ctx, s, spec)
		st = waitConverged(t, ctx, s, spec, app.Timeout)
		if st.MetaVersion != "v2" {
			t.Fatalf("MetaVersion = %q after deploying v2", st.MetaVersion)
		}
		if got := identities(st)[key{"web", 0}]; got == before[key{"web", 0}] {
			t.Errorf("new version did not replace web instance 0 (%v)", got)
		}
		if app.Serving != nil {
			app.Serving(t, s, spec, st)
		}

		// Restart replaces every instance.
		before = identities(st)
		if err := s.Restart(ctx, spec.App, ""); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		st = waitFor(t, ctx, s, spec.App, app.Timeout, "every instance replaced and running", func(st *backends.AppStatus) bool {
			if !converged(spec, st) {
				return false
			}
			got := identities(st)
			for k, v := range before {
				if got[k] == v {
					return false
				}
			}
			return true
		})
		if app.Serving != nil {
			app.Serving(t, s, spec, st)
		}

		// Stop: gone.
		if err := s.Stop(ctx, spec.App); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if _, err := s.Status(ctx, spec.App); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Status after Stop = %v, want ErrNotFound", err)
		}
		apps, err = s.Apps(ctx)
		if err != nil || slices.Contains(apps, spec.App) {
			t.Fatalf("Apps() after Stop = %v, %v; want it without %s", apps, err, spec.App)
		}
		if app.Gone != nil {
			app.Gone(t, spec, st)
		}
		if err := s.Stop(ctx, spec.App); err != nil {
			t.Fatalf("second Stop = %v, want nil", err)
		}
	})

	t.Run("CrashingAppFails", func(t *testing.T) {
		if app.Crashing == nil {
			t.Skip("no crashing app for this scheduler")
		}
		s := open(t, factory)
		ctx := testCtx(t, 2*app.Timeout)
		spec := app.Crashing(t, name("crash"))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), app.Timeout)
			defer cancel()
			_ = s.Stop(c, spec.App)
		})
		mustSubmit(t, ctx, s, spec)
		st := waitFor(t, ctx, s, spec.App, app.Timeout, "deployment failed", func(st *backends.AppStatus) bool {
			return st.Deployment == backends.DeployFailed
		})
		if st.Message == "" {
			t.Errorf("failed deployment has no message: %+v", st)
		}
		if app.CrashStderr != "" {
			waitLogs(t, ctx, s, spec.App, backends.LogQuery{Stream: backends.StreamStderr, Lines: 5}, app.Timeout, "the crash's stderr", func(ls []backends.LogLine) bool {
				return slices.ContainsFunc(ls, func(l backends.LogLine) bool {
					return strings.Contains(l.Text, app.CrashStderr) && l.Stream == backends.StreamStderr
				})
			})
		}
		if err := s.Stop(ctx, spec.App); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if app.Gone != nil {
			app.Gone(t, spec, st)
		}
	})

	t.Run("Logs", func(t *testing.T) {
		if app.Logging == nil {
			t.Skip("no logging app for this scheduler")
		}
		s := open(t, factory)
		ctx := testCtx(t, 3*app.Timeout)
		spec := app.Logging(t, name("logs"))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), app.Timeout)
			defer cancel()
			_ = s.Stop(c, spec.App)
		})
		mustSubmit(t, ctx, s, spec)
		has := func(ls []backends.LogLine, stream, text string) bool {
			return slices.ContainsFunc(ls, func(l backends.LogLine) bool {
				return l.Stream == stream && l.Text == text && l.Proc == "log" && l.Instance == 0
			})
		}
		waitLogs(t, ctx, s, spec.App, backends.LogQuery{}, app.Timeout, "both streams", func(ls []backends.LogLine) bool {
			return has(ls, backends.StreamStdout, "berth-logs-out") && has(ls, backends.StreamStderr, "berth-logs-err")
		})
		ls := readLogs(t, ctx, s, spec.App, backends.LogQuery{Proc: "log", Stream: backends.StreamStderr})
		if len(ls) != 1 || !has(ls, backends.StreamStderr, "berth-logs-err") {
			t.Errorf("stderr of proc log: %+v, want the one line berth-logs-err", ls)
		}
		ls = readLogs(t, ctx, s, spec.App, backends.LogQuery{Stream: backends.StreamStdout, Lines: 2})
		if len(ls) != 2 || !strings.HasPrefix(ls[1].Text, "berth-logs-tick ") {
			t.Errorf("last 2 lines of stdout: %+v", ls)
		}
		if ls := readLogs(t, ctx, s, spec.App, backends.LogQuery{Proc: "nosuch"}); len(ls) != 0 {
			t.Errorf("lines of a proc the app does not have: %+v", ls)
		}

		// Follow: a tick written after the kept ones arrives.
		fctx, cancel := context.WithTimeout(ctx, app.Timeout)
		defer cancel()
		ch, err := s.Logs(fctx, spec.App, backends.LogQuery{Stream: backends.StreamStdout, Lines: 1, Follow: true})
		if err != nil {
			t.Fatalf("Logs follow: %v", err)
		}
		var first string
		for l := range ch {
			if first == "" {
				first = l.Text
				continue
			}
			if strings.HasPrefix(l.Text, "berth-logs-tick ") && l.Text != first {
				cancel()
				for range ch { // the channel is closed once ctx ends
				}
				return
			}
		}
		t.Fatalf("following: no new tick after %q (ended: %v)", first, fctx.Err())
	})

	t.Run("Run", func(t *testing.T) {
		s := open(t, factory)
		ctx := testCtx(t, app.Timeout)
		spec := app.New(t, name("run"))
		spec.Env = map[string]string{"BERTH_RUN_PUBLIC": "pub"}
		var web backends.ProcSpec
		for _, p := range spec.Procs {
			if p.Name == "web" {
				web = p
			}
		}
		h, err := s.Run(ctx, spec.App, backends.RunSpec{App: spec, Proc: web, ID: "conf1",
			Command: []string{"/bin/sh", "-c", `echo "public=$BERTH_RUN_PUBLIC"; echo to-stderr >&2; exit 3`}})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		var out, errs []string
		for l := range h.Lines {
			if l.Stream == backends.StreamStderr {
				errs = append(errs, l.Text)
			} else {
				out = append(out, l.Text)
			}
		}
		res := <-h.Result
		if res.Err != nil || res.ExitCode != 3 {
			t.Errorf("Run result %+v, want exit code 3", res)
		}
		if strings.Join(out, "|") != "public=pub" || strings.Join(errs, "|") != "to-stderr" {
			t.Errorf("Run output: stdout %q, stderr %q", out, errs)
		}
		// A run is not a deploy: the app is not running.
		if _, err := s.Status(ctx, spec.App); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Status after a run = %v, want ErrNotFound", err)
		}

		// Ending ctx kills the command.
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		h, err = s.Run(rctx, spec.App, backends.RunSpec{App: spec, Proc: web, ID: "conf2",
			Command: []string{"/bin/sh", "-c", "echo started; exec sleep 600"}})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if l, ok := <-h.Lines; !ok || l.Text != "started" {
			t.Fatalf("first line of the run: %+v", l)
		}
		cancel()
		for range h.Lines {
		}
		if res := <-h.Result; !errors.Is(res.Err, context.Canceled) {
			t.Errorf("a cancelled run ended with %+v, want context.Canceled", res)
		}
	})

	t.Run("InvalidSpec", func(t *testing.T) {
		s := open(t, factory)
		ctx := testCtx(t, app.Timeout)
		bad := app.New(t, "Not_A_Label")
		if err := s.Submit(ctx, bad); err == nil {
			_ = s.Stop(ctx, bad.App)
			t.Fatalf("Submit accepted app name %q", bad.App)
		}
	})
}

func open(t *testing.T, factory func(t testing.TB) backends.Scheduler) backends.Scheduler {
	t.Helper()
	s := factory(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustSubmit(t testing.TB, ctx context.Context, s backends.Scheduler, spec *backends.AppSpec) {
	t.Helper()
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatalf("Submit(%s %s): %v", spec.App, spec.MetaVersion, err)
	}
}

type key struct {
	proc  string
	index int
}

type ident struct {
	ID  string
	PID int
}

// identities maps each instance to what tells it apart from a replacement:
// its ID and, where the scheduler reports one, its PID.
func identities(st *backends.AppStatus) map[key]ident {
	m := map[key]ident{}
	for _, in := range st.Instances {
		m[key{in.Proc, in.Index}] = ident{in.ID, in.PID}
	}
	return m
}

func sameIdentities(a, b map[key]ident) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func clone(spec *backends.AppSpec) *backends.AppSpec {
	c := *spec
	c.Procs = slices.Clone(spec.Procs)
	return &c
}

func onlyWeb(ps []backends.ProcSpec) []backends.ProcSpec {
	var out []backends.ProcSpec
	for _, p := range ps {
		if p.Name == "web" {
			out = append(out, p)
		}
	}
	return out
}

func setInstances(spec *backends.AppSpec, proc string, n int) {
	for i := range spec.Procs {
		if spec.Procs[i].Name == proc {
			spec.Procs[i].Instances = n
		}
	}
}

// converged tells whether st shows spec fully deployed: deployment running,
// the spec's version, exactly the desired instances (indexes 0..n-1 of each
// non-oneshot proc, running, web ones with an address) and no others.
func converged(spec *backends.AppSpec, st *backends.AppStatus) bool {
	if st.Deployment != backends.DeployRunning || st.MetaVersion != spec.MetaVersion {
		return false
	}
	want := map[key]backends.ProcSpec{}
	for _, p := range spec.Procs {
		if p.Type == backends.ProcOneshot {
			continue
		}
		for i := 0; i < p.Instances; i++ {
			want[key{p.Name, i}] = p
		}
	}
	seen := 0
	for _, in := range st.Instances {
		p, ok := want[key{in.Proc, in.Index}]
		if !ok {
			if slices.ContainsFunc(spec.Procs, func(p backends.ProcSpec) bool {
				return p.Name == in.Proc && p.Type == backends.ProcOneshot
			}) {
				continue
			}
			return false
		}
		if in.State != backends.StateRunning || in.ID == "" {
			return false
		}
		if p.Type == backends.ProcWeb && in.Address == "" {
			return false
		}
		seen++
	}
	return seen == len(want) && slices.IsSortedFunc(st.Instances, func(a, b backends.Instance) int {
		if c := strings.Compare(a.Proc, b.Proc); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
}

func waitConverged(t testing.TB, ctx context.Context, s backends.Scheduler, spec *backends.AppSpec, timeout time.Duration) *backends.AppStatus {
	t.Helper()
	return waitFor(t, ctx, s, spec.App, timeout, fmt.Sprintf("%s %s converged", spec.App, spec.MetaVersion), func(st *backends.AppStatus) bool {
		return converged(spec, st)
	})
}

// waitFor polls Status until cond holds or timeout passes (then it fails
// the test, showing the last status).
func waitFor(t testing.TB, ctx context.Context, s backends.Scheduler, app string, timeout time.Duration, what string, cond func(*backends.AppStatus) bool) *backends.AppStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *backends.AppStatus
	var lastErr error
	for {
		st, err := s.Status(ctx, app)
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: timed out after %s; last status: %s (last error: %v)", what, timeout, dump(last), lastErr)
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readLogs reads what Logs answers to q (which must not follow).
func readLogs(t testing.TB, ctx context.Context, s backends.Scheduler, app string, q backends.LogQuery) []backends.LogLine {
	t.Helper()
	ch, err := s.Logs(ctx, app, q)
	if err != nil {
		t.Fatalf("Logs(%s, %+v): %v", app, q, err)
	}
	var out []backends.LogLine
	for l := range ch {
		out = append(out, l)
	}
	return out
}

// waitLogs reads the app's logs until cond holds or timeout passes.
func waitLogs(t testing.TB, ctx context.Context, s backends.Scheduler, app string, q backends.LogQuery, timeout time.Duration, what string, cond func([]backends.LogLine) bool) []backends.LogLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last []backends.LogLine
	var lastErr error
	for {
		ch, err := s.Logs(ctx, app, q)
		if err == nil {
			last = last[:0]
			for l := range ch {
				last = append(last, l)
			}
			if cond(last) {
				return last
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s in the logs of %s: timed out after %s; last lines %+v (last error: %v)", what, app, timeout, last, lastErr)
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func dump(st *backends.AppStatus) string {
	if st == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "app=%s version=%s deployment=%s message=%q", st.App, st.MetaVersion, st.Deployment, st.Message)
	for _, in := range st.Instances {
		fmt.Fprintf(&b, "\n  %s[%d] id=%s state=%s addr=%s pid=%d restarts=%d msg=%q", in.Proc, in.Index, in.ID, in.State, in.Address, in.PID, in.Restarts, in.Message)
	}
	return b.String()
}
