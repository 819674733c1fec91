package turn

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSecret is the HMAC secret of test servers.
var testSecret = []byte("0123456789abcdef")

// startServer starts a server on 127.0.0.1:0 with loopback peers allowed
// (the test peers live on loopback) and closes it at the end of the test.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.ListenUDP == "" {
		cfg.ListenUDP = "127.0.0.1:0"
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	cfg.AllowLoopbackPeers = true
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testClient is a pion TURN client on its own UDP socket.
type testClient struct {
	*pionturn.Client
	conn  net.PacketConn
	relay net.PacketConn
}

// newClient creates a pion client bound to localIP:0 talking to s with the
// given credentials. It is closed at the end of the test (the socket first,
// so closing the allocation doesn't wait on a server that's gone).
func newClient(t *testing.T, s *Server, localIP, username, password string) *testClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(localIP, "0"))
	if err != nil {
		t.Fatalf("client listen: %v", err)
	}
	c, err := newPionClient(s, conn, Credentials{Username: username, Password: password})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	tc := &testClient{Client: c, conn: conn}
	t.Cleanup(tc.close)
	return tc
}

// newPionClient makes a pion TURN client for s on conn and starts its
// reader.
func newPionClient(s *Server, conn net.PacketConn, creds Credentials) (*pionturn.Client, error) {
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: s.Addr().String(),
		STUNServerAddr: s.Addr().String(),
		Conn:           conn,
		Username:       creds.Username,
		Password:       creds.Password,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  pionLoggerFactory{log: discardLogger},
	})
	if err != nil {
		return nil, err
	}
	if err := c.Listen(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *testClient) allocate() error {
	relay, err := c.Allocate()
	if err != nil {
		return err
	}
	c.relay = relay
	return nil
}

func (c *testClient) close() {
	_ = c.conn.Close()
	if c.relay != nil {
		_ = c.relay.Close()
	}
	c.Client.Close()
}

// turnCode returns the TURN error code in err, or 0.
func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// listenPeer opens a UDP socket standing for the remote call party.
func listenPeer(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("peer listen: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip relays one datagram client→peer and one peer→client through
// the allocation and checks both arrive intact from the right addresses.
func roundTrip(t *testing.T, c *testClient, peer *net.UDPConn, payload string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1600)
	// The first datagrams may race the CreatePermission the client sends
	// for them; resend until one arrives.
	var from net.Addr
	for {
		if _, err := c.relay.WriteTo([]byte(payload), peer.LocalAddr()); err != nil {
			t.Fatalf("relay write: %v", err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, addr, err := peer.ReadFrom(buf)
		if err == nil {
			if got := string(buf[:n]); got != payload {
				t.Fatalf("peer got %q, want %q", got, payload)
			}
			from = addr
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer never received relayed data: %v", err)
		}
	}
	if from.String() != c.relay.LocalAddr().String() {
		t.Fatalf("peer saw data from %v, want the relay address %v", from, c.relay.LocalAddr())
	}
	reply := "re:" + payload
	if _, err := peer.WriteTo([]byte(reply), from); err != nil {
		t.Fatalf("peer write: %v", err)
	}
	_ = c.relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := c.relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("client read relayed reply: %v", err)
	}
	if got := string(buf[:n]); got != reply || src.String() != peer.LocalAddr().String() {
		t.Fatalf("client got %q from %v, want %q from %v", got, src, reply, peer.LocalAddr())
	}
}

// rawClient speaks STUN by hand, for requests pion's client can't make
// (a foreign realm, channel binds with chosen numbers).
type rawClient struct {
	t      *testing.T
	conn   net.PacketConn
	server net.Addr
	nonce  stun.Nonce
	realm  string
	user   string
	pass   string
}

func newRawClient(t *testing.T, s *Server, user, pass, realm string) *rawClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("raw listen: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, server: s.Addr(), user: user, pass: pass, realm: realm}
}

// do sends a request and returns the response with the same transaction id.
func (r *rawClient) do(setters ...stun.Setter) *stun.Message {
	r.t.Helper()
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	if err != nil {
		r.t.Fatalf("build: %v", err)
	}
	buf := make([]byte, 1600)
	for attempt := 0; attempt < 10; attempt++ {
		if _, err := r.conn.WriteTo(req.Raw, r.server); err != nil {
			r.t.Fatalf("raw write: %v", err)
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, _, err := r.conn.ReadFrom(buf)
			if err != nil {
				break // retransmit
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() == nil && res.TransactionID == req.TransactionID {
				return res
			}
		}
	}
	r.t.Fatalf("no response to %v", req.Type)
	return nil
}

// authed sends an authenticated request, fetching a nonce first if needed.
func (r *rawClient) authed(typ stun.MessageType, attrs ...stun.Setter) *stun.Message {
	r.t.Helper()
	if r.nonce == nil {
		res := r.do(stun.NewType(stun.MethodAllocate, stun.ClassRequest),
			requestedUDP{})
		if err := r.nonce.GetFrom(res); err != nil {
			r.t.Fatalf("no nonce in %v: %v", res.Type, err)
		}
	}
	setters := append([]stun.Setter{typ}, attrs...)
	setters = append(setters,
		stun.NewUsername(r.user), stun.NewRealm(r.realm), r.nonce,
		stun.NewLongTermIntegrity(r.user, r.realm, r.pass), stun.Fingerprint)
	return r.do(setters...)
}

// requestedUDP is the REQUESTED-TRANSPORT attribute asking for UDP.
type requestedUDP struct{}

func (requestedUDP) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedTransport, []byte{17, 0, 0, 0})
	return nil
}

// errorCode returns a response's error code, or 0 for a success response.
func errorCode(t *testing.T, m *stun.Message) int {
	t.Helper()
	if m.Type.Class == stun.ClassSuccessResponse {
		return 0
	}
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(m); err != nil {
		t.Fatalf("%v without ERROR-CODE: %v", m.Type, err)
	}
	return int(ec.Code)
}
