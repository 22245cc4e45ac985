package plugins_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/plugins/broker"
)

// externalDir makes dir/berth-broker-<name> symlinks to this test binary
// (which serves the flaky broker under that name).
func externalDir(t *testing.T, names ...string) (dir, sum string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, n := range names {
		if err := os.Symlink(self, filepath.Join(dir, plugins.ExternalPrefix+n)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return dir, hex.EncodeToString(h.Sum(nil))
}

func TestPinnedChecksum(t *testing.T) {
	dir, sum := externalDir(t, "good", "bad", "unpinned")
	wrong := strings.Repeat("0", 64)
	m := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, Checksums: map[string]string{"good": sum, "bad": wrong}})
	defer m.Close()
	b, err := m.Broker(ctx(t), "svc-good", "good", nil)
	if err != nil {
		t.Fatalf("a plugin matching its pinned SHA-256: %v", err)
	}
	pid(t, b)
	if _, err := m.Broker(ctx(t), "svc-unpinned", "unpinned", nil); err != nil {
		t.Fatalf("an unpinned plugin: %v", err)
	}
	_, err = m.Broker(ctx(t), "svc-bad", "bad", nil)
	if !errors.Is(err, plugins.ErrChecksumMismatch) || !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("a plugin not matching its pinned SHA-256: err = %v, want ErrChecksumMismatch and ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "SHA-256") || !strings.Contains(err.Error(), "berth-broker-bad") {
		t.Errorf("the mismatch error does not say what is wrong: %v", err)
	}
}

// TestLeftoverPluginsKilled: a Manager on the StateDir of one that did not
// stop its plugins (a killed berth) kills them; a pid file whose process
// is not the recorded one (start time differs: a reused pid) kills nothing.
func TestLeftoverPluginsKilled(t *testing.T) {
	dir, _ := externalDir(t, "flaky")
	state := t.TempDir()
	first := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, StateDir: state})
	b, err := first.Broker(ctx(t), "svc", "flaky", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := pid(t, b)
	if ents, _ := os.ReadDir(state); len(ents) != 1 {
		t.Fatalf("pid files in the state dir: %d, want 1", len(ents))
	}
	// An innocent process under a stale pid file.
	innocent := exec.Command("sleep", "60")
	if err := innocent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = innocent.Process.Kill(); _ = innocent.Wait() }()
	stale := filepath.Join(state, "plugin-"+hex.EncodeToString([]byte("old"))+".pid")
	if err := os.WriteFile(stale, []byte(fmt.Sprintf("%d 1\n", innocent.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	second := plugins.NewManager(plugins.ManagerConfig{PluginDir: dir, StateDir: state})
	defer second.Close()
	deadline := time.Now().Add(5 * time.Second)
	for alive(p) && !zombie(p) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(p) && !zombie(p) {
		t.Errorf("the plugin process %d of the previous Manager is alive", p)
	}
	if !alive(innocent.Process.Pid) {
		t.Errorf("a process under a stale pid file (another start time) was killed")
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("pid files left: %d", len(ents))
	}
	first.Close()
}

func zombie(p int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}
