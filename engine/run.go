package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Limits of a one-off command.
const (
	DefaultRunTimeout = 10 * time.Minute
	MaxRunTimeout     = 24 * time.Hour
	maxRunArgs        = 1000
	maxRunBytes       = 64 << 10 // the command line, all arguments together
)

// RunRequest is a one-off command to run in an app.
type RunRequest struct {
	// Command is the program and its arguments, run as they are (no
	// shell).
	Command []string
	// Proc names the proc whose release spec (image, resources, env) the
	// command runs with; "" is the release's first web proc, or its only
	// proc.
	Proc string
	// Timeout ends (kills) the command; 0 is DefaultRunTimeout.
	Timeout time.Duration
}

// RunningCommand is a one-off command started by Run.
type RunningCommand struct {
	ID          string
	App         string
	Proc        string
	MetaVersion string
	// Lines is the command's output; it is closed when the command has
	// ended. The caller must drain it, or end the ctx given to Run.
	Lines <-chan backends.LogLine
	// Result carries one value after Lines is closed. Err is a domain
	// error: KindTimeout when the timeout killed the command.
	Result <-chan backends.RunResult
}

// Run runs a one-off command with the app's current release (the deployed
// one, else the latest pushed) and the env a deployed instance of the proc
// gets: public env, private env and bound services' credentials (as
// RenderSpec gives them). Whoever may deploy the app may run commands in it
// (ActAppRun). Ending ctx kills the command.
func (s *Engine) Run(ctx context.Context, id *Identity, app string, req RunRequest) (*RunningCommand, error) {
	if err := names.App(app); err != nil {
		return nil, invalid(err)
	}
	if err := checkRunRequest(&req); err != nil {
		return nil, err
	}
	a, err := s.LoadApp(ctx, id, app, ActAppRun)
	if err != nil {
		return nil, err
	}
	if a.AppType == state.AppTypeResource {
		return nil, Invalid("app %q is a resource: it runs as resource instances of the apps that use it", a.Name)
	}
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	var rel *state.Release
	if a.Deployed && a.MetaVersion != "" {
		rel, _, err = state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, a.MetaVersion))
		if errors.Is(err, state.ErrNotFound) {
			rel, err = nil, nil
		}
	}
	if err == nil && rel == nil {
		rel, err = s.latestRelease(ctx, a.Name)
	}
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, Invalid("app %q has no pushed release: push one first (POST /api/v1/repos/%s/push/)", a.Name, a.Name)
	}
	spec, err := s.RenderSpec(ctx, a, rel)
	if err != nil {
		return nil, err
	}
	spec.MetaVersion = rel.MetaVersion
	proc, err := runProc(a, rel, req.Proc)
	if err != nil {
		return nil, err
	}
	runID := newRunID()
	rctx, cancel := context.WithTimeout(ctx, req.Timeout)
	h, err := s.sched.Run(rctx, a.Name, backends.RunSpec{App: spec, Proc: proc, ID: runID, Command: req.Command})
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Warn("starting a one-off command", "app", a.Name, "error", err)
		if isBackendDown(err) {
			return nil, err // 503 naming the scheduler's backend, with Retry-After
		}
		return nil, Unavailable("the scheduler cannot run a command for %q now", a.Name)
	}
	s.log.Info("one-off command", "app", a.Name, "proc", proc.Name, "run", runID, "by", id.Name(), "version", rel.MetaVersion)
	result := make(chan backends.RunResult, 1)
	go func() {
		defer close(result)
		res, ok := <-h.Result
		timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if !ok {
			res = backends.RunResult{ExitCode: -1, Err: Unavailable("the scheduler lost the command")}
		}
		switch {
		case timedOut:
			res.Err = Errorf(KindTimeout, "the command ran for longer than its timeout (%s) and was killed", req.Timeout)
		case res.Err != nil && ctx.Err() != nil:
			res.Err = ctx.Err()
		case res.Err != nil:
			s.log.Warn("one-off command", "app", a.Name, "run", runID, "error", res.Err)
			res.Err = Unavailable("the command did not run to its end: %s", res.Err)
		}
		result <- res
	}()
	return &RunningCommand{ID: runID, App: a.Name, Proc: proc.Name, MetaVersion: rel.MetaVersion, Lines: h.Lines, Result: result}, nil
}

func checkRunRequest(req *RunRequest) error {
	if len(req.Command) == 0 || req.Command[0] == "" {
		return InvalidField("command", "command must name a program to run, e.g. [\"sh\", \"-c\", \"env\"]")
	}
	if len(req.Command) > maxRunArgs {
		return InvalidField("command", "command has %d arguments; at most %d", len(req.Command), maxRunArgs)
	}
	n := 0
	for _, a := range req.Command {
		n += len(a) + 1
		if strings.ContainsRune(a, 0) {
			return InvalidField("command", "command arguments cannot contain NUL")
		}
	}
	if n > maxRunBytes {
		return InvalidField("command", "command is %d bytes long; at most %d", n, maxRunBytes)
	}
	if req.Proc != "" {
		if err := names.Proc(req.Proc); err != nil {
			return InvalidField("proc", "%s", err.Error())
		}
	}
	switch {
	case req.Timeout == 0:
		req.Timeout = DefaultRunTimeout
	case req.Timeout < time.Second || req.Timeout > MaxRunTimeout:
		return InvalidField("timeout", "timeout must be between 1s and %s", MaxRunTimeout)
	}
	return nil
}

// runProc is the ProcSpec of the proc a command runs as: the release's, with
// the app's lasting overrides of CPU and memory.
func runProc(a *state.App, rel *state.Release, name string) (backends.ProcSpec, error) {
	var names []string
	pick := -1
	for i, p := range rel.Spec.Procs {
		names = append(names, p.Name)
		if name != "" && p.Name == name {
			pick = i
		}
		if name == "" && pick < 0 && p.Type == backends.ProcWeb {
			pick = i
		}
	}
	if name == "" && pick < 0 && len(rel.Spec.Procs) == 1 {
		pick = 0
	}
	if pick < 0 {
		if name == "" {
			return backends.ProcSpec{}, InvalidField("proc", "release %s has no web proc: name the proc to run as (one of %s)", rel.MetaVersion, strings.Join(names, ", "))
		}
		return backends.ProcSpec{}, InvalidField("proc", "release %s has no proc %q (it has %s)", rel.MetaVersion, name, strings.Join(names, ", "))
	}
	p := rel.Spec.Procs[pick]
	ps := backends.ProcSpec{Name: p.Name, Type: p.Type, Cmd: p.Cmd, Image: p.Image, Port: p.Port, Instances: 1,
		CPU: p.CPU, MemoryMB: p.MemoryMB, Env: p.Env, HealthCheck: p.HealthCheck}
	if o := a.Procs[p.Name]; o.CPU != nil {
		ps.CPU = *o.CPU
	}
	if o := a.Procs[p.Name]; o.MemoryMB != nil {
		ps.MemoryMB = *o.MemoryMB
	}
	return ps, nil
}

// newRunID is a run's ID: a DNS label, "r" and 10 random base-32 digits.
func newRunID() string {
	const digits = "0123456789abcdefghijklmnopqrstuv"
	var b [10]byte
	_, _ = rand.Read(b[:])
	out := []byte{'r'}
	for _, c := range b {
		out = append(out, digits[c%32])
	}
	return string(out)
}
