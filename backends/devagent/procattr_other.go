//go:build !linux

package devagent

import "syscall"

// sysProcAttr: without Pdeathsig, agents outlive a crashed test binary until
// they are killed by hand; Shutdown stops them on a normal exit.
func sysProcAttr() *syscall.SysProcAttr { return nil }
