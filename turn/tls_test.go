package turn

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/callsign/callsign/internal/check"
)

// pinnedTLS is the client side of TURN over TLS as a member does it: the
// certificate must hash to pin, whoever signed it.
func pinnedTLS(pin []byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the pin below replaces the chain check
		MinVersion:         tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(CertSHA256(raw[0]), pin) {
				return errors.New("certificate does not match the pin")
			}
			return nil
		},
	}
}

// newStreamClient makes a pion TURN client over an established TCP or TLS
// connection; it is closed at the end of the test.
func newStreamClient(t *testing.T, conn net.Conn, server string, creds Credentials) *testClient {
	t.Helper()
	tc, err := streamClient(conn, server, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.close)
	return tc
}

// streamClient makes a pion TURN client over conn and starts its reader.
func streamClient(conn net.Conn, server string, creds Credentials) (*testClient, error) {
	stc := pionturn.NewSTUNConn(conn)
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: server,
		Conn:           stc,
		Username:       creds.Username,
		Password:       creds.Password,
		LoggerFactory:  pionLoggerFactory{log: discardLogger},
	})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := client.Listen(); err != nil {
		client.Close()
		_ = conn.Close()
		return nil, err
	}
	return &testClient{Client: client, conn: stc}, nil
}

func TestTLSRelay(t *testing.T) {
	s := startServer(t, Config{ListenTCP: "127.0.0.1:0", ListenTLS: "127.0.0.1:0"})
	creds := s.Credentials("alice")
	wantTLS := "turns:" + s.TLSAddr().String() + "?transport=tcp"
	if len(creds.URLs) != 3 || creds.URLs[2] != wantTLS || !strings.HasSuffix(creds.URLs[1], "?transport=tcp") {
		t.Fatalf("URLs %q, want udp, tcp and %q", creds.URLs, wantTLS)
	}
	if len(creds.TLSCertSHA256) != 32 {
		t.Fatalf("credentials carry a pin of %d bytes, want 32", len(creds.TLSCertSHA256))
	}

	conn, err := tls.Dial("tcp4", s.TLSAddr().String(), pinnedTLS(creds.TLSCertSHA256))
	if err != nil {
		t.Fatalf("TLS dial with the pin from the credentials: %v", err)
	}
	c := newStreamClient(t, conn, s.TLSAddr().String(), creds)
	if err := c.allocate(); err != nil {
		t.Fatalf("Allocate over TLS: %v", err)
	}
	roundTrip(t, c, listenPeer(t, "127.0.0.1"), "over tls")

	// Another certificate (an interceptor's) fails the pin.
	other := make([]byte, 32)
	if _, err := tls.Dial("tcp4", s.TLSAddr().String(), pinnedTLS(other)); err == nil {
		t.Fatal("TLS dial succeeded against the wrong pin")
	}
}

