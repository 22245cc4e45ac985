package e2e

// End-to-end tests of process isolation on the local scheduler (issue 8):
// app code cannot read berth's data_dir, nor another app's files, nor
// signal another app's processes; an instance's whole process tree goes
// with it (stop, undeploy, and a berth killed with SIGKILL), and so do
// broker plugin processes; a plugin pinned by SHA-256 that does not match
// is refused.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shellRelease is a release whose web proc runs cmd (a shell command).
func shellRelease(mv, cmd string) map[string]any {
	return map[string]any{"meta_version": mv,
		"web": map[string]any{"cmd": cmd, "port": 8080, "memory": "64m", "cpu": 0.5, "num_instances": 1}}
}

// deployShell creates app, pushes a release running cmd and waits for it
// to run.
func (b *Berth) deployShell(t *testing.T, u *User, app, cmd string) {
	t.Helper()
	b.createApp(t, u, app)
	b.push(t, u, app, shellRelease(metaVersion(), cmd))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
}

// routerGet sends GET path with Host host through the router and returns
// the status and body (0 when the request failed).
func (b *Berth) routerGet(t testing.TB, host, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.RouterAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// appFile waits until the app serves path (a file its proc wrote into its
// working directory) with 200 and returns it.
func (b *Berth) appFile(t testing.TB, app, path string) string {
	t.Helper()
	var code int
	var body []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = b.routerGet(t, appHost(app), path)
		if code == http.StatusOK {
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve %s within 20s: last %d %q", app, path, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func procUID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			u, _ := strconv.Atoi(f[1])
			return u
		}
	}
	return -1
}

// TestIsolationDataDirHidden: a registered user's app cannot read the
// server's data_dir: neither by serving it (python's http.server on
// data_dir, through the router) nor by cat-ing a file of it.
func TestIsolationDataDirHidden(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "peeker")
	key, err := os.ReadFile(filepath.Join(b.DataDir, "secrets", "sealed.key"))
	if err != nil || len(bytes.TrimSpace(key)) == 0 {
		t.Fatalf("the test needs the sealed key to compare against: %v", err)
	}
	key = bytes.TrimSpace(key)

	serve := "dirserve"
	b.deployShell(t, u, serve, "python3 -m http.server $PORT --bind 127.0.0.1 --directory "+b.DataDir)
	for _, p := range []string{"/secrets/sealed.key", "/secrets/secrets.db", "/berth.db", "/", "/secrets/"} {
		code, body := b.routerGet(t, appHost(serve), p)
		if code == http.StatusOK || bytes.Contains(body, key) || bytes.Contains(body, []byte("sealed.key")) {
			t.Errorf("an app serving data_dir answers GET %s with %d (%d bytes): data_dir is readable by app code", p, code, len(body))
		}
	}

	peek := "peek"
	b.deployShell(t, u, peek, fmt.Sprintf(
		`cat %s > leak.txt 2>&1; echo "rc=$?" >> leak.txt; id -u > uid.txt; echo "$HOME" > home.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`,
		filepath.Join(b.DataDir, "secrets", "sealed.key")))
	leak := b.appFile(t, peek, "/leak.txt")
	if strings.Contains(leak, string(key)) || strings.Contains(leak, "rc=0") {
		t.Errorf("an app's proc read the sealed key of the server (its output: %d bytes, %q...)", len(leak), leak[len(leak)-5:])
	}
	if os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(strings.TrimSpace(b.appFile(t, peek, "/uid.txt")))
		if uid < 200000 || uid > 265535 {
			t.Errorf("the app's proc runs as uid %d, want one of its own from 200000-265535", uid)
		}
		home := strings.TrimSpace(b.appFile(t, peek, "/home.txt"))
		if fi, err := os.Stat(home); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			t.Errorf("the app's HOME %q is not a directory owned by its uid %d (%v)", home, uid, err)
		}
		if strings.HasPrefix(home, b.DataDir+"/") {
			t.Errorf("the app's HOME %q is inside data_dir", home)
		}
	}
	if fi, err := os.Stat(b.DataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data_dir mode: %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// TestIsolationAppsApart: app A's proc can neither read app B's files nor
// kill B's process.
func TestIsolationAppsApart(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "tenant")
	bee := "bee"
	b.deployShell(t, u, bee, `echo "secret-of-bee" > mine.txt; pwd > where.txt; echo $$ > pid.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`)
	beeDir := strings.TrimSpace(b.appFile(t, bee, "/where.txt"))
	beePID, _ := strconv.Atoi(strings.TrimSpace(b.appFile(t, bee, "/pid.txt")))
	if beePID <= 1 || syscall.Kill(beePID, 0) != nil {
		t.Fatalf("bee's pid %d is not alive", beePID)
	}
	beeStart := func() string { _, s := procStat(beePID); return s }
	started := beeStart()

	ant := "ant"
	b.deployShell(t, u, ant, fmt.Sprintf(
		`cat %s/mine.txt > read.txt 2>&1; echo "rc=$?" >> read.txt; kill -9 %d > kill.txt 2>&1; echo "rc=$?" >> kill.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`,
		beeDir, beePID))
	read := b.appFile(t, ant, "/read.txt")
	if strings.Contains(read, "secret-of-bee") || strings.Contains(read, "rc=0") {
		t.Errorf("ant read bee's file %s/mine.txt: %q", beeDir, read)
	}
	kill := b.appFile(t, ant, "/kill.txt")
	if strings.Contains(kill, "rc=0") {
		t.Errorf("ant could kill -9 bee's process %d: %q", beePID, kill)
	}
	time.Sleep(300 * time.Millisecond)
	if st, s := procStat(beePID); st == "" || st == "Z" || s != started {
		t.Errorf("bee's process %d was killed (by ant)", beePID)
	}
	if got := strings.TrimSpace(b.appFile(t, bee, "/pid.txt")); got != strconv.Itoa(beePID) {
		t.Errorf("bee was restarted (pid %s, was %d)", got, beePID)
	}
	if os.Geteuid() == 0 {
		antPIDs, beePIDs := processesOf(ant), processesOf(bee)
		if len(antPIDs) == 0 || len(beePIDs) == 0 {
			t.Fatalf("processes: ant %v, bee %v", antPIDs, beePIDs)
		}
		if ua, ub := procUID(antPIDs[0]), procUID(beePIDs[0]); ua == ub || ua == 0 || ub == 0 {
			t.Errorf("ant runs as uid %d, bee as uid %d: want two distinct non-root uids", ua, ub)
		}
	}
}

