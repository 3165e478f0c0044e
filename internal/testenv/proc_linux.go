package testenv

import "syscall"

// dieWithParent makes a server started by a test die with the test binary,
// even when that is killed, so no orphan keeps a port or a directory.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
