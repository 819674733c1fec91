package turn

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Relayed throughput in-process. Each of benchClients clients keeps
// benchWindow 1000-byte datagrams in flight through its allocation to an
// echo peer and back (two relay crossings per round trip). The baseline
// "direct" runs the same echo over plain loopback UDP without a relay, and
// "pion-defaults" is the relay with pion's stock socket setup (one socket,
// OS buffer sizes), both measured in the same run as "tuned" (this
// package's defaults).
//
//	go test -run='^$' -bench=Relay -benchtime=100000x ./turn
const (
	benchClients = 8
	benchWindow  = 16
	benchPayload = 1000
)

func BenchmarkRelay(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchEcho(b, nil, "udp") })
	b.Run("pion-defaults", func(b *testing.B) { benchEcho(b, &Config{Listeners: 1, SocketBuffer: -1}, "udp") })
	b.Run("tuned", func(b *testing.B) { benchEcho(b, &Config{}, "udp") })
}

// BenchmarkRelayTransport is BenchmarkRelay's "tuned" relay reached over
// UDP, TURN over TCP and TURN over TLS, in the same run:
//
//	go test -run='^$' -bench=RelayTransport -benchtime=100000x ./turn
func BenchmarkRelayTransport(b *testing.B) {
	for _, tr := range []string{"udp", "tcp", "tls"} {
		b.Run(tr, func(b *testing.B) { benchEcho(b, &Config{}, tr) })
	}
}

// BenchmarkRelaySetup is the time from nothing to a relayed address: a
// client's connection (for TCP and TLS, the TCP and TLS handshakes), its
// authenticated Allocate (two round trips), and closing it again.
//
//	go test -run='^$' -bench=RelaySetup -benchtime=300x ./turn
func BenchmarkRelaySetup(b *testing.B) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0", ListenTLS: "127.0.0.1:0",
		Secret: testSecret, AllowLoopbackPeers: true, MaxAllocationsPerIP: 1 << 20, MaxAllocationsPerUser: 1 << 20,
		AllocationBurst: 1 << 20, AllocationRate: 1 << 20, MaxTCPConnsPerIP: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, tr := range []string{"udp", "tcp", "tls"} {
		b.Run(tr, func(b *testing.B) {
			for range b.N {
				tc := benchClient(b, s, tr)
				tc.close()
			}
		})
	}
}

// benchEcho measures round trips between clients and echo peers, through
// a relay configured by cfg and reached over transport ("udp", "tcp" or
// "tls"), or directly when cfg is nil.
func benchEcho(b *testing.B, cfg *Config, transport string) {
	type pair struct {
		send net.PacketConn // what the client writes to and reads from
		to   net.Addr       // where its datagrams go
	}
	var pairs []pair
	var echoes sync.WaitGroup
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		echoes.Wait()
	}()
	startEcho := func() *net.UDPConn {
		peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		tuneSocket(peer, DefaultSocketBuffer)
		closers = append(closers, func() { _ = peer.Close() })
		echoes.Go(func() {
			buf := make([]byte, 1600)
			for {
				n, from, err := peer.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = peer.WriteTo(buf[:n], from)
			}
		})
		return peer
	}

	var s *Server
	if cfg != nil {
		c := *cfg
		c.ListenUDP = "127.0.0.1:0"
		c.Secret = testSecret
		c.AllowLoopbackPeers = true
		c.MaxAllocationsPerIP = 1000
		c.AllocationBurst = 1000
		if transport != "udp" {
			c.ListenTCP, c.ListenTLS = "127.0.0.1:0", "127.0.0.1:0"
		}
		var err error
		if s, err = New(c); err != nil {
			b.Fatal(err)
		}
		if err := s.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		closers = append(closers, func() { _ = s.Close() })
	}
	for range benchClients {
		peer := startEcho()
		if s == nil {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			tuneSocket(c, DefaultSocketBuffer)
			closers = append(closers, func() { _ = c.Close() })
			pairs = append(pairs, pair{send: c, to: peer.LocalAddr()})
			continue
		}
		tc := benchClient(b, s, transport)
		closers = append(closers, tc.close)
		pairs = append(pairs, pair{send: tc.relay, to: peer.LocalAddr()})
	}
	// Warm up: permissions and channel bindings in place.
	for _, p := range pairs {
		if err := echoOnce(p.send, p.to); err != nil {
			b.Fatalf("warm-up echo: %v", err)
		}
	}

	var lost atomic.Int64
	per := max(b.N/benchClients, benchWindow)
	b.SetBytes(2 * benchPayload) // two relay crossings per round trip
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Go(func() {
			msg := make([]byte, benchPayload)
			buf := make([]byte, 1600)
			sent, got := 0, 0
			for ; sent < benchWindow; sent++ {
				_, _ = p.send.WriteTo(msg, p.to)
			}
			for got < per {
				_ = p.send.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := p.send.ReadFrom(buf); err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						b.Errorf("read: %v", err)
						return
					}
					// Datagrams were lost: count what is outstanding as
					// gone and start a new window.
					lost.Add(int64(sent - got))
					got = sent
					for i := 0; i < benchWindow && sent < per; i++ {
						_, _ = p.send.WriteTo(msg, p.to)
						sent++
					}
					continue
				}
				got++
				if sent < per {
					_, _ = p.send.WriteTo(msg, p.to)
					sent++
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	total := float64(per * benchClients)
	b.ReportMetric(100*float64(lost.Load())/total, "loss%")
	b.ReportMetric(total/b.Elapsed().Seconds(), "roundtrips/s")
}

// benchClient allocates a relay for a benchmark client reaching s over
// transport ("udp", "tcp" or "tls").
func benchClient(b *testing.B, s *Server, transport string) *testClient {
	b.Helper()
	creds := s.Credentials("bench")
	var tc *testClient
	switch transport {
	case "tcp", "tls":
		var conn net.Conn
		var err error
		if transport == "tcp" {
			conn, err = net.Dial("tcp4", s.TCPAddr().String())
		} else {
			conn, err = tls.Dial("tcp4", s.TLSAddr().String(), pinnedTLS(creds.TLSCertSHA256))
		}
		if err != nil {
			b.Fatal(err)
		}
		tc, err = streamClient(conn, conn.RemoteAddr().String(), creds)
		if err != nil {
			b.Fatal(err)
		}
	default:
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		tuneSocket(conn, DefaultSocketBuffer)
		c, err := newPionClient(s, conn, creds)
		if err != nil {
			b.Fatal(err)
		}
		tc = &testClient{Client: c, conn: conn}
	}
	if err := tc.allocate(); err != nil {
		tc.close()
		b.Fatal(err)
	}
	return tc
}

// echoOnce sends one datagram and waits for its echo, resending a few times
// while permissions settle.
func echoOnce(c net.PacketConn, to net.Addr) error {
	buf := make([]byte, 1600)
	var err error
	for range 20 {
		if _, err = c.WriteTo([]byte("warm-up"), to); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		if _, _, err = c.ReadFrom(buf); err == nil {
			return nil
		}
	}
	return err
}
