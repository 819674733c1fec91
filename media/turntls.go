package media

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v4"
)

// TURN over TCP and TLS. pion's ICE agent dials a TURN server's TCP
// address itself, and for "turns:" checks the certificate against the
// system roots only, so a relay with a self-signed certificate would be
// refused. The engine therefore installs turnDialer as the agent's proxy
// dialer, which pion uses for every TCP TURN URL ("turn:…?transport=tcp"
// and "turns:"): it dials the address on the engine's network and, for an
// address some call named in a "turns:" URL, speaks TLS, accepting exactly
// the certificate whose SHA-256 that call's ICEServer.TLSCertSHA256 names,
// or, without a pin, one valid for the URL's host under the system roots.

// tlsHandshakeTimeout bounds the TLS handshake with a TURN server.
const tlsHandshakeTimeout = 10 * time.Second

// maxTLSTargets bounds the TURN-over-TLS addresses the dialer remembers.
const maxTLSTargets = 64

type tlsTarget struct {
	host string // the URL's host, for the system-roots check
	pin  []byte // nil: system roots
	seen time.Time
}

type turnDialer struct {
	net transport.Net

	mu      sync.Mutex
	targets map[string]tlsTarget // "ip:port" of "turns:" URLs; guarded by mu
}

func newTURNDialer(n transport.Net) *turnDialer {
	return &turnDialer{net: n, targets: map[string]tlsTarget{}}
}

// register notes the "turns:" addresses of servers (already validated by
// toPionServers) and their pins, so that dials to them speak TLS.
func (d *turnDialer) register(servers []ICEServer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range servers {
		for _, u := range s.URLs {
			uri, err := ice.ParseURL(u)
			if err != nil || uri.Scheme != ice.SchemeTypeTURNS {
				continue
			}
			addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
			if _, ok := d.targets[addr]; !ok && len(d.targets) >= maxTLSTargets {
				d.evictOldestLocked()
			}
			d.targets[addr] = tlsTarget{host: uri.Host, pin: bytes.Clone(s.TLSCertSHA256), seen: time.Now()}
		}
	}
}

func (d *turnDialer) evictOldestLocked() {
	var oldest string
	var at time.Time
	for a, t := range d.targets {
		if oldest == "" || t.seen.Before(at) {
			oldest, at = a, t.seen
		}
	}
	delete(d.targets, oldest)
}

// Dial implements proxy.Dialer for pion's ICE agent.
func (d *turnDialer) Dial(network, addr string) (net.Conn, error) {
	d.mu.Lock()
	target, isTLS := d.targets[addr]
	d.mu.Unlock()
	conn, err := d.net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	if !isTLS {
		return conn, nil
	}
	cfg := &tls.Config{ServerName: target.host, MinVersion: tls.VersionTLS12}
	if target.pin != nil {
		pin := target.pin
		cfg.InsecureSkipVerify = true //nolint:gosec // the pin check below replaces the chain check
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			if sum := sha256.Sum256(raw[0]); !bytes.Equal(sum[:], pin) {
				return errors.New("the certificate is not the one the relay's credentials name")
			}
			return nil
		}
	}
	tc := tls.Client(conn, cfg)
	_ = conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TURN over TLS to %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// checkTLSPin validates an ICEServer's pin.
func checkTLSPin(s ICEServer) error {
	if s.TLSCertSHA256 != nil && len(s.TLSCertSHA256) != sha256.Size {
		return fmt.Errorf("TLS certificate pin of %d bytes, want %d", len(s.TLSCertSHA256), sha256.Size)
	}
	return nil
}
