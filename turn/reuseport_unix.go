//go:build unix

package turn

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported reports whether several sockets may share a UDP port.
const reusePortSupported = true

// reusePortControl sets SO_REUSEPORT on a socket before it is bound.
func reusePortControl(_, _ string, rc syscall.RawConn) error {
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return opErr
}
