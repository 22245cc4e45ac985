package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// Isolation modes (Config.Isolation).
const (
	// IsolationAuto is uid when berth runs as root, else namespace when
	// user namespaces work, else an error.
	IsolationAuto = "auto"
	// IsolationUID runs each app's procs as a uid (and gid) of its own,
	// allocated from Config.UIDRange; berth must run as root.
	IsolationUID = "uid"
	// IsolationNamespace runs each instance in user, mount and pid
	// namespaces of its own, in which data_dir and the other apps'
	// directories are covered by empty mounts.
	IsolationNamespace = "namespace"
	// IsolationNone runs procs with berth's own uid and sight (app code can
	// read berth's data dir): for a single trusted tenant only.
	IsolationNone = "none"
)

// DefaultUIDRange is the uid (and gid) range apps get their own from.
const DefaultUIDRange = "200000-265535"

// ParseUIDRange parses "LOW-HIGH" (inclusive, 1000 <= LOW <= HIGH < 2^31).
func ParseUIDRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if ok {
		lo, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			hi, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || lo < 1000 || hi < lo || hi >= 1<<31-1 {
		return 0, 0, fmt.Errorf("uid range %q is not LOW-HIGH with 1000 <= LOW <= HIGH (e.g. %q)", s, DefaultUIDRange)
	}
	return lo, hi, nil
}

// resolveIsolation turns cfg.Isolation into the mode in force, checking
// that it can work here.
func resolveIsolation(cfg *Config) (string, error) {
	mode := cfg.Isolation
	if mode == "" {
		mode = IsolationNone
	}
	switch mode {
	case IsolationNone, IsolationUID, IsolationNamespace, IsolationAuto:
	default:
		return "", fmt.Errorf("isolation %q is not one of auto, uid, namespace, none", mode)
	}
	root := os.Geteuid() == 0
	if mode == IsolationAuto {
		if root {
			return IsolationUID, nil
		}
		if err := userNamespacesWork(cfg.Shim); err != nil {
			return "", fmt.Errorf("app procs cannot be isolated: berth does not run as root (no uid of their own) and user namespaces do not work here (%v); "+
				"run berth as root, enable unprivileged user namespaces, or set local { isolation = \"none\" } to run app code with berth's own rights", err)
		}
		return IsolationNamespace, nil
	}
	if mode == IsolationUID && !root {
		return "", errors.New(`isolation "uid" needs berth to run as root (to give each app a uid of its own); use "namespace" or "auto"`)
	}
	if mode == IsolationNamespace {
		if err := userNamespacesWork(cfg.Shim); err != nil {
			return "", fmt.Errorf(`isolation "namespace": user namespaces do not work here: %v`, err)
		}
	}
	return mode, nil
}

// uidTable is the persistent app -> uid allocation (DataDir/uids.json).
// A uid is never given to two apps, and never reused once given.
type uidTable struct {
	path   string
	lo, hi int

	mu   sync.Mutex
	Next int            `json:"next"`
	Apps map[string]int `json:"apps"`
}

func loadUIDTable(path string, lo, hi int) (*uidTable, error) {
	t := &uidTable{path: path, lo: lo, hi: hi, Apps: map[string]int{}}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		if err := json.Unmarshal(b, t); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if t.Apps == nil {
			t.Apps = map[string]int{}
		}
	}
	// Never hand out a uid at or below one already given, even if the
	// range changed.
	for _, u := range t.Apps {
		if u >= t.Next {
			t.Next = u + 1
		}
	}
	if t.Next < lo {
		t.Next = lo
	}
	return t, nil
}

// uid returns app's uid, allocating (and recording) one if it has none.
func (t *uidTable) uid(app string) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.Apps[app]; ok {
		return u, nil
	}
	if t.Next > t.hi {
		return 0, fmt.Errorf("no uid left for app %s: the range %d-%d is used up (local.uid_range)", app, t.lo, t.hi)
	}
	u := t.Next
	t.Apps[app] = u
	t.Next++
	if err := t.saveLocked(); err != nil {
		delete(t.Apps, app)
		return 0, err
	}
	return u, nil
}

