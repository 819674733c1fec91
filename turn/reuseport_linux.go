package turn

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported reports whether several sockets may share the UDP
// port with client-IP affinity (SO_REUSEPORT plus a classic BPF selector,
// Linux 4.5 and later).
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

// skfNetOff is the classic-BPF offset of the network header (SKF_NET_OFF).
const skfNetOff = -0x100000

// attachIPAffinity makes the kernel pick the socket of a reuseport group
// of n sockets by the client's IP address alone (its default hashes the
// 4-tuple). pion/turn keeps one allocation table per socket, and an RTP/RTCP
// client reserves a port pair (EVEN-PORT, then RESERVATION-TOKEN) from two
// source ports of one IP: both requests must reach the same table.
//
// The program loads the 32-bit word at byte 12 of the IP header (the IPv4
// source address; bytes 4-7 of an IPv6 source address, so a /64 shares a
// socket) and returns it modulo n as the socket index.
func attachIPAffinity(c net.PacketConn, n int) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	k := int32(skfNetOff + 12)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: uint32(k)},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},
		{Code: unix.BPF_RET | unix.BPF_A},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		opErr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
	}); err != nil {
		return err
	}
	return opErr
}
