package testenv

import "syscall"

// procAttr puts a test's process in its own process group (so a SIGKILL
// reaches its children) and kills it if the test binary dies, so a
// panicking or timed-out test leaves no worker behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
