package local

// The process shim: the local scheduler starts every instance as
// `<berth> proc-shim [flags] -- /bin/sh -c CMD` (ShimMain), with Pdeathsig
// SIGUSR1 and its own process group. The shim
//
//   - becomes a child subreaper, so that whatever the instance forks and
//     abandons is re-parented to the shim, not to init;
//   - in namespace mode (started by berth in new user, mount and pid
//     namespaces) hides data_dir and the other apps' directories under
//     tmpfs mounts, then starts the shell in a further user and mount
//     namespace so that those mounts are locked;
//   - starts the shell in the same process group with the app's
//     credentials (uid mode), its working dir and the environment read
//     from fd 3 (so the shim's own environment carries none of the app's);
//   - when the shell exits, when asked to stop (SIGTERM: the group got it
//     too; after -stop-timeout it stops waiting) or when berth dies
//     (SIGUSR1, at once), kills every process of its group and every
//     descendant re-parented to it, then exits with the shell's status.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ShimCommand is the subcommand of the berth binary that runs ShimMain.
const ShimCommand = "proc-shim"

// shimParentDeathSig is the signal the shim gets when berth dies.
const shimParentDeathSig = syscall.SIGUSR1

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// ShimMain runs the process shim (see the comment at the top of shim.go)
// and returns its exit status; a shell killed by a signal makes the shim
// kill itself with the same signal.
func ShimMain(args []string) int {
	fs := flag.NewFlagSet(ShimCommand, flag.ContinueOnError)
	uid := fs.Int("uid", -1, "run the command as this uid")
	gid := fs.Int("gid", -1, "run the command as this gid")
	dir := fs.String("dir", "", "working directory")
	stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "after SIGTERM, how long the command gets before everything is killed")
	ns := fs.Bool("ns", false, "namespace mode: hide -hide paths, show -show directory, lock the mounts")
	var hide, hideFiles multiFlag
	fs.Var(&hide, "hide", "namespace mode: a directory to cover with an empty tmpfs (repeatable)")
	fs.Var(&hideFiles, "hide-file", "namespace mode: a file to cover with /dev/null (repeatable)")
	pidFd4 := fs.Bool("pid4", false, "write the command's pid (as the shim sees it) to fd 4 once started")
	envFd3 := fs.Bool("env3", false, "read the command's environment (NUL-separated) from fd 3")
	show := fs.String("show", "", "namespace mode: a directory under a -hide path to keep visible (the app's own)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "berth proc-shim: no command")
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "berth proc-shim: "+format+"\n", a...)
		return 127
	}
	// Signals first, so that none is lost between here and the wait.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, shimParentDeathSig)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("cannot become a child subreaper: %v", err)
	}
	var pidOut *os.File
	if *pidFd4 {
		syscall.CloseOnExec(4)
		pidOut = os.NewFile(4, "pid")
		defer pidOut.Close()
	}
	// The environment of the command comes on fd 3, NUL-separated.
	var env []string
	if f := os.NewFile(3, "env"); *envFd3 && f != nil {
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return fail("reading the environment: %v", err)
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if len(kv) > 0 {
				env = append(env, string(kv))
			}
		}
	}

	// The thread that forks the command must live as long as it does
	// (Pdeathsig); it is never unlocked.
	runtime.LockOSThread()
	hostProc := -1 // namespace mode: berth's /proc, hidden by the shim's own
	if *ns {
		fd, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail("opening /proc: %v", err)
		}
		hostProc = fd
		if err := shimMounts(hide, hideFiles, *show); err != nil {
			return fail("setting up the namespace: %v", err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = *dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// Its own process group (the shim is not in it: the shim kills the
	// group, and the app cannot signal the shim).
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if *uid >= 0 {
		g := *gid
		if g < 0 {
			g = *uid
		}
		attr.Credential = &syscall.Credential{Uid: uint32(*uid), Gid: uint32(g), Groups: []uint32{}}
	}
	if *ns {
		// A further user and mount namespace: the mounts made above are
		// locked in it (they cannot be unmounted to uncover what they hide).
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return fail("%v", err)
	}
	child := cmd.Process.Pid
	if pidOut != nil {
		report := child
		if hostProc >= 0 {
			// berth needs the pid in its own pid namespace.
			report = hostChildPid(hostProc)
		}
		fmt.Fprintf(pidOut, "%d\n", report)
		pidOut.Close()
		pidOut = nil
	}

	// Wait for the command. os/exec's Wait would race with the reaping of
	// re-parented descendants, so everything is reaped here.
	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil { // ECHILD: nothing left
				return
			}
			if pid == child {
				exited <- ws
				return
			}
		}
	}()
	var status syscall.WaitStatus
	var deadline <-chan time.Time
