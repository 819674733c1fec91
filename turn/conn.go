package turn

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// bufferSetter is implemented by *net.UDPConn (and not by vnet's conns).
type bufferSetter interface {
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
}

// tuneSocket enlarges a socket's buffers: at the default ~200 KiB a burst
// of relayed media overflows the receive queue and packets are lost.
func tuneSocket(c any, size int) {
	if size <= 0 {
		return
	}
	if bs, ok := c.(bufferSetter); ok {
		_ = bs.SetReadBuffer(size)  // best effort: the kernel caps it
		_ = bs.SetWriteBuffer(size) // best effort: the kernel caps it
	}
}

// stunMagicCookie is the fixed value at bytes 4-7 of every STUN message.
const stunMagicCookie = 0x2112A442

// udpListener wraps one listening UDP socket handed to pion/turn. It keeps
// pion's read loop alive across transient read errors, marks its exit, and
// screens requests that pion would accept but our limits refuse (see
// Server.screen).
type udpListener struct {
	net.PacketConn
	s        *Server
	done     chan struct{} // closed when ReadFrom returns an error for good
	doneOnce sync.Once
}

func (l *udpListener) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := l.PacketConn.ReadFrom(b)
		if err != nil {
			if l.s.closing.Load() || errors.Is(err, net.ErrClosed) {
				l.doneOnce.Do(func() { close(l.done) })
				return n, addr, err
			}
			// pion ends its read loop on any error; a transient one must
			// not take the relay down.
			l.s.log.Debug("turn: udp read", "err", err)
			time.Sleep(time.Millisecond)
			continue
		}
		if l.s.screen(l.PacketConn, b[:n], addr) {
			continue
		}
		return n, addr, nil
	}
}

// screen inspects a datagram before pion handles it and reports whether it
// was consumed. It refuses ChannelBind requests that would take an
// allocation over its channel cap (pion has no hook for that) with a 508
// response. Everything else passes; ChannelData (the hot path) costs two
// byte compares.
func (s *Server) screen(conn net.PacketConn, b []byte, src net.Addr) bool {
	// ChannelBind request: type 0x0009, then the magic cookie.
	if len(b) < 20 || b[0] != 0x00 || b[1] != 0x09 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	msg := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := msg.Decode(); err != nil {
		return false // pion answers malformed requests itself
	}
	v, err := msg.Get(stun.AttrChannelNumber)
	if err != nil || len(v) < 2 {
		return false
	}
	number := binary.BigEndian.Uint16(v[:2])
	if s.lim.channelAllowed(src, number) {
		return false
	}
	s.log.Debug("turn: channel bind refused", "reason", "per-allocation channel limit", "src", src.String())
	resp, err := stun.Build(
		&stun.Message{TransactionID: msg.TransactionID},
		stun.NewType(stun.MethodChannelBind, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: stun.CodeInsufficientCapacity},
	)
	if err == nil {
		_, _ = conn.WriteTo(resp.Raw, src) // best effort: the client retries or gives up
	}
	return true
}

// tcpListener wraps the TURN-over-TCP listener: it caps concurrent
// connections (in total and per IP), tracks them so Close can end them, and
// marks its own exit.
type tcpListener struct {
	net.Listener
	s        *Server
	tls      *tls.Config // nil for plain TCP
	done     chan struct{}
	doneOnce sync.Once
}

// tcpIdleTimeout closes a TURN-over-TCP connection that has sent nothing
// for longer than an allocation lifetime (clients refresh well within it).
const tcpIdleTimeout = 11 * time.Minute

func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if l.s.closing.Load() || errors.Is(err, net.ErrClosed) {
				l.doneOnce.Do(func() { close(l.done) })
				return nil, err
			}
			l.s.log.Debug("turn: tcp accept", "err", err)
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: don't spin
			continue
		}
		tc, ok := l.s.trackTCP(c)
		if !ok {
			_ = c.Close()
			continue
		}
		if l.tls != nil {
			return &tlsConn{Conn: tls.Server(tc, l.tls)}, nil
		}
		return tc, nil
	}
}

// tlsHandshakeTimeout bounds a TURN-over-TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// tlsConn is an accepted TURN-over-TLS connection. It is deliberately not
// a *tls.Conn: pion handshakes those itself and, when the handshake fails,
// returns without closing the connection, which would leak it and its
// slot under the TCP caps. Here the handshake runs, with a deadline, in
// the first Read of pion's goroutine for the connection, so a failure ends
// that goroutine the ordinary way (pion closes the connection).
type tlsConn struct {
	*tls.Conn
	handshook bool // only pion's reading goroutine touches it
}

func (c *tlsConn) Read(b []byte) (int, error) {
	if !c.handshook {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		err := c.Conn.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return 0, err
		}
		c.handshook = true
	}
	return c.Conn.Read(b)
}

