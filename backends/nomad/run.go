package nomad

// One-off commands (Scheduler.Run): a batch job RunJobID(app, id) with one
// group of one task rendered as an instance of the proc is (driver, image,
// resources, env, the Vault template of the private env), running the
// command instead of the proc's; no restart, no reschedule. Its output is
// read from the allocation's logs (AllocFS), its exit code from the task's
// Terminated event; the job is purged when the run ends, or when the
// caller's ctx ends (which kills the command).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// MetaRun is the job meta key of a one-off command's job: the run's ID.
const MetaRun = "berth_run"

// runPoll is how often a run's allocation is looked at.
var runPoll = 500 * time.Millisecond

// RunJobID is the ID of the batch job of app's one-off command id. The job
// carries berth_app = app but is none of the app's own jobs (those are
// <app> and <app>.<proc>): deploys and status leave it alone.
func RunJobID(app, id string) string { return app + "-run-" + id }

// RenderRun renders the batch job of a one-off command. It is pure.
func RenderRun(spec backends.RunSpec, cfg Config) (*api.Job, error) {
	if spec.App == nil {
		return nil, errors.New("nomad: run: nil app spec")
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, errors.New("nomad: run: no command")
	}
	if err := names.Proc(spec.ID); err != nil {
		return nil, fmt.Errorf("nomad: run id: %w", err)
	}
	p := spec.Proc
	typ := p.Type
	// Rendered as a oneshot (no service, no update block), without a port.
	p.Type, p.Instances, p.Port, p.HealthCheck = backends.ProcOneshot, 1, 0, ""
	if p.Image == "" {
		p.Cmd = strings.Join(spec.Command, " ") // replaced below; validate wants one
	}
	app := *spec.App
	app.Procs = []backends.ProcSpec{p}
	app.Routes = nil
	if err := validate(&app); err != nil {
		return nil, err
	}
	job := newJob(&app, cfg, RunJobID(app.App, spec.ID), "batch")
	job.Meta[MetaRun] = spec.ID
	g, err := renderGroup(&app, cfg, p)
	if err != nil {
		return nil, err
	}
	g.Meta[MetaProcType] = typ
	delete(g.Meta, MetaReleaseCount)
	// A one-off command runs once: a failure is its answer.
	g.RestartPolicy = &api.RestartPolicy{Attempts: new(0), Mode: new("fail")}
	g.ReschedulePolicy = &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)}
	task := g.Tasks[0]
	conf := map[string]any{"command": spec.Command[0], "args": append([]string{}, spec.Command[1:]...)}
	if p.Image != "" {
		conf["image"] = p.Image
	}
	task.Config = conf
	task.Env["BERTH_INSTANCE"] = "0"
	task.Env["BERTH_ONE_OFF"] = spec.ID
	for _, t := range task.Templates {
		t.ChangeMode = new("noop") // a secret's change does not run the command again
	}
	if task.Vault != nil {
		task.Vault.ChangeMode = new("noop")
	}
	job.TaskGroups = []*api.TaskGroup{g}
	return job, nil
}

// Run registers the one-off command's batch job and follows it (see
// backends.Scheduler.Run). The job ID must be free: a run never replaces a
// job it did not create.
func (s *Scheduler) Run(ctx context.Context, app string, spec backends.RunSpec) (*backends.RunHandle, error) {
	if err := names.App(app); err != nil {
		return nil, err
	}
	if spec.App == nil {
		spec.App = &backends.AppSpec{App: app}
	}
	if spec.App.App != app {
		return nil, fmt.Errorf("nomad: run: spec of app %q for app %q", spec.App.App, app)
	}
	job, err := RenderRun(spec, s.cfg)
	if err != nil {
		return nil, err
	}
	id := *job.ID
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if _, _, err := s.client.Jobs().EnforceRegister(job, 0, s.w(ctx)); err != nil {
		s.wg.Done()
		return nil, s.unavailable(ctx, "register "+id, err)
	}
	s.log.Info("one-off command submitted", "app", app, "job", id)
	lines := make(chan backends.LogLine)
	result := make(chan backends.RunResult, 1)
	go func() {
		defer s.wg.Done()
		defer close(result)
		// ctx or Close ends the run.
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-s.ctx.Done():
				cancel()
			case <-rctx.Done():
			}
		}()
		res := s.followRun(rctx, id, spec.Proc.Name, lines)
		close(lines)
		if res.Err == nil && rctx.Err() != nil {
			res.Err = rctx.Err()
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, _, err := s.client.Jobs().DeregisterOpts(id, &api.DeregisterOptions{Purge: true}, s.w(pctx)); err != nil && !isNotFound(err) {
			s.log.Warn("cannot purge a one-off command's job", "job", id, "error", err)
		}
		pcancel()
		s.log.Info("one-off command ended", "app", app, "job", id, "exit_code", res.ExitCode, "error", res.Err)
		result <- res
	}()
	return &backends.RunHandle{Lines: lines, Result: result}, nil
}

