package main

import "syscall"

// procAttr makes a child die with the bench (Pdeathsig) in a process group
// of its own.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