func (t *uidTable) saveLocked() error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	tmp := t.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, t.path)
}

// checkReachable makes sure any uid can traverse every ancestor of dir
// (uid mode: the app's working dir and HOME is under it).
func checkReachable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %04o) cannot be traversed by app users, so they cannot reach their working directories under %s: make it o+x (e.g. 0711) or set local.apps_dir elsewhere", d, fi.Mode().Perm(), dir)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// appDir makes (and owns to the app's uid, in uid mode) the app's working
// directory and HOME, and returns it with the uid (-1 outside uid mode).
func (s *Scheduler) appDir(app string) (string, int, error) {
	dir := filepath.Join(s.cfg.AppsDir, app)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", -1, err
	}
	if s.mode != IsolationUID {
		return dir, -1, nil
	}
	uid, err := s.uids.uid(app)
	if err != nil {
		return "", -1, err
	}
	if err := os.Lchown(dir, uid, uid); err != nil {
		return "", -1, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", -1, err
	}
	return dir, uid, nil
}

// shimArgs is the command line that starts an instance's shell through the
// shim.
func (in *instance) shimArgs() []string {
	s := in.s
	args := append([]string(nil), s.cfg.Shim...)
	args = append(args, "-env3", "-pid4", "-dir", in.dir, "-stop-timeout", s.cfg.StopTimeout.String())
	switch s.mode {
	case IsolationUID:
		args = append(args, "-uid", strconv.Itoa(in.uid), "-gid", strconv.Itoa(in.uid))
	case IsolationNamespace:
		args = append(args, "-ns", "-show", in.dir)
		for _, d := range s.hideDirs() {
			args = append(args, "-hide", d)
		}
		for _, f := range s.cfg.HideFiles {
			args = append(args, "-hide-file", f)
		}
	}
	return append(args, "--", "/bin/sh", "-c", shellCommand(in.spec.Cmd))
}

// hideDirs are the directories namespace mode covers: the scheduler's and
// the server's data, and the apps' directories (the app's own is shown).
func (s *Scheduler) hideDirs() []string {
	out := []string{s.cfg.DataDir, s.cfg.AppsDir}
	for _, d := range s.cfg.HideDirs {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// spawnAttr is the SysProcAttr of a shim: its own process group, SIGUSR1
// when berth dies; new namespaces in namespace mode.
func (s *Scheduler) spawnAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if s.mode == IsolationNamespace {
		attr = nsAttr()
	}
	attr.Setpgid = true
	attr.Pdeathsig = shimParentDeathSig
	return attr
}

// envOf is the environment of p's instances (see envList); HOME is the
// app's own directory when procs are isolated.
func (s *Scheduler) envOf(a *app, ps backends.ProcSpec) []string {
	home := ""
	if s.mode != IsolationNone {
		home = a.dir
	}
	return envList(ps, a.spec, home)
}

// forget removes a stopped app's working directory and retires its uid.
func (s *Scheduler) forget(app string) error {
	if names.App(app) != nil { // never a path outside AppsDir
		return nil
	}
	s.mu.Lock()
	_, running := s.apps[app]
	s.mu.Unlock()
	if running { // submitted again meanwhile
		return nil
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.AppsDir, app)); err != nil {
		return fmt.Errorf("local scheduler: removing the working directory of %s: %w", app, err)
	}
	if s.uids != nil {
		return s.uids.retire(app)
	}
	return nil
}

// retire drops app's uid: the app gets a new one if it runs again, and the
// old one is never given to anyone (Next only grows).
func (t *uidTable) retire(app string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.Apps[app]; !ok {
		return nil
	}
	delete(t.Apps, app)
	return t.saveLocked()
}