// pluginProcs lists the live processes whose command line mentions dir
// (the plugin directory of a test).
func pluginProcs(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cl, []byte(dir)) {
			continue
		}
		if st, _ := procStat(pid); st != "" && st != "Z" && st != "X" {
			out = append(out, pid)
		}
	}
	return out
}

func killAll(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// TestIsolationKill9LeavesNothing: when berth is killed with SIGKILL, no
// broker plugin process and no process of an instance's tree (here a
// shell's background child and its foreground child) survives it.
func TestIsolationKill9LeavesNothing(t *testing.T) {
	plugDir := flakyPluginDir(t)
	b := startBerth(t, Options{ExtraHCL: pluginsHCL(plugDir)})
	app := "tree"
	t.Cleanup(func() { killAll(processesOf(app)); killAll(pluginProcs(plugDir)) })
	u, team := serviceOwner(t, b, "treeowner")
	svc := b.unique("flaky")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: flaky\nteam: %s\n", svc, team))).want(t, http.StatusOK)
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": b.unique("inst"), "service_name": svc}).want(t, http.StatusOK)
	if len(pluginProcs(plugDir)) == 0 {
		t.Fatal("no plugin process runs after a provision")
	}
	b.deployShell(t, u, app, `sleep 1000 & cd . && python3 -m http.server $PORT --bind 127.0.0.1`)
	if n := len(processesOf(app)); n < 3 {
		t.Fatalf("the app runs %d processes %v, want a shell, its sleep and its python", n, processesOf(app))
	}

	// SIGKILL to berth alone (killHard also kills berth's process group,
	// which a real kill -9 does not).
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not die within 10s of SIGKILL")
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(processesOf(app)) == 0 && len(pluginProcs(plugDir)) == 0 {
			break
		}
	}
	if left, plug := processesOf(app), pluginProcs(plugDir); len(left)+len(plug) > 0 {
		t.Errorf("after kill -9 of berth: instance processes %v and plugin processes %v remain", left, plug)
	}
	b.restartSame(t)
}

