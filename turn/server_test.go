package turn

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/callsign/callsign/internal/check"
)

func TestRelayRoundTrip(t *testing.T) {
	for _, listeners := range []int{1, 2} {
		t.Run(fmt.Sprintf("listeners=%d", listeners), func(t *testing.T) {
			s := startServer(t, Config{Listeners: listeners})
			creds := s.Credentials("alice")
			c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
			if err := c.allocate(); err != nil {
				t.Fatalf("Allocate with issued credentials: %v", err)
			}
			relay := c.relay.LocalAddr().(*net.UDPAddr)
			if !relay.IP.Equal(net.IPv4(127, 0, 0, 1)) || relay.Port == 0 {
				t.Fatalf("relay address %v, want 127.0.0.1:<port>", relay)
			}
			peer := listenPeer(t, "127.0.0.1")
			for i := range 3 {
				roundTrip(t, c, peer, "hello "+strconv.Itoa(i))
			}
			if n := s.Allocations(); n != 1 {
				t.Fatalf("Allocations() = %d, want 1", n)
			}
		})
	}
}

func TestRelayPortRange(t *testing.T) {
	// Find a free window of ports, then bind relays inside it.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	base := probe.LocalAddr().(*net.UDPAddr).Port
	_ = probe.Close()
	lo, hi := uint16(base), uint16(min(base+20, 65535))
	s := startServer(t, Config{RelayPortMin: lo, RelayPortMax: hi})
	for i := range 3 {
		creds := s.Credentials("user" + strconv.Itoa(i))
		c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
		if err := c.allocate(); err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		port := uint16(c.relay.LocalAddr().(*net.UDPAddr).Port)
		if port < lo || port > hi {
			t.Fatalf("relay port %d outside %d-%d", port, lo, hi)
		}
	}
}

func TestURLsAndCredentialsJSON(t *testing.T) {
	s := startServer(t, Config{ListenTCP: "127.0.0.1:0"})
	port := s.Addr().Port
	want := []string{
		"turn:127.0.0.1:" + strconv.Itoa(port) + "?transport=udp",
		"turn:127.0.0.1:" + strconv.Itoa(s.TCPAddr().Port) + "?transport=tcp",
	}
	if got := s.URLs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("URLs() = %q, want %q", got, want)
	}
	before := time.Now()
	creds := s.Credentials("12D3KooWPeer")
	b, err := json.Marshal(creds)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"username", "password", "expires", "urls"} {
		if _, ok := back[k]; !ok {
			t.Fatalf("JSON %s lacks %q", b, k)
		}
	}
	if !strings.HasSuffix(creds.Username, ":12D3KooWPeer") {
		t.Fatalf("username %q does not carry the user id", creds.Username)
	}
	ttl := creds.Expires.Sub(before)
	if ttl < DefaultCredentialTTL-2*time.Second || ttl > DefaultCredentialTTL {
		t.Fatalf("credentials valid for %v, want about %v", ttl, DefaultCredentialTTL)
	}
	if user, err := s.Verify(creds.Username, creds.Password); err != nil || user != "12D3KooWPeer" {
		t.Fatalf("Verify(issued) = %q, %v", user, err)
	}
}

func TestAllocateRefusesBadCredentials(t *testing.T) {
	s := startServer(t, Config{})
	now := time.Now().Unix()
	signed := func(username string) (string, string) { return username, restPassword(testSecret, username) }
	other, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: []byte("another secret, 16+ bytes")})
	if err != nil {
		t.Fatal(err)
	}
	otherCreds := other.Credentials("alice")
	cases := []struct {
		name, user, pass string
	}{
		{"forged password", s.Credentials("alice").Username, "bm90IHRoZSByaWdodCBwYXNzd29yZA=="},
		{"other server's secret", otherCreds.Username, otherCreds.Password},
	}
	for _, bad := range []struct{ name, username string }{
		{"expired", fmt.Sprintf("%d:alice", now-5)},
		{"far future", fmt.Sprintf("%d:alice", now+86400)},
		{"no expiry", "alice"},
		{"non-numeric expiry", "soon:alice"},
		{"empty user", fmt.Sprintf("%d:", now+60)},
	} {
		u, p := signed(bad.username)
		cases = append(cases, struct{ name, user, pass string }{bad.name, u, p})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s, "127.0.0.1", tc.user, tc.pass)
			err := c.allocate()
			if err == nil {
				t.Fatalf("Allocate succeeded with %s credentials", tc.name)
			}
			if code := turnCode(err); code != codeOf(stun.CodeBadRequest) && code != 401 {
				t.Fatalf("Allocate error = %v, want a 400/401 refusal", err)
			}
		})
	}
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations exist after refused requests", n)
	}
}

