package local

// One-off commands (Scheduler.Run). A run is a child process started
// through the shim exactly as an instance is (the app's uid, namespaces,
// working directory and environment), with the command's argv in place of
// the proc's shell command. Its output is not kept in the app's logs: it
// goes, line by line, to the caller. Ending the caller's ctx stops it as
// an instance is stopped (SIGTERM to the process group, SIGKILL after
// StopTimeout); Close stops every run still going.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// runSet is the scheduler's runs under way.
type runSet struct {
	mu     sync.Mutex
	closed bool
	runs   map[*runEntry]struct{}
	wg     sync.WaitGroup
}

// runEntry is one run under way: stop is closed (why set first) to stop
// it; done is closed when it has ended.
type runEntry struct {
	app  string
	stop chan struct{}
	done chan struct{}
	why  error
}

// errAppStopped ends the runs of an app that is stopped (undeployed).
var errAppStopped = errors.New("local scheduler: the app was stopped")

// add registers a run of app; nil once the scheduler is closing.
func (rs *runSet) add(app string) *runEntry {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return nil
	}
	if rs.runs == nil {
		rs.runs = map[*runEntry]struct{}{}
	}
	e := &runEntry{app: app, stop: make(chan struct{}), done: make(chan struct{})}
	rs.runs[e] = struct{}{}
	rs.wg.Add(1)
	return e
}

func (rs *runSet) done(e *runEntry) {
	rs.mu.Lock()
	delete(rs.runs, e)
	rs.mu.Unlock()
	close(e.done)
	rs.wg.Done()
}

// stopLocked asks e to stop (once) for why.
func (rs *runSet) stopLocked(e *runEntry, why error) {
	if e.why == nil {
		e.why = why
		close(e.stop)
	}
}

// stopApp stops the runs of app and waits until they have ended.
func (rs *runSet) stopApp(app string) {
	rs.mu.Lock()
	var mine []*runEntry
	for e := range rs.runs {
		if e.app == app {
			rs.stopLocked(e, errAppStopped)
			mine = append(mine, e)
		}
	}
	rs.mu.Unlock()
	for _, e := range mine {
		<-e.done
	}
}

// stopAll stops every run and waits until they have ended; no run starts
// after it.
func (rs *runSet) stopAll() {
	rs.mu.Lock()
	rs.closed = true
	for e := range rs.runs {
		rs.stopLocked(e, errClosed)
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}

// Run starts spec.Command for the app (see backends.Scheduler.Run). The app
// need not be running here; it gets its directory (and uid) if it has none.
// Stop (undeploy) ends the app's runs, before its directory and uid go.
func (s *Scheduler) Run(ctx context.Context, appName string, spec backends.RunSpec) (*backends.RunHandle, error) {
	if err := names.App(appName); err != nil {
		return nil, err
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, errors.New("local scheduler: run: no command")
	}
	if spec.App == nil {
		spec.App = &backends.AppSpec{App: appName}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	dir, uid, err := s.appDir(appName)
	if err != nil {
		return nil, fmt.Errorf("local scheduler: run: %w", err)
	}
	home := ""
	if s.mode != IsolationNone {
		home = dir
	}
	proc := spec.Proc.Name
	env := envList(spec.Proc, spec.App, home)
	env = append(env, "BERTH_APP="+appName, "BERTH_PROC="+proc, "BERTH_INSTANCE=0", "BERTH_RUN_ID="+randToken(), "BERTH_ONE_OFF="+spec.ID)

	// The shim's command line of an instance of the proc, with the argv in
	// place of its `/bin/sh -c <cmd>`.
	in := &instance{s: s, app: appName, proc: proc, dir: dir, uid: uid, spec: spec.Proc}
	args := in.shimArgs()
	args = append(args[:len(args)-3:len(args)-3], spec.Command...)

	run := s.runs.add(appName)
	if run == nil {
		return nil, errClosed
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		s.runs.done(run)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		s.runs.done(run)
		return nil, err
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		s.runs.done(run)
		return nil, err
	}
	pidR, pidW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW, envR, envW} {
			f.Close()
		}
		s.runs.done(run)
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{envR, pidW}
	cmd.SysProcAttr = s.spawnAttr()
	err = s.spawn(cmd)
	for _, f := range []*os.File{outW, errW, envR, pidW} {
		f.Close()
	}
	if err != nil {
		for _, f := range []*os.File{outR, errR, envW, pidR} {
			f.Close()
		}
		s.runs.done(run)
		return nil, fmt.Errorf("local scheduler: run: start: %w", err)
	}
	start := time.Now()
	s.log.Info("one-off command started", "app", appName, "proc", proc, "run", spec.ID, "shim", cmd.Process.Pid)

	lines := make(chan backends.LogLine)
	result := make(chan backends.RunResult, 1)
	go func() {
		defer s.runs.done(run)
		defer close(result)
		// The environment, then the command's pid from the shim.
		go func() {
			_, _ = envW.Write([]byte(strings.Join(env, "\x00") + "\x00"))
			envW.Close()
		}()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var readers sync.WaitGroup
		abandon := make(chan struct{}) // the reader is gone: output is dropped
		for _, p := range []struct {
			r      *os.File
			stream string
		}{{outR, backends.StreamStdout}, {errR, backends.StreamStderr}} {
			readers.Add(1)
			go func() {
				defer readers.Done()
				readRunOutput(p.r, proc, p.stream, lines, abandon)
			}()
		}
		line, _ := bufio.NewReader(pidR).ReadString('\n')
		pidR.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(line))

		var why error
		select {
		case <-exited:
		case <-ctx.Done():
			why = ctx.Err()
		case <-run.stop:
			s.runs.mu.Lock()
			why = run.why
			s.runs.mu.Unlock()
		}
		if why != nil {
			close(abandon)
			if pid > 0 {
				terminate(cmd.Process.Pid, pid, exited, s.cfg.StopTimeout)
			} else {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // whatever the tree left
		}
		// The output still in the pipes, for at most outputGrace (a
		// descendant that escaped may hold a write end).
		rd := make(chan struct{})
		go func() { readers.Wait(); close(rd) }()
		select {
		case <-rd:
		case <-time.After(outputGrace):
			outR.Close()
			errR.Close()
			<-rd
		}
		outR.Close()
		errR.Close()
		close(lines)
		res := backends.RunResult{ExitCode: exitCode(cmd.ProcessState), Err: why, Duration: time.Since(start)}
		s.log.Info("one-off command ended", "app", appName, "proc", proc, "run", spec.ID, "exit_code", res.ExitCode, "error", why)
		result <- res
	}()
	return &backends.RunHandle{Lines: lines, Result: result}, nil
}

// exitCode is the exit status of the shim, which is the command's (128+N
// for a command killed by signal N, as the shells say it).
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// readRunOutput sends r's lines (split at maxLineBytes) to out until EOF;
// once abandon is closed it only drains r.
func readRunOutput(r *os.File, proc, stream string, out chan<- backends.LogLine, abandon <-chan struct{}) {
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			l := backends.LogLine{Time: time.Now(), Proc: proc, Stream: stream, Text: string(bytes.TrimSuffix(b, []byte("\n")))}
			select {
			case out <- l:
			case <-abandon:
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
