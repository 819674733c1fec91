package media

import (
	"net"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

// udpBuffer is the socket buffer the engine asks for on every UDP socket
// it opens (host candidates and TURN client sockets). Video arrives in
// bursts (a key frame is tens of packets at once) and a busy machine may
// not schedule the reader for a while; the kernel's default of about
// 200 KiB drops packets then. The kernel caps the request at
// net.core.rmem_max / wmem_max.
const udpBuffer = 4 << 20

// bufferedNet is the operating system's network with larger UDP socket
// buffers.
type bufferedNet struct{ transport.Net }

func newBufferedNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bufferedNet{n}, nil
}

type bufferSetter interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func grow(c any) {
	if b, ok := c.(bufferSetter); ok {
		_ = b.SetReadBuffer(udpBuffer)
		_ = b.SetWriteBuffer(udpBuffer)
	}
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		grow(c)
	}
	return c, err
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		grow(c)
	}
	return c, err
}