// Code returns an error code as an int (stun.ErrorCode is a uint16 type).
func codeOf(c stun.ErrorCode) int { return int(c) }

func TestAllocateRefusesWrongRealm(t *testing.T) {
	s := startServer(t, Config{})
	creds := s.Credentials("alice")

	wrong := newRawClient(t, s, creds.Username, creds.Password, "evil.example")
	if code := errorCode(t, wrong.authed(stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP{})); code != codeOf(stun.CodeBadRequest) {
		t.Fatalf("allocate in a foreign realm: code %d, want 400", code)
	}
	// The same request in the server's realm works, so the refusal above
	// is about the realm.
	right := newRawClient(t, s, creds.Username, creds.Password, DefaultRealm)
	if code := errorCode(t, right.authed(stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedUDP{})); code != 0 {
		t.Fatalf("allocate in the server's realm: code %d, want success", code)
	}
}

func TestAuthenticateGraceForExistingAllocations(t *testing.T) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := fmt.Sprintf("%d:alice", now.Add(-time.Hour).Unix())
	tooOld := fmt.Sprintf("%d:alice", now.Add(-DefaultRefreshGrace-time.Minute).Unix())
	cases := []struct {
		username string
		method   stun.Method
		realm    string
		ok       bool
	}{
		{expired, stun.MethodAllocate, DefaultRealm, false},
		{expired, stun.MethodRefresh, DefaultRealm, true},
		{expired, stun.MethodChannelBind, DefaultRealm, true},
		{expired, stun.MethodCreatePermission, "other", false},
		{tooOld, stun.MethodRefresh, DefaultRealm, false},
	}
	for _, tc := range cases {
		user, key, ok := s.authenticate(&pionturn.RequestAttributes{
			Username: tc.username, Realm: tc.realm, Method: tc.method,
			SrcAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
		})
		if ok != tc.ok {
			t.Fatalf("authenticate(%s, %v, realm %s) ok = %v, want %v", tc.username, tc.method, tc.realm, ok, tc.ok)
		}
		if ok {
			want := pionturn.GenerateAuthKey(tc.username, DefaultRealm, restPassword(testSecret, tc.username))
			if user != "alice" || string(key) != string(want) {
				t.Fatalf("authenticate returned user %q and a key that does not match the password", user)
			}
		}
	}
}

func TestAllocationLimits(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		sameUsr bool
		tries   int
		want    int
	}{
		{"rate", Config{AllocationBurst: 3, AllocationRate: 0.001}, false, 8, 3},
		{"per IP", Config{MaxAllocationsPerIP: 2}, false, 6, 2},
		{"per user", Config{MaxAllocationsPerUser: 2}, true, 6, 2},
		{"total", Config{MaxAllocations: 3}, false, 6, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.cfg)
			ok, quota := 0, 0
			for i := range tc.tries {
				user := "user" + strconv.Itoa(i)
				if tc.sameUsr {
					user = "mallory"
				}
				creds := s.Credentials(user)
				c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
				switch err := c.allocate(); {
				case err == nil:
					ok++
				case turnCode(err) == codeOf(stun.CodeAllocQuotaReached):
					quota++
				default:
					t.Fatalf("allocation %d: unexpected error %v", i, err)
				}
			}
			if ok != tc.want || quota != tc.tries-tc.want {
				t.Fatalf("%d allocated, %d refused with 486; want %d and %d", ok, quota, tc.want, tc.tries-tc.want)
			}
			if n := s.Allocations(); n != tc.want {
				t.Fatalf("server holds %d allocations, want %d", n, tc.want)
			}
		})
	}
}

// TestFloodKeepsServingHonestClient floods the server from 127.0.0.2 with
// concurrent allocations and junk datagrams while an honest client on
// 127.0.0.3 allocates and relays.
func TestFloodKeepsServingHonestClient(t *testing.T) {
	s := startServer(t, Config{MaxAllocationsPerIP: 4, AllocationBurst: 6, AllocationRate: 1})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Junk: garbage, truncated STUN headers, ChannelData for unbound channels.
	junk, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (Linux routes all of 127/8 to lo): %v", err)
	}
	defer junk.Close()
	wg.Go(func() {
		pkts := [][]byte{
			[]byte("garbage garbage garbage"),
			{0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42},
			{0x00, 0x09, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4},
			make([]byte, 1700),
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = junk.WriteTo(pkts[i%len(pkts)], s.Addr())
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})

	const attackers = 40
	var mu sync.Mutex
	ok, refused := 0, 0
	flooders := make([]*testClient, attackers)
	for i := range flooders {
		creds := s.Credentials("flood" + strconv.Itoa(i))
		flooders[i] = newClient(t, s, "127.0.0.2", creds.Username, creds.Password)
	}
	for _, c := range flooders {
		wg.Go(func() {
			err := c.allocate()
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if turnCode(err) == codeOf(stun.CodeAllocQuotaReached) {
				refused++
			}
		})
	}

	creds := s.Credentials("honest")
	honest := newClient(t, s, "127.0.0.3", creds.Username, creds.Password)
	if err := honest.allocate(); err != nil {
		t.Fatalf("honest client could not allocate during the flood: %v", err)
	}
	peer := listenPeer(t, "127.0.0.1")
	for i := range 20 {
		roundTrip(t, honest, peer, "during flood "+strconv.Itoa(i))
	}
	close(stop)
	wg.Wait()

	if ok > 4 {
		t.Fatalf("flooder got %d allocations, want at most the per-IP limit 4", ok)
	}
	if ok+refused != attackers {
		t.Fatalf("flooder: %d allocated + %d refused with 486 != %d attempts", ok, refused, attackers)
	}
	if n := s.Allocations(); n != ok+1 {
		t.Fatalf("server holds %d allocations, want %d", n, ok+1)
	}
}

