//go:build !unix

package turn

import "syscall"

// reusePortSupported reports whether several sockets may share a UDP port.
const reusePortSupported = false

func reusePortControl(_, _ string, _ syscall.RawConn) error { return nil }
