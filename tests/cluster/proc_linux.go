package cluster

import "syscall"

// dieWithParent makes an agent die with the test binary, even when that is
// killed, so no agent outlives its test holding a port or a directory.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
