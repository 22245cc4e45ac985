// Package local is Berth's embedded Scheduler: it runs every proc instance of
// every app as a child process of the berth server on this machine, and
// serves a small HTTP router that sends <route host> requests to the app's
// web instances, round robin.
//
// Each instance runs `/bin/sh -c <Cmd>` in its own process group, under a
// process shim (`berth proc-shim`, see shim.go), with the environment PATH,
// HOME (the app's working directory when procs are isolated, else
// berth's), the proc's Env, the app's Env and PrivateEnv, PORT (a free
// loopback port, for web procs and procs with a Port), BERTH_APP,
// BERTH_PROC and BERTH_INSTANCE. Its stdout and stderr go through pipes to
// berth, which stamps each line with the time and appends it to
// DataDir/logs/<app>/<proc>.<index>.{stdout,stderr}.log (berth's files),
// rotated by size (see logs.go); Logs reads them back.
//
// Isolation (Config.Isolation): in uid mode every app runs as a uid and gid
// of its own (DataDir/uids.json), in its working directory AppsDir/<app>
// (0700, owned by that uid); in namespace mode every instance gets user,
// mount and pid namespaces in which DataDir, HideDirs, HideFiles and the
// other apps' directories are covered by empty, locked mounts.
//
// A crashed instance is restarted with exponential backoff (0.5s doubling up
// to 30s; the backoff resets once an instance has stayed up for a minute).
// Stopping sends SIGTERM to the process group and SIGKILL after StopTimeout.
//
// Rolling: when a submit changes a proc's command, environment, port,
// health check or the app's MetaVersion, each instance is replaced by a new
// one; the old instance keeps running (and keeps receiving routed requests)
// until its replacement is ready, then it is stopped. An instance is ready
// when its port accepts TCP connections (and its HealthCheck path answers
// 2xx or 3xx, if set); an instance without a port is ready once it has stayed
// up for a second.
//
// Oneshot procs run once per distinct spec: a submit that changes a oneshot
// proc (or the MetaVersion) runs it again; re-submitting the same spec does
// not. A oneshot that exits non-zero is retried up to three times.
//
// Orphan safety: the shim is a child subreaper; it kills the instance's
// whole tree (its process group and every descendant re-parented to it)
// when the shell exits, when the instance is stopped, and when berth dies
// (Pdeathsig SIGUSR1, from the spawner thread that lives as long as berth).
// Every instance also has a pid file under DataDir/run/; New kills the
// process groups a previous, abruptly ended scheduler on the same DataDir
// left behind (checking each process's environment for the run token
// written in the pid file, so that a recycled process id is never killed).
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// Config configures the local scheduler.
type Config struct {
	// DataDir holds logs (DataDir/logs/<app>/<proc>.<index>.{stdout,stderr}.log),
	// pid files (DataDir/run/) and the apps' working directories
	// (DataDir/apps/<app>/, the cwd of their processes).
	DataDir string
	// RouterAddr is where the built-in HTTP router listens, e.g.
	// "127.0.0.1:8081"; "" runs no router.
	RouterAddr string
	// AppsDomain is the domain apps are served under, e.g. "apps.localhost".
	// The router routes by AppSpec.Routes; an app submitted without Routes
	// is served at <app>.<AppsDomain>.
	AppsDomain string
	// StopTimeout is how long a stopping instance gets between SIGTERM and
	// SIGKILL; 0 means 10s.
	StopTimeout time.Duration
	Logger      hclog.Logger
	// LogMaxBytes is the size at which an instance's stdout or stderr log
	// is rotated (default DefaultLogMaxBytes); LogFiles is how many files
	// of each are kept, the current one included (default
	// DefaultLogFiles).
	LogMaxBytes int64
	LogFiles    int

	// Isolation is how app procs are kept from berth's data and from each
	// other: IsolationAuto, IsolationUID, IsolationNamespace or
	// IsolationNone ("" is none; the server's config defaults to auto).
	Isolation string
	// UIDRange is the range app uids are allocated from in uid mode
	// ("LOW-HIGH", default DefaultUIDRange). The allocation is recorded in
	// DataDir/uids.json: an app keeps its uid, no two apps share one.
	UIDRange string
	// AppsDir holds the apps' working directories (AppsDir/<app>/, also
	// their HOME; owned by the app's uid in uid mode). Default DataDir/apps;
	// with isolation it must not be under a directory app users cannot
	// traverse (such as a 0700 data_dir).
	AppsDir string
	// HideDirs and HideFiles are covered (besides DataDir and AppsDir) in
	// namespace mode: e.g. the server's data_dir and its config file.
	HideDirs, HideFiles []string
	// Shim is the command that runs ShimMain (the argv before its flags).
	// Default: this executable with the ShimCommand argument (a test binary
	// that starts a scheduler must dispatch that argument to ShimMain in
	// its TestMain).
	Shim []string
}

