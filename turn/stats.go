package turn

import (
	"net"
	"sync/atomic"
)

// relayCounters count the bytes the server's relay sockets carry for its
// allocations, for Stats.
type relayCounters struct {
	toPeers   atomic.Uint64 // sent from relay sockets to peers (the clients' data)
	fromPeers atomic.Uint64 // received on relay sockets from peers
}

// countingConn is an allocation's relay socket, counting what passes. pion
// sends a client's data to its peers with WriteTo and reads the peers'
// datagrams with ReadFrom (relaying those from permitted peers to the
// client, dropping the rest).
type countingConn struct {
	net.PacketConn
	c *relayCounters
}

func (c countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if n > 0 {
		c.c.fromPeers.Add(uint64(n))
	}
	return n, addr, err
}

func (c countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if n > 0 {
		c.c.toPeers.Add(uint64(n))
	}
	return n, err
}
