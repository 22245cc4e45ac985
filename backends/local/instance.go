package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthpaas/berth/backends"
)

// instance is one copy of a proc and the goroutine that supervises its
// process: start, probe readiness, restart with backoff, stop.
type instance struct {
	s      *Scheduler
	app    string
	proc   string
	index  int
	serial uint64
	hash   string
	spec   backends.ProcSpec
	env    []string
	dir    string
	uid    int // uid mode: the app's uid

	// prev is the older instance this one replaces; guarded by s.mu.
	prev *instance

	stopOnce sync.Once
	stop     chan struct{} // closed to ask the supervisor to stop
	done     chan struct{} // closed when the supervisor has exited and the process is gone

	mu       sync.Mutex
	state    backends.InstanceState
	pid      int
	port     int
	ready    bool
	restarts int
	crashes  int // consecutive crashes before becoming ready
	message  string
	since    time.Time
	final    bool // a oneshot that will not run again
}

func (in *instance) id() string {
	return fmt.Sprintf("%s/%s/%d", in.app, in.proc, in.index)
}

func (in *instance) requestStop() {
	in.stopOnce.Do(func() { close(in.stop) })
}

func (in *instance) isReady() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ready
}

func (in *instance) finished() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.final
}

func (in *instance) crashesBeforeReady() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.crashes
}

func (in *instance) address() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.port == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(in.port)
}

func (in *instance) view() backends.Instance {
	in.mu.Lock()
	defer in.mu.Unlock()
	v := backends.Instance{
		Proc:     in.proc,
		Index:    in.index,
		ID:       in.id(),
		State:    in.state,
		PID:      in.pid,
		Restarts: in.restarts,
		Message:  in.message,
		Since:    in.since,
	}
	if in.port != 0 {
		v.Address = "127.0.0.1:" + strconv.Itoa(in.port)
	}
	return v
}

func (in *instance) set(f func()) {
	in.mu.Lock()
	f()
	in.mu.Unlock()
}

func (in *instance) needsPort() bool {
	return in.spec.Port > 0 || in.spec.Type == backends.ProcWeb
}