wait:
	for {
		select {
		case status = <-exited:
			break wait
		case s := <-sigs:
			if s == shimParentDeathSig {
				// berth is gone: nobody will wait for a graceful stop.
				killDescendants(child)
				status = <-exited
				break wait
			}
			// Passed on to the command's group.
			_ = syscall.Kill(-child, s.(syscall.Signal))
			if deadline == nil {
				deadline = time.After(*stopTimeout)
			}
		case <-deadline:
			killDescendants(child)
			status = <-exited
			break wait
		}
	}
	killDescendants(child)
	signal.Stop(sigs)
	if status.Signaled() {
		sig := status.Signal()
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		time.Sleep(100 * time.Millisecond)
		return 128 + int(sig)
	}
	return status.ExitStatus()
}

// killDescendants SIGKILLs, until none is left, every process of the
// command's process group pgrp and every child of the shim (descendants
// that left the group are re-parented to the shim, a subreaper, when their
// parent dies), reaping them.
func killDescendants(pgrp int) {
	self := os.Getpid()
	for round := 0; round < 200; round++ {
		found := false
		_ = syscall.Kill(-pgrp, syscall.SIGKILL)
		for _, p := range listProcs() {
			if p.pid == self {
				continue
			}
			if p.pgrp == pgrp || p.ppid == self {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				found = true
			}
		}
		// Reap whatever has died (the waiting goroutine may do it too).
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type procInfo struct {
	pid, ppid, pgrp int
	state           string
}

// listProcs reads pid, ppid, process group and state of every process
// visible in /proc (zombies excluded).
func listProcs() []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		p := procInfo{pid: pid}
		if _, err := fmt.Sscanf(string(b[i+1:]), " %s %d %d", &p.state, &p.ppid, &p.pgrp); err != nil {
			continue
		}
		if p.state == "Z" || p.state == "X" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// hostChildPid finds the shim's (only) child in berth's pid namespace,
// through procfd, a descriptor of berth's /proc (0 if not found). The
// child is not reaped yet, so it is listed even if it has exited.
func hostChildPid(procfd int) int {
	buf := make([]byte, 64)
	n, err := unix.Readlinkat(procfd, "self", buf)
	if err != nil {
		return 0
	}
	self := string(buf[:n])
	dfd, err := unix.Openat(procfd, self+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	d := os.NewFile(uintptr(dfd), "task")
	defer d.Close()
	tasks, _ := d.Readdirnames(-1)
	for _, task := range tasks {
		fd, err := unix.Openat(procfd, self+"/task/"+task+"/children", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		f := os.NewFile(uintptr(fd), "children")
		b, _ := io.ReadAll(f)
		f.Close()
		for _, w := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(w); err == nil && pid > 0 {
				return pid
			}
		}
	}
	return 0
}

// shimMounts runs in the shim's own mount namespace (namespace mode): it
// covers each hide directory with an empty read-only tmpfs and each
// hideFile with /dev/null, keeps show (the app's own directory, under a
// hidden one) visible, and mounts a /proc of the shim's pid namespace.
func shimMounts(hide, hideFiles []string, show string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	var showFd *os.File
	if show != "" {
		f, err := os.Open(show)
		if err != nil {
			return err
		}
		defer f.Close()
		showFd = f
	}
	for _, d := range hide {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64k,mode=0711"); err != nil {
			return fmt.Errorf("hiding %s: %w", d, err)
		}
	}
	if showFd != nil {
		if err := os.MkdirAll(show, 0o700); err != nil {
			return err
		}
		src := "/proc/self/fd/" + strconv.Itoa(int(showFd.Fd()))
		if err := unix.Mount(src, show, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("showing %s: %w", show, err)
		}
	}
	// Read-only from here on (the tmpfs mounts stay empty).
	for _, d := range hide {
		_ = unix.Mount("", d, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	for _, f := range hideFiles {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		if err := unix.Mount("/dev/null", f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hiding %s: %w", f, err)
		}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}

// userNamespacesWork reports whether this process can create a user and
// mount namespace and mount a tmpfs in it (the namespace mode's needs),
// by running `true`-like probe: the shim itself with -ns and no hides.
func userNamespacesWork(shim []string) error {
	cmd := exec.Command(shim[0], append(append([]string(nil), shim[1:]...), "-ns", "--", "/bin/true")...)
	cmd.SysProcAttr = nsAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

// nsAttr is how berth starts a shim in namespace mode: new user, mount and
// pid namespaces in which the shim is root (mapped to berth's own uid).
func nsAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
}