// tcpConn is one accepted TURN-over-TCP connection.
type tcpConn struct {
	net.Conn
	s         *Server
	ip        netip.Addr
	closeOnce sync.Once
	killed    atomic.Bool
}

func (c *tcpConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(tcpIdleTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Close is called by pion when its goroutine for the connection ends; it
// is the last thing that goroutine does.
func (c *tcpConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.s.untrackTCP(c)
	})
	return err
}

// kill closes the socket underneath pion, which then ends its goroutine
// and calls Close.
func (c *tcpConn) kill() {
	if c.killed.CompareAndSwap(false, true) {
		_ = c.Conn.Close()
	}
}

func (s *Server) trackTCP(c net.Conn) (*tcpConn, bool) {
	ip, ok := addrIP(c.RemoteAddr())
	if !ok {
		return nil, false
	}
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	if s.closing.Load() || len(s.tcpConns) >= s.cfg.MaxTCPConns || s.tcpPerIP[ip] >= s.cfg.MaxTCPConnsPerIP {
		s.log.Debug("turn: tcp connection refused", "reason", "connection limit", "src", c.RemoteAddr().String())
		return nil, false
	}
	tc := &tcpConn{Conn: c, s: s, ip: ip}
	s.tcpConns[tc] = struct{}{}
	s.tcpPerIP[ip]++
	s.tcpWG.Add(1)
	return tc, true
}

func (s *Server) untrackTCP(c *tcpConn) {
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	if _, ok := s.tcpConns[c]; !ok {
		return
	}
	delete(s.tcpConns, c)
	if s.tcpPerIP[c.ip]--; s.tcpPerIP[c.ip] <= 0 {
		delete(s.tcpPerIP, c.ip)
	}
	s.tcpWG.Done()
}

// killTCP closes the TCP connection whose remote address is src, if any.
func (s *Server) killTCP(src net.Addr) {
	key := allocKey(src)
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	for c := range s.tcpConns {
		if allocKey(c.RemoteAddr()) == key {
			c.kill()
		}
	}
}

// killAllTCP closes every tracked TCP connection.
func (s *Server) killAllTCP() {
	s.tcpMu.Lock()
	defer s.tcpMu.Unlock()
	for c := range s.tcpConns {
		c.kill()
	}
}

// listenUDP opens n UDP sockets on addr; with n > 1 they share the port
// through SO_REUSEPORT and the kernel spreads clients across them by source
// IP (see attachIPAffinity). Same-user processes could join the group, as
// with any SO_REUSEPORT socket; the node's data-directory lock keeps a
// second callsign off it.
func (s *Server) listenUDP(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	if s.cfg.Net != nil {
		c, err := s.cfg.Net.ListenPacket("udp", addr) //nolint:noctx // transport.Net has no context variant
		if err != nil {
			return nil, err
		}
		return []net.PacketConn{c}, nil
	}
	if n == 1 {
		var lc net.ListenConfig
		c, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		tuneSocket(c, s.cfg.SocketBuffer)
		return []net.PacketConn{c}, nil
	}
	conns, err := listenReusePortGroup(ctx, addr, n)
	if err != nil {
		return nil, err
	}
	if len(conns) > 1 {
		if err := attachIPAffinity(conns[0], len(conns)); err != nil {
			// Without affinity RTP/RTCP port reservations break across
			// sockets; serve from one socket instead.
			s.log.Info("turn: serving UDP from one socket", "reason", "reuseport affinity: "+err.Error())
			for _, c := range conns[1:] {
				_ = c.Close()
			}
			conns = conns[:1]
		}
	}
	for _, c := range conns {
		tuneSocket(c, s.cfg.SocketBuffer)
	}
	return conns, nil
}

// listenReusePortGroup binds n SO_REUSEPORT sockets to one port. A plain
// socket probes the address first: any SO_REUSEPORT socket of the same user
// could silently join a group, so the group is only formed on a port
// nobody holds (for port 0, a fresh one; a lost race is retried).
func listenReusePortGroup(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	var plain net.ListenConfig
	group := net.ListenConfig{Control: reusePortControl}
	var lastErr error
	for range 3 {
		probe, err := plain.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		shared := probe.LocalAddr().String()
		_ = probe.Close()
		conns := make([]net.PacketConn, 0, n)
		for len(conns) < n {
			c, err := group.ListenPacket(ctx, "udp", shared)
			if err != nil {
				lastErr = err
				break
			}
			conns = append(conns, c)
		}
		if len(conns) == n {
			return conns, nil
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
	return nil, lastErr
}

func (s *Server) listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	if s.cfg.Net != nil {
		a, err := s.cfg.Net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			return nil, err
		}
		return s.cfg.Net.ListenTCP("tcp", a)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
