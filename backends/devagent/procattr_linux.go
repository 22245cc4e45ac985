package devagent

import "syscall"

// sysProcAttr makes the kernel kill the agent when the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