// TestTLSHandshakeFailureFreesSlot: connections that never complete a TLS
// handshake (garbage, or a plain TURN client on the TLS port) are closed
// and give their slot under the per-IP TCP cap back.
func TestTLSHandshakeFailureFreesSlot(t *testing.T) {
	s := startServer(t, Config{ListenTLS: "127.0.0.1:0", MaxTCPConnsPerIP: 1})
	for i := range 3 {
		raw, err := net.Dial("tcp4", s.TLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = raw.Write([]byte("\x00\x03\x00\x00not a tls client hello, try " + string(rune('0'+i))))
		_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := raw.Read(make([]byte, 64)); err == nil {
			// an alert may come first; the close must follow
			_, err = raw.Read(make([]byte, 64))
			if err == nil {
				t.Fatal("server kept a connection with a failed handshake open")
			}
		}
		_ = raw.Close()
		check.Until(t, 5*time.Second, "the TLS connection gone", func() bool { return s.Stats().TCPConns == 0 })
	}
	creds := s.Credentials("alice")
	conn, err := tls.Dial("tcp4", s.TLSAddr().String(), pinnedTLS(creds.TLSCertSHA256))
	if err != nil {
		t.Fatalf("TLS dial after failed handshakes: %v", err)
	}
	c := newStreamClient(t, conn, s.TLSAddr().String(), creds)
	if err := c.allocate(); err != nil {
		t.Fatalf("Allocate over TLS after failed handshakes: %v", err)
	}
}

// TestStaleAllocationsExpire: clients that vanish without deallocating
// (a crashed node) hold their allocations for the allocation lifetime
// only; until then a newcomer from the same IP is refused with 486, then
// it gets in without a restart.
func TestStaleAllocationsExpire(t *testing.T) {
	const lifetime = 2 * time.Second
	s := startServer(t, Config{AllocationLifetime: lifetime, MaxAllocationsPerIP: 2})
	for i := range 2 {
		creds := s.Credentials("gone" + string(rune('a'+i)))
		c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
		if err := c.allocate(); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		// Vanish: stop the client and its refreshes without a Refresh(0).
		_ = c.conn.Close()
		c.Client.Close()
	}
	if st := s.Stats(); st.Allocations != 2 || st.MaxAllocationsPerIP != 2 || st.AllocationLifetime != lifetime {
		t.Fatalf("stats %+v, want 2 allocations, per-IP limit 2, lifetime %v", st, lifetime)
	}
	creds := s.Credentials("newcomer")
	c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
	err := c.allocate()
	if turnCode(err) != codeOf(stun.CodeAllocQuotaReached) {
		t.Fatalf("newcomer over the per-IP limit: %v, want 486 Allocation Quota Reached", err)
	}
	deadline := time.Now().Add(lifetime + 20*time.Second)
	for s.Allocations() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d stale allocations still held %v after their lifetime", s.Allocations(), time.Until(deadline))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c2 := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
	if err := c2.allocate(); err != nil {
		t.Fatalf("newcomer after the stale allocations expired: %v", err)
	}
	roundTrip(t, c2, listenPeer(t, "127.0.0.1"), "after expiry")
}

// TestDefaultLimitsFitRealClients: a member's call gathers one allocation
// per TURN URL (UDP, TCP, TLS), and coturn's uclient takes two per client
// (an RTP/RTCP pair); the defaults admit well more than 4 such clients per
// credential.
func TestDefaultLimitsFitRealClients(t *testing.T) {
	s := startServer(t, Config{})
	st := s.Stats()
	if st.MaxAllocationsPerUser < 16 || st.MaxAllocationsPerIP < 8*st.MaxAllocationsPerUser/2 {
		t.Fatalf("default limits %+v are too small for real clients", st)
	}
	creds := s.Credentials("member")
	const clients = 12 // 12 uclient-style clients or 4 calls over three URLs each
	for i := range clients {
		c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
		if err := c.allocate(); err != nil {
			t.Fatalf("client %d with one credential: %v", i, err)
		}
	}
	if n := s.Stats().Allocations; n != clients {
		t.Fatalf("%d allocations, want %d", n, clients)
	}
}

func TestLoadOrCreateCertificate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turn-tls.pem")
	a, err := LoadOrCreateCertificate(path, net.IPv4(192, 0, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateCertificate(path, net.IPv4(192, 0, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(CertSHA256(a.Certificate[0]), CertSHA256(b.Certificate[0])) {
		t.Fatal("a second load made a new certificate")
	}
	s := startServer(t, Config{ListenTLS: "127.0.0.1:0", TLSCertificate: &b})
	if !bytes.Equal(s.TLSCertSHA256(), CertSHA256(a.Certificate[0])) {
		t.Fatal("server pins another certificate than the one it was given")
	}
}

// TestOperatorCertificate: an operator's certificate and key in two PEM
// files serve TURN over TLS, and the credentials pin that certificate;
// a key that doesn't match is a clear error.
func TestOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	c, err := SelfSignedCertificate(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{ListenTLS: "127.0.0.1:0", TLSCertificate: &loaded})
	creds := s.Credentials("alice")
	if !bytes.Equal(creds.TLSCertSHA256, CertSHA256(c.Certificate[0])) {
		t.Fatal("credentials pin another certificate than the operator's")
	}
	conn, err := tls.Dial("tcp4", s.TLSAddr().String(), pinnedTLS(creds.TLSCertSHA256))
	if err != nil {
		t.Fatal(err)
	}
	if err := newStreamClient(t, conn, s.TLSAddr().String(), creds).allocate(); err != nil {
		t.Fatalf("Allocate over TLS with the operator's certificate: %v", err)
	}

	other, _ := SelfSignedCertificate(nil)
	otherKey, _ := x509.MarshalPKCS8PrivateKey(other.PrivateKey)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCertificate(certFile, keyFile); err == nil {
		t.Fatal("a key that does not match the certificate was accepted")
	}
}