// followRun waits for the job's allocation, streams its task's output to
// out while it runs, and returns how the task ended.
func (s *Scheduler) followRun(ctx context.Context, jobID, task string, out chan<- backends.LogLine) backends.RunResult {
	start := time.Now()
	res := backends.RunResult{ExitCode: -1}
	tick := time.NewTicker(runPoll)
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		}
	}
	// The allocation, once its task has started (or failed to).
	var alloc *api.Allocation
	for alloc == nil {
		stubs, _, err := s.client.Jobs().Allocations(jobID, true, s.q(ctx))
		if err == nil && len(stubs) > 0 {
			a, _, err := s.client.Allocations().Info(stubs[0].ID, s.q(ctx))
			if err == nil {
				if ts := a.TaskStates[task]; ts != nil && (ts.State == "running" || ts.State == "dead") {
					alloc = a
				} else if a.ClientStatus == "failed" || a.ClientStatus == "lost" {
					res.Err = fmt.Errorf("nomad: the one-off command's allocation %s is %s: %s", a.ID, a.ClientStatus, a.ClientDescription)
					return res
				}
			}
		}
		if alloc == nil && !wait() {
			res.Err = ctx.Err()
			return res
		}
	}
	// Follow both streams while the task runs.
	lctx, lcancel := context.WithCancel(ctx)
	src := apiLogs{s}
	var readers sync.WaitGroup
	read := map[string]int64{}
	var rmu sync.Mutex
	emit := func(stream string, text string) bool {
		select {
		case out <- backends.LogLine{Time: time.Now(), Proc: task, Stream: stream, Text: text}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, stream := range []string{backends.StreamStdout, backends.StreamStderr} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var pending []byte
			data, errc := src.Logs(lctx, alloc.ID, task, stream, "start", 0, true)
			for {
				select {
				case b, ok := <-data:
					if !ok {
						return
					}
					pending = append(pending, b...)
					for {
						i := bytes.IndexByte(pending, '\n')
						if i < 0 {
							break
						}
						if !emit(stream, string(pending[:i])) {
							return
						}
						rmu.Lock()
						read[stream] += int64(i + 1)
						rmu.Unlock()
						pending = pending[i+1:]
					}
				case <-errc:
					return
				case <-lctx.Done():
					return
				}
			}
		}()
	}
	// The task's end.
	var ts *api.TaskState
	for {
		a, _, err := s.client.Allocations().Info(alloc.ID, s.q(ctx))
		if err == nil {
			if t := a.TaskStates[task]; t != nil && t.State == "dead" {
				ts = t
				break
			}
		}
		if !wait() {
			lcancel()
			readers.Wait()
			res.Err = ctx.Err()
			res.Duration = time.Since(start)
			return res
		}
	}
	lcancel()
	readers.Wait()
	// What the followers had not read yet (the rest, whole lines or not).
	for _, stream := range []string{backends.StreamStdout, backends.StreamStderr} {
		b, err := readAll(ctx, src, alloc.ID, task, stream, "start", read[stream])
		if err != nil {
			s.log.Warn("reading a one-off command's output", "alloc", alloc.ID, "stream", stream, "error", err)
			continue
		}
		for _, l := range splitLines(b) {
			if !emit(stream, l) {
				break
			}
		}
	}
	res.Duration = time.Since(start)
	for _, e := range ts.Events {
		switch e.Type {
		case api.TaskTerminated:
			res.ExitCode = e.ExitCode
			if e.Signal != 0 {
				res.ExitCode = 128 + e.Signal
			}
		case api.TaskDriverFailure, api.TaskSetupFailure, "Failed Validation":
			res.Err = fmt.Errorf("nomad: the one-off command could not start: %s", e.DisplayMessage)
		}
	}
	if res.ExitCode < 0 && res.Err == nil {
		res.Err = errors.New("nomad: the one-off command's task ended without an exit status")
	}
	return res
}
