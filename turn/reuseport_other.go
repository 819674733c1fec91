//go:build !linux

package turn

import (
	"errors"
	"net"
	"syscall"
)

// reusePortSupported reports whether several sockets may share the UDP
// port with client-IP affinity; only on Linux.
const reusePortSupported = false

func reusePortControl(_, _ string, _ syscall.RawConn) error { return nil }

func attachIPAffinity(net.PacketConn, int) error {
	return errors.New("SO_REUSEPORT affinity is Linux-only")
}