func TestPermissionLimitsAndPeerFilter(t *testing.T) {
	s := startServer(t, Config{MaxPermissionsPerAllocation: 2})
	creds := s.Credentials("alice")
	c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
	if err := c.allocate(); err != nil {
		t.Fatal(err)
	}
	peer := func(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 9} }
	if err := c.CreatePermission(peer("127.0.0.5"), peer("127.0.0.6")); err != nil {
		t.Fatalf("two permissions under a cap of 2: %v", err)
	}
	if err := c.CreatePermission(peer("127.0.0.5")); err != nil {
		t.Fatalf("refreshing a permission at the cap: %v", err)
	}
	if err := c.CreatePermission(peer("127.0.0.7")); err == nil {
		t.Fatal("a third peer IP was permitted over the cap of 2")
	}

	// A public server (the default) refuses loopback and multicast peers
	// but not ordinary addresses.
	pub, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	creds = pub.Credentials("bob")
	pc := newClient(t, pub, "127.0.0.1", creds.Username, creds.Password)
	if err := pc.allocate(); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.1", "0.0.0.0", "224.0.0.1"} {
		if err := pc.CreatePermission(peer(ip)); err == nil {
			t.Fatalf("public server permitted peer %s", ip)
		}
	}
	if err := pc.CreatePermission(peer("192.0.2.10")); err != nil {
		t.Fatalf("public server refused an ordinary peer: %v", err)
	}
}

func TestChannelLimit(t *testing.T) {
	s := startServer(t, Config{MaxChannelsPerAllocation: 2})
	creds := s.Credentials("alice")
	r := newRawClient(t, s, creds.Username, creds.Password, DefaultRealm)
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	if code := errorCode(t, r.authed(allocate, requestedUDP{})); code != 0 {
		t.Fatalf("allocate: code %d", code)
	}
	bind := func(number uint16, port int) int {
		ch := make([]byte, 4)
		binary.BigEndian.PutUint16(ch, number)
		return errorCode(t, r.authed(stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
			rawAttr{stun.AttrChannelNumber, ch},
			xorPeer{net.IPv4(127, 0, 0, 9), port}))
	}
	if code := bind(0x4000, 1000); code != 0 {
		t.Fatalf("first channel: code %d", code)
	}
	if code := bind(0x4001, 1001); code != 0 {
		t.Fatalf("second channel: code %d", code)
	}
	if code := bind(0x4002, 1002); code != codeOf(stun.CodeInsufficientCapacity) {
		t.Fatalf("third channel over the cap: code %d, want 508", code)
	}
	if code := bind(0x4000, 1000); code != 0 {
		t.Fatalf("refreshing a bound channel at the cap: code %d", code)
	}
}

// rawAttr adds an attribute with fixed bytes.
type rawAttr struct {
	typ stun.AttrType
	v   []byte
}

func (a rawAttr) AddTo(m *stun.Message) error { m.Add(a.typ, a.v); return nil }

// xorPeer is an XOR-PEER-ADDRESS attribute (encoded like XOR-MAPPED-ADDRESS).
type xorPeer struct {
	ip   net.IP
	port int
}

func (p xorPeer) AddTo(m *stun.Message) error {
	return (&stun.XORMappedAddress{IP: p.ip, Port: p.port}).AddToAs(m, stun.AttrXORPeerAddress)
}

