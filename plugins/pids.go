package plugins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-plugin"
)

// secureConfig is go-plugin's checksum check for plugin name, if pinned.
func (m *Manager) secureConfig(name string) (*plugin.SecureConfig, error) {
	sum, ok := m.cfg.Checksums[name]
	if !ok {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.TrimSpace(sum))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: plugins.checksums[%q] is not a hex SHA-256", ErrChecksumMismatch, name)
	}
	return &plugin.SecureConfig{Checksum: b, Hash: sha256.New()}, nil
}

// pidfileName is the pid file of the plugin process of key.
func (m *Manager) pidfileName(key string) string {
	return filepath.Join(m.cfg.StateDir, "plugin-"+hex.EncodeToString([]byte(key))+".pid")
}

// writePidfile records the started plugin process of key: its pid and its
// start time (field 22 of /proc/<pid>/stat), so that a later sweep kills it
// only if that pid still is this process. It returns the file's path, ""
// if none was written.
func (m *Manager) writePidfile(key string, cmd *exec.Cmd) string {
	if m.cfg.StateDir == "" || cmd.Process == nil {
		return ""
	}
	pid := cmd.Process.Pid
	start, err := procStartTime(pid)
	if err != nil {
		return ""
	}
	if err := os.MkdirAll(m.cfg.StateDir, 0o700); err != nil {
		m.log.Warn("cannot record a plugin's pid", "error", err)
		return ""
	}
	path := m.pidfileName(key)
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, start)), 0o600); err != nil {
		m.log.Warn("cannot record a plugin's pid", "error", err)
		return ""
	}
	return path
}

// reapLeftovers kills the plugin processes (and their process groups)
// recorded in StateDir by a previous Manager that ended without stopping
// them, and removes their pid files.
func (m *Manager) reapLeftovers() {
	if m.cfg.StateDir == "" {
		return
	}
	ents, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "plugin-") || filepath.Ext(e.Name()) != ".pid" {
			continue
		}
		path := filepath.Join(m.cfg.StateDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var pid int
		var start string
		if _, err := fmt.Sscanf(string(b), "%d %s", &pid, &start); err == nil && pid > 1 {
			if cur, err := procStartTime(pid); err == nil && cur == start {
				m.log.Warn("killing a broker plugin process left by a previous run", "pid", pid)
				if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
					_ = syscall.Kill(-pid, syscall.SIGKILL)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.Remove(path)
	}
}

// procStartTime reads the start time (in clock ticks since boot) of pid.
func procStartTime(pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After comm: state(3) ... starttime(22) -> f[19].
	if len(f) < 20 {
		return "", fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return f[19], nil
}
