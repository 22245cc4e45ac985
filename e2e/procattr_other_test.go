//go:build !linux

package e2e

import (
	"os/exec"
	"syscall"
)

func serverProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