func TestTCPRelay(t *testing.T) {
	s := startServer(t, Config{ListenTCP: "127.0.0.1:0"})
	tcp, err := net.DialTCP("tcp4", nil, s.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	tc := newStreamClient(t, tcp, s.TCPAddr().String(), s.Credentials("alice"))
	if err := tc.allocate(); err != nil {
		t.Fatalf("Allocate over TCP: %v", err)
	}
	roundTrip(t, tc, listenPeer(t, "127.0.0.1"), "over tcp")
}

func TestCloseReleasesEverything(t *testing.T) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0", Secret: testSecret,
		AllowLoopbackPeers: true, Listeners: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	creds := s.Credentials("alice")
	c := newClient(t, s, "127.0.0.1", creds.Username, creds.Password)
	if err := c.allocate(); err != nil {
		t.Fatal(err)
	}
	relayPort := c.relay.LocalAddr().(*net.UDPAddr).Port
	// An idle TCP connection too.
	idle, err := net.DialTCP("tcp4", nil, s.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	check.Until(t, 5*time.Second, "one TCP connection held", func() bool { s.tcpMu.Lock(); defer s.tcpMu.Unlock(); return len(s.tcpConns) == 1 })

	var wg sync.WaitGroup
	for range 3 { // concurrent and repeated Close calls all succeed
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations after Close", n)
	}
	// The listener and relay ports are free again.
	for _, a := range []string{s.Addr().String(), "127.0.0.1:" + strconv.Itoa(relayPort)} {
		pc, err := net.ListenPacket("udp4", a)
		if err != nil {
			t.Fatalf("port %s still bound after Close: %v", a, err)
		}
		_ = pc.Close()
	}
	// The idle TCP connection was closed by the server.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle TCP connection still open after Close: %v", err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	if s.Addr() != nil || s.URLs() != nil {
		t.Fatal("unstarted server reports an address")
	}
}

func TestStartTwice(t *testing.T) {
	s := startServer(t, Config{})
	if err := s.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{ListenUDP: "0.0.0.0:3478"},                         // no RelayAddress
		{ListenUDP: "nonsense"},                             // no port
		{ListenUDP: "127.0.0.1:0", Secret: []byte("short")}, // short secret
		{ListenUDP: "127.0.0.1:0", RelayPortMin: 5000},      // half a range
		{ListenUDP: "127.0.0.1:0", RelayPortMin: 6000, RelayPortMax: 5000},
		{ListenUDP: "127.0.0.1:0", MaxAllocationsPerIP: -1},
		{ListenUDP: "127.0.0.1:0", RelayAddress: net.IPv4zero},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
	s, err := New(Config{ListenUDP: "0.0.0.0:0", RelayAddress: net.IPv4(192, 0, 2, 1)})
	if err != nil {
		t.Fatalf("New with RelayAddress on 0.0.0.0: %v", err)
	}
	if s.cfg.Realm != DefaultRealm || s.cfg.CredentialTTL != DefaultCredentialTTL || len(s.secret) != 32 {
		t.Fatalf("defaults not applied: realm %q ttl %v secret %d bytes", s.cfg.Realm, s.cfg.CredentialTTL, len(s.secret))
	}
}

// TestPortPairReservationAcrossSockets reserves an RTP/RTCP port pair the
// way coturn's uclient does (EVEN-PORT from one client socket, then
// RESERVATION-TOKEN from another of the same host) against a server reading
// several SO_REUSEPORT sockets: the kernel must route both to the socket
// holding the reservation.
func TestPortPairReservationAcrossSockets(t *testing.T) {
	s := startServer(t, Config{Listeners: 4, AllocationBurst: 100, MaxAllocationsPerIP: 100})
	if reusePortSupported && len(s.udp) != 4 {
		t.Fatalf("server reads %d sockets, want 4", len(s.udp))
	}
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	for i := range 6 {
		creds := s.Credentials("rtp" + strconv.Itoa(i))
		rtp := newRawClient(t, s, creds.Username, creds.Password, DefaultRealm)
		res := rtp.authed(allocate, requestedUDP{}, rawAttr{stun.AttrEvenPort, []byte{0x80}})
		if code := errorCode(t, res); code != 0 {
			t.Fatalf("EVEN-PORT allocate: code %d", code)
		}
		token, err := res.Get(stun.AttrReservationToken)
		if err != nil {
			t.Fatalf("no RESERVATION-TOKEN: %v", err)
		}
		var relayed stun.XORMappedAddress
		if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
			t.Fatal(err)
		}
		rtcp := newRawClient(t, s, creds.Username, creds.Password, DefaultRealm)
		res = rtcp.authed(allocate, requestedUDP{}, rawAttr{stun.AttrReservationToken, token})
		if code := errorCode(t, res); code != 0 {
			t.Fatalf("pair %d: RESERVATION-TOKEN allocate from a second socket: code %d", i, code)
		}
		var relayed2 stun.XORMappedAddress
		if err := relayed2.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
			t.Fatal(err)
		}
		if relayed.Port%2 != 0 || relayed2.Port != relayed.Port+1 {
			t.Fatalf("pair %d: relay ports %d and %d, want an even port and the next", i, relayed.Port, relayed2.Port)
		}
	}
}
