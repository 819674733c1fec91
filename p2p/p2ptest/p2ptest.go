// Package p2ptest has helpers for tests and benchmarks that need real
// libp2p hosts on loopback: host construction, connecting, and a raw stream
// echo service, the baseline callsign's protocol benchmarks compare against.
// Production code never imports it.
package p2ptest

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/callsign/callsign/p2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Loopback listen addresses: TCP and QUIC on 127.0.0.1, random ports.
var (
	ListenTCP  = []string{"/ip4/127.0.0.1/tcp/0"}
	ListenQUIC = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	ListenBoth = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
)

// NewHost starts a host with a fresh key listening on ListenBoth, lets mod
// adjust the config, and closes the host when tb ends.
func NewHost(tb testing.TB, mod func(*p2p.HostConfig)) host.Host {
	tb.Helper()
	k, err := p2p.GeneratePeerKey()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := p2p.HostConfig{PrivKey: k, Listen: ListenBoth}
	if mod != nil {
		mod(&cfg)
	}
	h, err := p2p.NewHost(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// Connect connects a to b using b's listen addresses.
func Connect(tb testing.TB, a, b host.Host) {
	tb.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		tb.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

// EchoProtocol is the raw echo protocol ServeEcho registers.
const EchoProtocol = "/callsign-test/echo/1.0.0"

// ServeEcho registers a handler on h that copies each stream back to its
// sender until the sender half-closes, then closes the stream.
func ServeEcho(h host.Host) {
	h.SetStreamHandler(EchoProtocol, func(s network.Stream) {
		buf := make([]byte, 4096)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					s.Reset()
					return
				}
			}
			if err == io.EOF {
				s.Close()
				return
			}
			if err != nil {
				s.Reset()
				return
			}
		}
	})
}

// EchoRoundTrip opens a new stream from h to p, writes payload, half-closes,
// reads the echo and checks it: one raw libp2p request/response, without
// framing. buf must be len(payload) long.
func EchoRoundTrip(ctx context.Context, h host.Host, p peer.ID, payload, buf []byte) error {
	s, err := h.NewStream(ctx, p, EchoProtocol)
	if err != nil {
		return err
	}
	if _, err := s.Write(payload); err != nil {
		s.Reset()
		return err
	}
	s.CloseWrite()
	if _, err := io.ReadFull(s, buf); err != nil {
		s.Reset()
		return err
	}
	s.Close()
	if string(buf) != string(payload) {
		return fmt.Errorf("echo mismatch")
	}
	return nil
}