// TestIsolationUndeployKillsTree: undeploying an app whose proc forks
// children (one of them in a session of its own, out of the instance's
// process group) leaves none of them.
func TestIsolationUndeployKillsTree(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "forker")
	app := "forky"
	t.Cleanup(func() { killAll(processesOf(app)) })
	b.deployShell(t, u, app, `setsid sleep 1001 & sleep 1002 & exec python3 -m http.server $PORT --bind 127.0.0.1`)
	eventually(t, 5*time.Second, "the app's three processes", func() bool { return len(processesOf(app)) >= 3 })
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(processesOf(app)) == 0 {
			break
		}
	}
	if left := processesOf(app); len(left) > 0 {
		t.Errorf("processes of the undeployed app remain: %v", left)
	}
}

// TestIsolationNone: local.isolation = "none" runs procs with berth's own
// uid, and the server warns about it.
func TestIsolationNone(t *testing.T) {
	b := startBerth(t, Options{})
	b.stop(t)
	cfg, err := os.ReadFile(b.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(cfg), "local {\n", "local {\n  isolation = \"none\"\n", 1)
	if patched == string(cfg) {
		t.Fatalf("no local block in the config:\n%s", cfg)
	}
	if err := os.WriteFile(b.ConfigPath, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := len(b.Log())
	b.restartSame(t)
	if !strings.Contains(b.Log()[mark:], "NOT isolated") {
		t.Errorf("isolation none: the server does not warn that procs are not isolated")
	}
	app := "trusted"
	b.deployShell(t, b.Admin, app, `id -u > uid.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`)
	if got := strings.TrimSpace(b.appFile(t, app, "/uid.txt")); got != strconv.Itoa(os.Geteuid()) {
		t.Errorf("isolation none: the proc runs as uid %s, want berth's own %d", got, os.Geteuid())
	}
}

// TestPluginChecksumPinned: a plugin pinned by a SHA-256 its executable
// does not have is refused with an error naming the mismatch; pinned by
// the right one, it serves.
func TestPluginChecksumPinned(t *testing.T) {
	dir := flakyPluginDir(t)
	sum := sha256File(t, filepath.Join(dir, "berth-broker-flaky"))
	wrong := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		what, sum string
		ok        bool
	}{{"a wrong checksum", wrong, false}, {"the right checksum", sum, true}} {
		t.Run(strings.ReplaceAll(tc.what, " ", "_"), func(t *testing.T) {
			hcl := fmt.Sprintf("plugins {\n  dir = %s\n  call_timeout = \"5s\"\n  checksums = { flaky = %q }\n}\n", hclString(dir), tc.sum)
			b := startBerth(t, Options{ExtraHCL: hcl})
			u, team := serviceOwner(t, b, "pinner")
			svc := b.unique("flaky")
			b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: flaky\nteam: %s\n", svc, team))).want(t, http.StatusOK)
			r := b.do(t, "POST", "/services/instances", u, map[string]any{"name": b.unique("inst"), "service_name": svc})
			if tc.ok {
				r.want(t, http.StatusOK)
				return
			}
			if r.Code < 500 {
				t.Fatalf("provision on a plugin with %s: %s, want a 5xx", tc.what, r)
			}
			checkErrorBody(t, r)
			if msg := r.Str("error"); !strings.Contains(msg, "SHA-256") || !strings.Contains(msg, "checksum") {
				t.Errorf("the error does not name the checksum mismatch: %s", r)
			}
		})
	}
}

// TestIsolationRecreatedAppInheritsNothing: an app removed by its owner and
// re-created under the same name by another user starts with an empty
// working directory and another uid: nothing of the first one's files.
func TestIsolationRecreatedAppInheritsNothing(t *testing.T) {
	b := startBerth(t, Options{})
	first, second := b.newUser(t, "first"), b.newUser(t, "second")
	app := "reborn"
	b.deployShell(t, first, app, `echo "private-of-first" > notes.txt; id -u > uid.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`)
	uid1 := strings.TrimSpace(b.appFile(t, app, "/uid.txt"))
	b.operate(t, "DELETE", "/apps/"+app, first, nil).want(t, http.StatusOK)

	b.deployShell(t, second, app, `id -u > uid2.txt; exec python3 -m http.server $PORT --bind 127.0.0.1`)
	uid2 := strings.TrimSpace(b.appFile(t, app, "/uid2.txt"))
	if code, body := b.routerGet(t, appHost(app), "/notes.txt"); code == http.StatusOK || strings.Contains(string(body), "private-of-first") {
		t.Errorf("the re-created app serves the removed app's file: %d %q", code, body)
	}
	if os.Geteuid() == 0 && uid1 == uid2 {
		t.Errorf("the re-created app runs as the removed app's uid %s", uid1)
	}
}