// envList is the environment of an instance, without PORT and the
// per-instance BERTH_ variables: PATH and HOME from berth's own (HOME is
// home instead, if set), then the proc's Env, the app's Env and PrivateEnv,
// later ones winning.
func envList(ps backends.ProcSpec, spec *backends.AppSpec, home string) []string {
	m := map[string]string{}
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	if home != "" {
		m["HOME"] = home
	}
	if _, ok := m["PATH"]; !ok {
		m["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	for _, src := range []map[string]string{ps.Env, spec.Env, spec.PrivateEnv} {
		for k, v := range src {
			m[k] = v
		}
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func backoff(n int) time.Duration {
	d := backoffBase
	for i := 1; i < n && d < backoffCap; i++ {
		d *= 2
	}
	if d > backoffCap {
		d = backoffCap
	}
	return d
}

// supervise runs the instance's process until asked to stop; a oneshot runs
// until it has exited 0 or failed oneshotAttempts times.
func (in *instance) supervise() {
	defer in.s.exited(in)
	log := in.s.log.With("app", in.app, "proc", in.proc, "index", in.index)
	attempt := 0
	for {
		select {
		case <-in.stop:
			in.set(func() { in.state, in.ready, in.pid = backends.StateStopped, false, 0 })
			return
		default:
		}
		started := time.Now()
		exitErr, stopped := in.runOnce(log)
		if stopped {
			in.set(func() {
				in.state, in.ready, in.pid, in.since = backends.StateStopped, false, 0, time.Now()
				in.message = "stopped"
			})
			return
		}
		up := time.Since(started)
		msg := exitMessage(exitErr)
		if in.spec.Type == backends.ProcOneshot {
			if exitErr == nil {
				in.set(func() {
					in.state, in.pid, in.since, in.final = backends.StateComplete, 0, time.Now(), true
					in.message = msg
				})
				log.Info("oneshot complete")
				in.waitStop()
				return
			}
			attempt++
			if attempt >= oneshotAttempts {
				in.set(func() {
					in.state, in.pid, in.since, in.final = backends.StateFailed, 0, time.Now(), true
					in.message = fmt.Sprintf("%s (after %d attempts)", msg, attempt)
				})
				log.Warn("oneshot failed", "attempts", attempt, "exit", msg)
				in.waitStop()
				return
			}
		} else {
			if up >= backoffResetAge {
				attempt = 0
			}
			attempt++
		}
		wait := backoff(attempt)
		in.set(func() {
			in.restarts++
			if !in.ready {
				in.crashes++
			} else {
				in.crashes = 0
			}
			in.state, in.ready, in.pid, in.since = backends.StateFailed, false, 0, time.Now()
			in.message = fmt.Sprintf("%s; restarting in %s", msg, wait)
		})
		log.Warn("instance exited, restarting", "exit", msg, "uptime", up.Round(time.Millisecond), "backoff", wait)
		select {
		case <-in.stop:
			in.set(func() { in.state, in.since, in.message = backends.StateStopped, time.Now(), "stopped" })
			return
		case <-time.After(wait):
		}
	}
}

func (in *instance) waitStop() { <-in.stop }

func exitMessage(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return err.Error()
}

// runOnce starts the process and waits until it exits (exitErr) or the
// instance is asked to stop (stopped true, the process group then gone).
func (in *instance) runOnce(log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) (exitErr error, stopped bool) {
	s := in.s
	port := 0
	if in.needsPort() {
		in.mu.Lock()
		port = in.port
		in.mu.Unlock()
		if port == 0 || !portFree(port) {
			p, err := freePort()
			if err != nil {
				return fmt.Errorf("no free port: %w", err), false
			}
			port = p
		}
	}
	token := randToken()
	env := append([]string(nil), in.env...)
	env = append(env,
		"BERTH_APP="+in.app,
		"BERTH_PROC="+in.proc,
		"BERTH_INSTANCE="+strconv.Itoa(in.index),
		"BERTH_RUN_ID="+token,
	)
	if port != 0 {
		env = append(env, "PORT="+strconv.Itoa(port))
	}
	stdout, err := s.newOutputPipe(in.app, in.proc, in.index, backends.StreamStdout)
	if err != nil {
		return err, false
	}
	defer stdout.finish(outputGrace)
	stderr, err := s.newOutputPipe(in.app, in.proc, in.index, backends.StreamStderr)
	if err != nil {
		return err, false
	}
	defer stderr.finish(outputGrace)

	// The shim starts `/bin/sh -c <cmd>` in its process group (with the
	// app's credentials, see shim.go) and takes the whole process tree
	// down with it. Setpgid: the instance and its children form one
	// process group that stop signals as a whole. Pdeathsig: the shim
	// learns that berth died (from the thread of berth that forked it; the
	// spawner's thread lives as long as berth).
	args := in.shimArgs()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout = stdout.w
	cmd.Stderr = stderr.w
	envR, envW, err := os.Pipe()
	if err != nil {
		return err, false
	}
	pidR, pidW, err := os.Pipe()
	if err != nil {
		envR.Close()
		envW.Close()
		return err, false
	}
	defer pidR.Close()
	cmd.ExtraFiles = []*os.File{envR, pidW}
	cmd.SysProcAttr = s.spawnAttr()
	err = s.spawn(cmd)
	envR.Close()
	pidW.Close()
	stdout.started()
	stderr.started()
	if err != nil {
		envW.Close()
		return fmt.Errorf("start: %w", err), false
	}
	// The helper goroutines below end before runOnce returns (the env
	// writer once the shim has read its environment or died, the probe
	// once cancelled): an instance leaves nothing running behind it.
	var helpers sync.WaitGroup
	defer helpers.Wait()
	helpers.Add(1)
	go func() {
		defer helpers.Done()
		_, _ = envW.Write([]byte(strings.Join(env, "\x00") + "\x00"))
		envW.Close()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	shim := cmd.Process.Pid
	// The shim names the shell's pid once it has started it (nothing if it
	// could not: then it exits).
	line, _ := bufio.NewReader(pidR).ReadString('\n')
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 0 {
		err := <-exited
		return fmt.Errorf("start: the process shim could not start the command (%s; see the instance's stderr log)", exitMessage(err)), false
	}
	pidfile := filepath.Join(s.cfg.DataDir, "run", fmt.Sprintf("%s.%s.%d.%d.pid", in.app, in.proc, in.index, in.serial))
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintf("%d %s\n", pid, token)), 0o600); err != nil {
		log.Warn("cannot write pid file", "path", pidfile, "error", err)
	}
	defer os.Remove(pidfile)
	now := time.Now()
	in.set(func() {
		in.pid, in.port, in.since, in.ready = pid, port, now, false
		in.state = backends.StateStarting
		if in.spec.Type == backends.ProcOneshot {
			in.state = backends.StateRunning
		}
	})
	log.Info("instance started", "pid", pid, "port", port)

	probeCtx, cancelProbe := context.WithCancel(context.Background())
	defer cancelProbe()
	if in.spec.Type != backends.ProcOneshot {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			in.probe(probeCtx, port)
		}()
	}

	select {
	case err := <-exited:
		cancelProbe()
		// The shim is gone (and took the shell's tree along); make sure.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return err, false
	case <-in.stop:
		cancelProbe()
		in.set(func() { in.ready = false })
		terminate(shim, pid, exited, s.cfg.StopTimeout)
		return nil, true
	}
}

// terminate sends SIGTERM to the shim, which passes it on to the shell's
// process group pgid and kills the whole tree when the shell exits or
// timeout has passed. Berth gives it shimMargin more, then SIGKILLs the
// shim and the group.
func terminate(shim, pgid int, exited <-chan error, timeout time.Duration) {
	_ = syscall.Kill(shim, syscall.SIGTERM)
	t := time.NewTimer(timeout + shimMargin)
	defer t.Stop()
	select {
	case <-exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	case <-t.C:
		_ = syscall.Kill(-shim, syscall.SIGKILL)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func randToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// probe marks the instance ready once it answers: its port accepts a TCP
// connection (and the health check path answers 2xx/3xx, if set); without a
// port, once it has stayed up for portlessReady.
func (in *instance) probe(ctx context.Context, port int) {
	if port == 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(portlessReady):
		}
		in.markReady()
		return
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	client := &http.Client{
		Timeout:       probeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if in.spec.HealthCheck == "" {
			c, err := (&net.Dialer{Timeout: probeTimeout}).DialContext(ctx, "tcp", addr)
			if err != nil {
				continue
			}
			c.Close()
		} else {
			path := in.spec.HealthCheck
			if path[0] != '/' {
				path = "/" + path
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			if err != nil {
				continue
			}
			req.Close = true // no idle connection (and its goroutines) left in the shared transport
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode >= 400 {
				in.set(func() { in.message = fmt.Sprintf("health check %s answered %d", path, resp.StatusCode) })
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		in.markReady()
		return
	}
}

func (in *instance) markReady() {
	in.set(func() {
		in.ready = true
		in.crashes = 0
		in.state = backends.StateRunning
		in.since = time.Now()
		in.message = "ready"
	})
	in.s.log.Info("instance ready", "app", in.app, "proc", in.proc, "index", in.index)
	in.s.onReady(in)
}

// reapLeftovers kills the process groups listed in DataDir/run by a previous
// scheduler that ended without stopping them, and removes their pid files.
// A group is killed only if one of its processes carries the recorded
// BERTH_RUN_ID in its environment.
func (s *Scheduler) reapLeftovers() {
	dir := filepath.Join(s.cfg.DataDir, "run")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if filepath.Ext(e.Name()) != ".pid" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var pgid int
		var token string
		if _, err := fmt.Sscanf(string(b), "%d %s", &pgid, &token); err == nil && pgid > 1 && token != "" {
			if members := groupMembersWithToken(pgid, token); len(members) > 0 {
				s.log.Warn("killing leftover process group of a previous run", "pgid", pgid, "pidfile", e.Name())
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				for _, pid := range members {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = os.Remove(path)
	}
}

// groupMembersWithToken lists the processes in process group pgid, provided
// at least one process of the group has BERTH_RUN_ID=token in its
// environment (nil otherwise).
func groupMembersWithToken(pgid int, token string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("BERTH_RUN_ID=" + token + "\x00")
	var members []int
	found := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		g, err := procPgid(pid)
		if err != nil || g != pgid {
			continue
		}
		members = append(members, pid)
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			found = true
		}
	}
	if !found {
		return nil
	}
	return members
}

// procPgid reads the process group of pid from /proc/<pid>/stat.
func procPgid(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// comm (field 2) is in parentheses and may contain spaces: parse after
	// the last ')'. Fields then: state ppid pgrp ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	var state string
	var ppid, pgrp int
	if _, err := fmt.Sscanf(string(b[i+1:]), " %s %d %d", &state, &ppid, &pgrp); err != nil {
		return 0, err
	}
	return pgrp, nil
}

// shellCommand prefixes a simple command (words and $expansions only: no
// operators, redirections, subshells, keywords or leading assignments) with
// exec, so that the shell is replaced by the program: the reported PID is
// the program's, and Pdeathsig applies to the program itself. Anything else
// runs as given.
func shellCommand(cmd string) string {
	c := strings.TrimSpace(cmd)
	if c == "" || strings.ContainsAny(c, ";&|<>()`\n\\{}!#") {
		return cmd
	}
	first, _, _ := strings.Cut(c, " ")
	switch first {
	case "exec", "if", "for", "while", "until", "case", "function", "!", ".", ":", "source",
		// shell builtins, which exec cannot run
		"alias", "bg", "break", "cd", "command", "continue", "echo", "eval", "exit", "export",
		"false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read",
		"readonly", "return", "set", "shift", "test", "[", "times", "trap", "true", "type",
		"ulimit", "umask", "unalias", "unset", "wait":
		return cmd
	}
	if strings.Contains(first, "=") {
		return cmd
	}
	return "exec " + c
}