// Tunables (variables so tests of this package may shorten them).
var (
	backoffBase     = 500 * time.Millisecond
	backoffCap      = 30 * time.Second
	backoffResetAge = time.Minute // an instance up this long has its backoff reset
	portlessReady   = time.Second // an instance without a port is ready after this uptime
	probeInterval   = 100 * time.Millisecond
	crashLoopFailed = 3               // crashes before ready that make the deployment failed
	oneshotAttempts = 3               // runs of a failing oneshot before it is failed
	probeTimeout    = 2 * time.Second // one readiness probe
	shimMargin      = 2 * time.Second // after StopTimeout, the shim's time to kill the tree before berth SIGKILLs it
	outputGrace     = 2 * time.Second // after an instance ended, how long its output may still take to be written
)

// Scheduler is the local backends.Scheduler.
type Scheduler struct {
	cfg Config
	log hclog.Logger

	mu     sync.Mutex
	apps   map[string]*app
	routes map[string]string // host -> app
	closed bool
	serial uint64 // instance serial numbers
	// live holds every instance whose supervisor has not exited yet,
	// including retired ones still stopping.
	live map[*instance]struct{}

	closeOnce sync.Once
	closeErr  error

	spawnCh   chan spawnReq
	quit      chan struct{} // closed by Close once every instance has exited
	spawnDone chan struct{} // closed when the spawner has returned
	router    *localRouter

	mode string    // the isolation in force
	uids *uidTable // uid mode

	logMu   sync.Mutex
	logs    map[string]*logFile // path -> the one writer of that log file
	readers sync.WaitGroup      // Logs readers; they end with quit

	runs runSet // one-off commands (run.go)
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// spawner starts processes from one goroutine locked to its OS thread for
// the life of the scheduler: Pdeathsig fires when the forking thread ends,
// and this thread ends only when the scheduler is closed (after every
// instance has exited) or with the process.
func (s *Scheduler) spawner() {
	defer close(s.spawnDone)
	runtime.LockOSThread()
	// Never unlocked: the thread must outlive every child it forked, so it
	// ends with this goroutine (the runtime then exits the thread).
	for {
		select {
		case req := <-s.spawnCh:
			req.done <- req.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

var errClosed = errors.New("local scheduler: closed")

func (s *Scheduler) spawn(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	select {
	case s.spawnCh <- spawnReq{cmd: cmd, done: done}:
		return <-done
	case <-s.quit:
		return errClosed
	}
}

// exited is called by an instance's supervisor when it ends.
func (s *Scheduler) exited(in *instance) {
	s.mu.Lock()
	delete(s.live, in)
	s.mu.Unlock()
	close(in.done)
}

var _ backends.Scheduler = (*Scheduler)(nil)

type app struct {
	name    string
	dir     string // working directory and HOME
	uid     int    // uid mode: the app's uid (-1 otherwise)
	spec    *backends.AppSpec
	gen     uint64 // bumped by every submit that changes the desired state
	reached bool   // the current generation has been fully ready once
	procs   map[string]*proc
}

type proc struct {
	spec backends.ProcSpec
	hash string
	// cur holds the desired instances by index; an entry's prev is the older
	// instance it replaces (still running until cur is ready).
	cur []*instance
	// oneshot bookkeeping: the hash last run to completion (or started).
	ranHash string
}

// New starts a local scheduler: it creates DataDir's folders, kills process
// groups a previous scheduler on the same DataDir left behind, and starts the
// router if RouterAddr is set.
func New(cfg Config) (*Scheduler, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("local scheduler: DataDir is required")
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogFiles <= 0 {
		cfg.LogFiles = DefaultLogFiles
	}
	dd, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local scheduler: data dir: %w", err)
	}
	cfg.DataDir = dd
	if cfg.AppsDir == "" {
		cfg.AppsDir = filepath.Join(dd, "apps")
	}
	if cfg.AppsDir, err = filepath.Abs(cfg.AppsDir); err != nil {
		return nil, fmt.Errorf("local scheduler: apps dir: %w", err)
	}
	if len(cfg.Shim) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local scheduler: locating the berth binary (for %s): %w", ShimCommand, err)
		}
		cfg.Shim = []string{self, ShimCommand}
	}
	if err := os.MkdirAll(dd, 0o700); err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	for _, d := range []string{"logs", "run"} {
		if err := os.MkdirAll(filepath.Join(dd, d), 0o700); err != nil {
			return nil, fmt.Errorf("local scheduler: %w", err)
		}
	}
	mode, err := resolveIsolation(&cfg)
	if err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	// The apps' directories: traversable (not listable) by app users.
	if err := os.MkdirAll(cfg.AppsDir, 0o711); err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	var uids *uidTable
	if mode != IsolationNone {
		if err := os.Chmod(cfg.AppsDir, 0o711); err != nil {
			return nil, fmt.Errorf("local scheduler: %w", err)
		}
		for _, d := range []string{dd, filepath.Join(dd, "logs"), filepath.Join(dd, "run")} {
			if err := os.Chmod(d, 0o700); err != nil {
				return nil, fmt.Errorf("local scheduler: %w", err)
			}
		}
	}
	if mode == IsolationUID {
		if err := checkReachable(cfg.AppsDir); err != nil {
			return nil, fmt.Errorf("local scheduler: %w", err)
		}
		r := cfg.UIDRange
		if r == "" {
			r = DefaultUIDRange
		}
		lo, hi, err := ParseUIDRange(r)
		if err != nil {
			return nil, fmt.Errorf("local scheduler: %w", err)
		}
		if uids, err = loadUIDTable(filepath.Join(dd, "uids.json"), lo, hi); err != nil {
			return nil, fmt.Errorf("local scheduler: uid allocation: %w", err)
		}
	}
	// The router's listener is the last thing that can fail: take it
	// before any goroutine starts, so that a failed New leaves none behind.
	var ln net.Listener
	if cfg.RouterAddr != "" {
		if ln, err = net.Listen("tcp", cfg.RouterAddr); err != nil {
			return nil, fmt.Errorf("local scheduler: router: %w", err)
		}
	}
	s := &Scheduler{
		mode:      mode,
		uids:      uids,
		cfg:       cfg,
		log:       cfg.Logger.Named("local-scheduler"),
		apps:      map[string]*app{},
		routes:    map[string]string{},
		live:      map[*instance]struct{}{},
		logs:      map[string]*logFile{},
		spawnCh:   make(chan spawnReq),
		quit:      make(chan struct{}),
		spawnDone: make(chan struct{}),
	}
	go s.spawner()
	s.reapLeftovers()
	if mode == IsolationNone {
		s.log.Warn("app procs are NOT isolated (local.isolation = \"none\"): app code runs with berth's own uid and can read its data_dir; use this only for a single trusted tenant")
	} else {
		s.log.Info("app procs are isolated", "isolation", mode, "apps_dir", cfg.AppsDir)
	}
	if ln != nil {
		s.router = newRouter(s, ln)
		s.log.Info("router listening", "addr", ln.Addr().String(), "apps_domain", cfg.AppsDomain)
	}
	return s, nil
}

// RouterURL is the router's base URL ("http://127.0.0.1:8081"), or "" when
// the scheduler runs no router.
func (s *Scheduler) RouterURL() string {
	if s.router == nil {
		return ""
	}
	return "http://" + s.router.ln.Addr().String()
}

func validate(spec *backends.AppSpec) error {
	if spec == nil {
		return errors.New("local scheduler: nil spec")
	}
	if err := names.App(spec.App); err != nil {
		return fmt.Errorf("local scheduler: %w", err)
	}
	seen := map[string]bool{}
	for _, p := range spec.Procs {
		if err := names.Proc(p.Name); err != nil {
			return fmt.Errorf("local scheduler: app %s: %w", spec.App, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("local scheduler: app %s: duplicate proc %q", spec.App, p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case backends.ProcWeb, backends.ProcWorker, backends.ProcPortal, backends.ProcOneshot:
		default:
			return fmt.Errorf("local scheduler: app %s proc %s: unknown type %q", spec.App, p.Name, p.Type)
		}
		if p.Instances < 0 {
			return fmt.Errorf("local scheduler: app %s proc %s: negative instances", spec.App, p.Name)
		}
		if strings.TrimSpace(p.Cmd) == "" {
			if p.Image != "" {
				return fmt.Errorf("local scheduler: app %s proc %s: image procs (%s) cannot run here: the local scheduler has no container engine; give the proc a cmd or use the nomad scheduler", spec.App, p.Name, p.Image)
			}
			return fmt.Errorf("local scheduler: app %s proc %s: no cmd", spec.App, p.Name)
		}
	}
	for _, h := range spec.Routes {
		if err := names.Host(h); err != nil {
			return fmt.Errorf("local scheduler: app %s: route: %w", spec.App, err)
		}
	}
	return nil
}

func cloneSpec(spec *backends.AppSpec) *backends.AppSpec {
	c := *spec
	c.Procs = make([]backends.ProcSpec, len(spec.Procs))
	for i, p := range spec.Procs {
		p.Env = cloneMap(p.Env)
		c.Procs[i] = p
	}
	c.Env = cloneMap(spec.Env)
	c.PrivateEnv = cloneMap(spec.PrivateEnv)
	c.Routes = append([]string(nil), spec.Routes...)
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Submit makes the app's running state converge to spec: it starts, rolls,
// scales and stops instances as needed and returns at once (it does not wait
// for instances to become ready; Status reports the deployment).
func (s *Scheduler) Submit(ctx context.Context, spec *backends.AppSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(spec); err != nil {
		return err
	}
	spec = cloneSpec(spec)
	dir, uid, err := s.appDir(spec.App)
	if err != nil {
		return fmt.Errorf("local scheduler: app %s: working directory: %w", spec.App, err)
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.DataDir, "logs", spec.App), 0o700); err != nil {
		return fmt.Errorf("local scheduler: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	a := s.apps[spec.App]
	if a == nil {
		a = &app{name: spec.App, procs: map[string]*proc{}}
		s.apps[spec.App] = a
	}
	a.dir, a.uid = dir, uid
	changed := a.spec == nil || a.spec.MetaVersion != spec.MetaVersion
	a.spec = spec

	// Routes: this app takes every host it names and drops the others.
	for h, owner := range s.routes {
		if owner == spec.App {
			delete(s.routes, h)
		}
	}
	for _, h := range spec.Routes {
		s.routes[strings.ToLower(h)] = spec.App
	}

	want := map[string]bool{}
	for _, ps := range spec.Procs {
		want[ps.Name] = true
		h := procHash(spec, ps, s.envOf(a, ps))
		p := a.procs[ps.Name]
		if p == nil {
			p = &proc{}
			a.procs[ps.Name] = p
			changed = true
		}
		if p.hash != h || p.spec.Instances != ps.Instances {
			changed = true
		}
		roll := p.hash != h
		p.spec = ps
		p.hash = h
		s.reconcileProc(a, p, roll)
	}
	for name, p := range a.procs {
		if !want[name] {
			for _, in := range p.cur {
				s.retire(in)
			}
			delete(a.procs, name)
			changed = true
		}
	}
	if changed {
		a.gen++
		a.reached = false
	}
	s.log.Info("submitted", "app", spec.App, "meta_version", spec.MetaVersion, "procs", len(spec.Procs), "changed", changed)
	return nil
}

// procHash fingerprints what makes an instance different from another: a
// change rolls the proc's instances.
func procHash(spec *backends.AppSpec, ps backends.ProcSpec, env []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=%q cmd=%q type=%q port=%d hc=%q\n", spec.MetaVersion, ps.Cmd, ps.Type, ps.Port, ps.HealthCheck)
	for _, kv := range env {
		fmt.Fprintf(&b, "%q\n", kv)
	}
	return b.String()
}

// reconcileProc brings p.cur to p.spec.Instances instances of p.hash. Called
// with s.mu held.
func (s *Scheduler) reconcileProc(a *app, p *proc, roll bool) {
	n := p.spec.Instances
	if p.spec.Type == backends.ProcOneshot {
		if p.ranHash == p.hash && !roll {
			// Already run for this spec: only stop extra instances.
			for i := n; i < len(p.cur); i++ {
				s.retire(p.cur[i])
			}
			if len(p.cur) > n {
				p.cur = p.cur[:n]
			}
			return
		}
		for _, in := range p.cur {
			s.retire(in)
		}
		p.cur = nil
		p.ranHash = p.hash
		for i := 0; i < n; i++ {
			p.cur = append(p.cur, s.startInstance(a, p, i, nil))
		}
		return
	}
	for i := n; i < len(p.cur); i++ {
		s.retire(p.cur[i])
	}
	if len(p.cur) > n {
		p.cur = p.cur[:n]
	}
	for i := range p.cur {
		old := p.cur[i]
		if old.hash == p.hash {
			continue
		}
		p.cur[i] = s.startInstance(a, p, i, old)
	}
	for i := len(p.cur); i < n; i++ {
		p.cur = append(p.cur, s.startInstance(a, p, i, nil))
	}
}

// startInstance creates and starts instance i of p, replacing old (which
// may be nil). Called with s.mu held.
func (s *Scheduler) startInstance(a *app, p *proc, i int, old *instance) *instance {
	s.serial++
	in := &instance{
		s:      s,
		app:    a.name,
		proc:   p.spec.Name,
		index:  i,
		serial: s.serial,
		hash:   p.hash,
		spec:   p.spec,
		env:    s.envOf(a, p.spec),
		dir:    a.dir,
		uid:    a.uid,
		state:  backends.StatePending,
		since:  time.Now(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if old != nil {
		// Of old and the instance old itself replaces, keep the ready one
		// (preferring old) serving until in is ready; stop the other now.
		var keep *instance
		if old.isReady() {
			keep = old
		} else if old.prev != nil && old.prev.isReady() {
			keep = old.prev
		}
		for _, c := range []*instance{old.prev, old} {
			if c != nil && c != keep {
				s.stopInstance(c)
			}
		}
		old.prev = nil
		in.prev = keep
	}
	s.live[in] = struct{}{}
	go in.supervise()
	return in
}

// retire stops in and the instance it replaces. Called with s.mu held.
func (s *Scheduler) retire(in *instance) {
	if in.prev != nil {
		s.stopInstance(in.prev)
		in.prev = nil
	}
	s.stopInstance(in)
}

// stopInstance asks in to stop (asynchronously). Called with s.mu held.
func (s *Scheduler) stopInstance(in *instance) {
	in.requestStop()
}

// onReady is called by an instance when it becomes ready: the instance it
// replaces is stopped.
func (s *Scheduler) onReady(in *instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.prev != nil {
		s.log.Info("replacement ready, stopping old instance", "app", in.app, "proc", in.proc, "index", in.index)
		s.stopInstance(in.prev)
		in.prev = nil
	}
}

// Status reports the app's deployment and instances.
func (s *Scheduler) Status(ctx context.Context, appName string) (*backends.AppStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[appName]
	if a == nil {
		return nil, fmt.Errorf("local scheduler: app %q: %w", appName, backends.ErrNotFound)
	}
	st := &backends.AppStatus{App: a.name, MetaVersion: a.spec.MetaVersion}
	names := make([]string, 0, len(a.procs))
	for n := range a.procs {
		names = append(names, n)
	}
	sort.Strings(names)
	allReady := true
	oldLeft := 0
	var failMsg string
	for _, n := range names {
		p := a.procs[n]
		for _, in := range p.cur {
			v := in.view()
			st.Instances = append(st.Instances, v)
			if in.prev != nil {
				oldLeft++
			}
			if p.spec.Type == backends.ProcOneshot {
				switch v.State {
				case backends.StateComplete:
				case backends.StateFailed:
					if in.finished() && failMsg == "" {
						failMsg = fmt.Sprintf("oneshot %s.%d failed: %s", n, in.index, v.Message)
					}
					allReady = false
				default:
					allReady = false
				}
				continue
			}
			if !in.isReady() {
				allReady = false
				if c := in.crashesBeforeReady(); c >= crashLoopFailed && failMsg == "" {
					failMsg = fmt.Sprintf("proc %s instance %d keeps crashing (%d times): %s", n, in.index, c, v.Message)
				}
			}
		}
	}
	switch {
	case a.reached || (allReady && oldLeft == 0):
		a.reached = true
		st.Deployment = backends.DeployRunning
	case failMsg != "":
		st.Deployment = backends.DeployFailed
		st.Message = failMsg
		if oldLeft > 0 {
			st.Message += fmt.Sprintf("; %d previous instance(s) still serving", oldLeft)
		}
	default:
		st.Deployment = backends.DeployDeploying
		if oldLeft > 0 {
			st.Message = fmt.Sprintf("%d instance(s) of the previous version still running until their replacements are ready", oldLeft)
		}
	}
	return st, nil
}

// Restart replaces every instance of proc ("" = all procs) with a new one,
// rolling: each old instance is stopped once its replacement is ready.
func (s *Scheduler) Restart(ctx context.Context, appName, procName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[appName]
	if a == nil {
		return fmt.Errorf("local scheduler: app %q: %w", appName, backends.ErrNotFound)
	}
	if procName != "" && a.procs[procName] == nil {
		return fmt.Errorf("local scheduler: app %q proc %q: %w", appName, procName, backends.ErrNotFound)
	}
	for name, p := range a.procs {
		if procName != "" && name != procName {
			continue
		}
		if p.spec.Type == backends.ProcOneshot {
			s.reconcileProc(a, p, true)
			continue
		}
		for i, old := range p.cur {
			p.cur[i] = s.startInstance(a, p, i, old)
		}
	}
	a.gen++
	a.reached = false
	s.log.Info("restarting", "app", appName, "proc", procName)
	return nil
}

// Stop stops every instance of the app (SIGTERM, then SIGKILL after
// StopTimeout), waits for them to exit (within ctx) and forgets the app.
//
// The app's run is then over: its working directory is removed and, in uid
// mode, its uid retired (never given again), so that nothing of it is left
// to an app re-created under the same name. Close stops apps without that.
func (s *Scheduler) Stop(ctx context.Context, appName string) error {
	if err := s.stop(ctx, appName); err != nil {
		return err
	}
	s.runs.stopApp(appName) // run.go
	return s.forget(appName)
}

func (s *Scheduler) stop(ctx context.Context, appName string) error {
	s.mu.Lock()
	a := s.apps[appName]
	if a == nil {
		s.mu.Unlock()
		return nil
	}
	delete(s.apps, appName)
	for h, owner := range s.routes {
		if owner == appName {
			delete(s.routes, h)
		}
	}
	for _, p := range a.procs {
		for _, in := range p.cur {
			s.retire(in)
		}
	}
	// Wait for every instance of the app, including those retired earlier
	// (scaled down, replaced) that may still be stopping.
	var all []*instance
	for in := range s.live {
		if in.app == appName {
			in.requestStop()
			all = append(all, in)
		}
	}
	s.mu.Unlock()
	s.log.Info("stopping app", "app", appName, "instances", len(all))
	return waitDone(ctx, all)
}

func waitDone(ctx context.Context, all []*instance) error {
	for _, in := range all {
		select {
		case <-in.done:
		case <-ctx.Done():
			return fmt.Errorf("local scheduler: waiting for instances to stop: %w", ctx.Err())
		}
	}
	return nil
}

// Apps lists the apps this scheduler runs, sorted.
func (s *Scheduler) Apps(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.apps))
	for n := range s.apps {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Health reports whether the scheduler is open (and its router serving).
func (s *Scheduler) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errClosed
	}
	return nil
}

// Close stops every app gracefully (waiting up to StopTimeout plus a margin),
// shuts the router down and stops the spawner. It returns once the
// scheduler's goroutines have ended (unless an instance outlives the wait:
// then it says so, and the spawner's end takes that instance's process tree
// down through Pdeathsig). A second call waits for the first to finish and
// returns its error.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Scheduler) close() error {
	s.mu.Lock()
	s.closed = true
	names := make([]string, 0, len(s.apps))
	for n := range s.apps {
		names = append(names, n)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StopTimeout+10*time.Second)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.stop(ctx, n); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.runs.stopAll()
	// Instances of apps stopped earlier whose Stop gave up waiting.
	s.mu.Lock()
	var rest []*instance
	for in := range s.live {
		in.requestStop()
		rest = append(rest, in)
	}
	s.mu.Unlock()
	if err := waitDone(ctx, rest); err != nil {
		errs = append(errs, err)
	}
	if s.router != nil {
		if err := s.router.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	close(s.quit)
	<-s.spawnDone
	s.readers.Wait()
	return errors.Join(errs...)
}

// routeTargets returns the addresses of the ready web instances of the app
// that owns host (ok false when no app owns it).
func (s *Scheduler) routeTargets(host string) (appName string, addrs []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	appName, ok = s.routes[host]
	if !ok {
		// An app submitted without Routes is still reachable at
		// <app>.<AppsDomain>.
		d := strings.ToLower(s.cfg.AppsDomain)
		name, found := strings.CutSuffix(host, "."+d)
		if d == "" || !found {
			return "", nil, false
		}
		if a := s.apps[name]; a == nil || len(a.spec.Routes) > 0 {
			return "", nil, false
		}
		appName = name
	}
	a := s.apps[appName]
	if a == nil {
		return appName, nil, true
	}
	names := make([]string, 0, len(a.procs))
	for n, p := range a.procs {
		if p.spec.Type == backends.ProcWeb {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		for _, in := range a.procs[n].cur {
			for _, c := range []*instance{in.prev, in} {
				if c != nil && c.isReady() {
					if addr := c.address(); addr != "" {
						addrs = append(addrs, addr)
					}
				}
			}
		}
	}
	return appName, addrs, true
}
