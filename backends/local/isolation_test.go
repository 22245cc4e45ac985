package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
)

func TestParseUIDRange(t *testing.T) {
	if lo, hi, err := ParseUIDRange(DefaultUIDRange); err != nil || lo != 200000 || hi != 265535 {
		t.Errorf("default range: %d %d %v", lo, hi, err)
	}
	for _, bad := range []string{"", "5", "10-20", "300000-200000", "a-b", "200000-"} {
		if _, _, err := ParseUIDRange(bad); err == nil {
			t.Errorf("ParseUIDRange(%q) accepted", bad)
		}
	}
}

func TestUIDTablePersistsAndNeverShares(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uids.json")
	tab, err := loadUIDTable(path, 200000, 200002)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tab.uid("a")
	b, _ := tab.uid("b")
	if a2, _ := tab.uid("a"); a2 != a || a == b {
		t.Fatalf("uids a=%d (again %d) b=%d", a, a2, b)
	}
	tab2, err := loadUIDTable(path, 200000, 200002)
	if err != nil {
		t.Fatal(err)
	}
	if a3, _ := tab2.uid("a"); a3 != a {
		t.Errorf("after a reload a has uid %d, was %d", a3, a)
	}
	c, err := tab2.uid("c")
	if err != nil || c == a || c == b {
		t.Errorf("c got %d (%v); a=%d b=%d", c, err, a, b)
	}
	if _, err := tab2.uid("d"); err == nil || !strings.Contains(err.Error(), "used up") {
		t.Errorf("a full range: %v", err)
	}
}

// isolatedScheduler runs a scheduler in mode with its data under a
// directory app users can reach (apps dir) and one they must not (data).
func isolatedScheduler(t *testing.T, mode string) (*Scheduler, string, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(root), 0o711); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "data")
	apps := filepath.Join(root, "apps")
	if err := os.MkdirAll(data, 0o700); err != nil { // as the server keeps it
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "secret"), []byte("top-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{
		DataDir: filepath.Join(data, "local"), AppsDir: apps, Isolation: mode, HideDirs: []string{data},
		StopTimeout: 2 * time.Second,
		Logger:      hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, data, apps
}

// readProbe deploys app with a oneshot that tries to read path and to kill
// pid, writing what happened into its working dir; it returns that.
func readProbe(t *testing.T, s *Scheduler, app, path string, pid int) string {
	t.Helper()
	spec := &backends.AppSpec{App: app, MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "probe", Type: backends.ProcOneshot, Instances: 1,
			// (umount: the covering mounts of namespace mode are locked.)
			Cmd: fmt.Sprintf(`{ umount -l %s; umount -l %s; cat %s; echo "read=$?"; kill -9 %d; echo "kill=$?"; id -u; ls /proc | grep -c '^[0-9]'; } > out.txt 2>&1`,
				filepath.Dir(path), filepath.Dir(filepath.Dir(path)), path, pid)}}}
	if err := s.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, app, "probe complete", func(st *backends.AppStatus) bool {
		return len(st.Instances) == 1 && (st.Instances[0].State == backends.StateComplete || st.Instances[0].State == backends.StateFailed)
	})
	b, err := os.ReadFile(filepath.Join(s.cfg.AppsDir, app, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testIsolation(t *testing.T, mode string) {
	s, data, apps := isolatedScheduler(t, mode)
	// A victim app, with a file of its own and a long-running process.
	victim := &backends.AppSpec{App: "victim", MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "worker", Type: backends.ProcWorker, Instances: 1,
			Cmd: `echo mine > mine.txt; exec sleep 300`}}}
	if err := s.Submit(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, s, "victim", "running", running)
	vpid := st.Instances[0].PID
	out := readProbe(t, s, "prober", filepath.Join(data, "secret"), vpid)
	if strings.Contains(out, "top-secret") || strings.Contains(out, "read=0") {
		t.Errorf("%s: a proc read a file of data_dir: %q", mode, out)
	}
	out2 := readProbe(t, s, "prober2", filepath.Join(apps, "victim", "mine.txt"), vpid)
	if strings.Contains(out2, "mine\n") || strings.Contains(out2, "read=0") {
		t.Errorf("%s: a proc read another app's file: %q", mode, out2)
	}
	if strings.Contains(out, "kill=0") || !alive(vpid) {
		t.Errorf("%s: a proc killed another app's process: %q", mode, out)
	}
	t.Logf("%s: probe output %q", mode, out)
}

func TestIsolationUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uid isolation needs root")
	}
	testIsolation(t, IsolationUID)
}

func TestIsolationNamespace(t *testing.T) {
	if err := userNamespacesWork([]string{os.Args[0], ShimCommand}); err != nil {
		t.Skipf("user namespaces do not work here: %v", err)
	}
	testIsolation(t, IsolationNamespace)
}

// TestIsolationNamespaceUnprivileged runs a scheduler as an unprivileged
// user (this test binary in helper mode, as nobody): auto resolves to
// namespace and the procs cannot read the data dir.
func TestIsolationNamespaceUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the test switches to an unprivileged uid, which needs root")
	}
	if err := userNamespacesWork([]string{os.Args[0], ShimCommand}); err != nil {
		t.Skipf("user namespaces do not work here: %v", err)
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const nobody = 65534
	if err := os.Chown(root, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary must be reachable by nobody.
	bin := filepath.Join(root, "local.test")
	if err := exec.Command("cp", self, bin).Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_LOCAL_HELPER=unpriv", "HELPER_DIR="+root, "HOME="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("helper output:\n%s", out)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if !strings.Contains(string(out), "MODE namespace") {
		t.Errorf("as an unprivileged user, auto isolation did not resolve to namespace")
	}
	if !strings.Contains(string(out), "RESULT ok") {
		t.Errorf("the unprivileged scheduler's procs could read the data dir")
	}
}

// unprivHelper is the child side of TestIsolationNamespaceUnprivileged.
func unprivHelper() {
	root := os.Getenv("HELPER_DIR")
	data := filepath.Join(root, "data")
	apps := filepath.Join(root, "apps")
	_ = os.MkdirAll(data, 0o755)
	_ = os.WriteFile(filepath.Join(data, "secret"), []byte("top-secret\n"), 0o644)
	s, err := New(Config{DataDir: filepath.Join(data, "local"), AppsDir: apps, Isolation: IsolationAuto,
		HideDirs: []string{data}, StopTimeout: time.Second})
	if err != nil {
		fmt.Println("NEW", err)
		os.Exit(1)
	}
	defer s.Close()
	fmt.Println("MODE", s.mode, "uid", os.Getuid())
	spec := &backends.AppSpec{App: "probe", MetaVersion: "v1",
		Procs: []backends.ProcSpec{{Name: "probe", Type: backends.ProcOneshot, Instances: 1,
			Cmd: fmt.Sprintf(`{ cat %s; echo "read=$?"; } > out.txt 2>&1`, filepath.Join(data, "secret"))}}}
	if err := s.Submit(context.Background(), spec); err != nil {
		fmt.Println("SUBMIT", err)
		os.Exit(1)
	}
	for i := 0; i < 100; i++ {
		st, err := s.Status(context.Background(), "probe")
		if err == nil && len(st.Instances) == 1 && (st.Instances[0].State == backends.StateComplete || st.Instances[0].State == backends.StateFailed) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(apps, "probe", "out.txt"))
	fmt.Printf("OUT %q\n", b)
	if len(b) > 0 && !strings.Contains(string(b), "top-secret") && !strings.Contains(string(b), "read=0") {
		fmt.Println("RESULT ok")
	}
}

// TestStopForgetsApp: a stopped app's working directory is removed and its
// uid retired, so that an app re-created under its name inherits nothing.
func TestStopForgetsApp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uid isolation needs root")
	}
	s, _, apps := isolatedScheduler(t, IsolationUID)
	spec := &backends.AppSpec{App: "phoenix", MetaVersion: "v1", Env: map[string]string{"BERTH_TEST_TOKEN": token},
		Procs: []backends.ProcSpec{{Name: "worker", Type: backends.ProcWorker, Instances: 1, Cmd: `echo old > left.txt; exec sleep 300`}}}
	ctx := context.Background()
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "phoenix", "running", running)
	first, _ := s.uids.uid("phoenix")
	if err := s.Stop(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(apps, "phoenix")); !os.IsNotExist(err) {
		t.Errorf("the stopped app's working directory is still there (%v)", err)
	}
	spec.Procs[0].Cmd = `exec sleep 300`
	if err := s.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "phoenix", "running", running)
	if again, _ := s.uids.uid("phoenix"); again == first {
		t.Errorf("the re-created app got the uid %d of the stopped one", first)
	}
	if _, err := os.Stat(filepath.Join(apps, "phoenix", "left.txt")); !os.IsNotExist(err) {
		t.Errorf("the re-created app inherited a file of the stopped one")
	}
}
