package turn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

// Errors from the Server's lifecycle.
var (
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("turn: server already started")
	// ErrClosed means the server was closed.
	ErrClosed = errors.New("turn: server closed")
	// ErrListenTLS means Start could not bind ListenTLS (a privileged
	// port such as 443, say, or one in use).
	ErrListenTLS = errors.New("turn: cannot listen for TLS")
)

// closeTimeout bounds how long Close waits for pion/turn's goroutines to
// notice their sockets are closed.
const closeTimeout = 5 * time.Second

// Server is a TURN relay (RFC 8656 over UDP, optionally TCP, relaying UDP)
// that authenticates clients with short-lived REST-style credentials and
// enforces per-IP and per-user limits. Create it with New, then Start,
// then Close. All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	secret []byte
	log    *slog.Logger
	now    func() time.Time // replaced in tests
	lim    *limiter
	// tlsConf and certPin are set when cfg.ListenTLS is: the listener's
	// configuration and the SHA-256 of its certificate.
	tlsConf *tls.Config
	certPin []byte

	closing   atomic.Bool
	closeOnce sync.Once
	relayed   relayCounters // bytes through the relay sockets (stats.go)

	mu      sync.Mutex // guards the fields below
	started bool
	pion    *pionturn.Server
	udp     []*udpListener
	tcp     *tcpListener
	tls     *tcpListener
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr
	tlsAddr *net.TCPAddr

	tcpMu    sync.Mutex // guards tcpConns and tcpPerIP; never held with mu
	tcpConns map[*tcpConn]struct{}
	tcpPerIP map[netip.Addr]int
	tcpWG    sync.WaitGroup // one per tracked TCP connection
}

// New validates cfg and returns a server that is not yet listening. It
// fails on an invalid field (see Config) and when no random secret can be
// drawn.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	secret := cfg.Secret
	if secret == nil {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("turn: draw secret: %w", err)
		}
	} else {
		secret = append([]byte(nil), secret...)
	}
	cfg.Secret = nil // keep the one copy in s.secret
	log := cfg.Logger
	if log == nil {
		log = discardLogger
	}
	s := &Server{
		cfg:      cfg,
		secret:   secret,
		log:      log.With("component", "turn"),
		now:      time.Now,
		tcpConns: make(map[*tcpConn]struct{}),
		tcpPerIP: make(map[netip.Addr]int),
	}
	s.lim = newLimiter(&s.cfg, func() time.Time { return s.now() })
	if cfg.ListenTLS != "" {
		cert := cfg.TLSCertificate
		if cert == nil {
			c, err := SelfSignedCertificate(cfg.RelayAddress)
			if err != nil {
				return nil, err
			}
			cert = &c
		}
		s.tlsConf = serverTLSConfig(*cert)
		s.certPin = CertSHA256(cert.Certificate[0])
	}
	return s, nil
}

// Start binds the sockets and starts relaying; it returns once the server
// answers requests. ctx bounds the binding only. Start fails if the
// addresses can't be bound, and with ErrStarted or ErrClosed when called
// twice or after Close; on failure everything it opened is closed again.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return ErrClosed
	}
	if s.started {
		return ErrStarted
	}
	s.started = true

	var closers []func() // undone on error, in reverse
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	conns, err := s.listenUDP(ctx, s.cfg.ListenUDP, s.cfg.Listeners)
	if err != nil {
		return fmt.Errorf("turn: listen udp %s: %w", s.cfg.ListenUDP, err)
	}
	for _, c := range conns {
		closers = append(closers, func() { _ = c.Close() })
	}
	udpAddr, ok := conns[0].LocalAddr().(*net.UDPAddr)
	if !ok {
		return fmt.Errorf("turn: listen udp %s: unexpected address type %T", s.cfg.ListenUDP, conns[0].LocalAddr())
	}

	host, _, _ := net.SplitHostPort(s.cfg.ListenUDP) // validated in New
	gen := s.relayGenerator(host)
	perm := func(src net.Addr, peer net.IP) bool { return s.lim.permit(src, peer) }

	pc := make([]pionturn.PacketConnConfig, len(conns))
	udp := make([]*udpListener, len(conns))
	for i, c := range conns {
		udp[i] = &udpListener{PacketConn: c, s: s, done: make(chan struct{})}
		pc[i] = pionturn.PacketConnConfig{PacketConn: udp[i], RelayAddressGenerator: gen, PermissionHandler: perm}
	}

	var lc []pionturn.ListenerConfig
	var tcp *tcpListener
	var tcpAddr *net.TCPAddr
	if s.cfg.ListenTCP != "" {
		ln, err := s.listenTCP(ctx, s.cfg.ListenTCP)
		if err != nil {
			return fmt.Errorf("turn: listen tcp %s: %w", s.cfg.ListenTCP, err)
		}
		closers = append(closers, func() { _ = ln.Close() })
		tcpAddr, _ = ln.Addr().(*net.TCPAddr)
		tcp = &tcpListener{Listener: ln, s: s, done: make(chan struct{})}
		lc = append(lc, pionturn.ListenerConfig{Listener: tcp, RelayAddressGenerator: gen, PermissionHandler: perm})
	}
	var tlsLn *tcpListener
	var tlsAddr *net.TCPAddr
	if s.cfg.ListenTLS != "" {
		ln, err := s.listenTCP(ctx, s.cfg.ListenTLS)
		if err != nil {
			return fmt.Errorf("%w on %s: %w", ErrListenTLS, s.cfg.ListenTLS, err)
		}
		closers = append(closers, func() { _ = ln.Close() })
		tlsAddr, _ = ln.Addr().(*net.TCPAddr)
		tlsLn = &tcpListener{Listener: ln, s: s, tls: s.tlsConf, done: make(chan struct{})}
		lc = append(lc, pionturn.ListenerConfig{Listener: tlsLn, RelayAddressGenerator: gen, PermissionHandler: perm})
	}

	srv, err := pionturn.NewServer(pionturn.ServerConfig{
		PacketConnConfigs:  pc,
		ListenerConfigs:    lc,
		LoggerFactory:      pionLoggerFactory{log: s.log},
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quota,
		EventHandler:       s.events(),
		AllocationLifetime: s.cfg.AllocationLifetime,
	})
	if err != nil {
		return fmt.Errorf("turn: start: %w", err)
	}
	s.pion, s.udp, s.tcp, s.tls = srv, udp, tcp, tlsLn
	s.udpAddr, s.tcpAddr, s.tlsAddr = udpAddr, tcpAddr, tlsAddr
	s.log.Info("turn: listening", "udp", udpAddr.String(), "sockets", len(conns),
		"tcp", tcpAddrString(tcpAddr), "tls", tcpAddrString(tlsAddr), "relay_ip", s.cfg.RelayAddress.String())
	return nil
}

func tcpAddrString(a *net.TCPAddr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Close stops the server: it closes the listeners, every TCP connection and
// every allocation's relay socket, and waits (up to 5 s) for the goroutines
// pion/turn runs for them to end. It is idempotent; concurrent calls all
// wait for the first to finish. It returns an error only if pion/turn
// failed to close a socket.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.doClose() })
	return err
}

func (s *Server) doClose() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pion == nil {
		return nil // never started, or Start failed and cleaned up
	}
	err := s.pion.Close() // closes the UDP and TCP listeners
	s.killAllTCP()

	deadline := time.NewTimer(closeTimeout)
	defer deadline.Stop()
	for _, l := range s.udp {
		select {
		case <-l.done:
		case <-deadline.C:
			return errors.Join(err, errors.New("turn: close: udp reader did not stop"))
		}
	}
	for _, l := range []*tcpListener{s.tcp, s.tls} {
		if l == nil {
			continue
		}
		select {
		case <-l.done:
		case <-deadline.C:
			return errors.Join(err, errors.New("turn: close: tcp listener did not stop"))
		}
	}
	tcpDone := make(chan struct{})
	go func() { s.tcpWG.Wait(); close(tcpDone) }()
	select {
	case <-tcpDone:
	case <-deadline.C:
		return errors.Join(err, errors.New("turn: close: tcp connections did not stop"))
	}
	// Each allocation's relay goroutine reports its deletion as its last
	// act; pion offers no other way to wait for it.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s.lim.live() > 0 || s.pion.AllocationCount() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return errors.Join(err, errors.New("turn: close: allocations did not stop"))
		}
	}
	if err != nil {
		return fmt.Errorf("turn: close: %w", err)
	}
	return nil
}

// Addr returns the bound UDP address (port 0 resolved), or nil before Start.
func (s *Server) Addr() *net.UDPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udpAddr == nil {
		return nil
	}
	a := *s.udpAddr
	return &a
}

// TCPAddr returns the bound TCP address, or nil before Start or without
// ListenTCP.
func (s *Server) TCPAddr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcpAddr == nil {
		return nil
	}
	a := *s.tcpAddr
	return &a
}

// TLSAddr returns the bound TURN-over-TLS address, or nil before Start or
// without ListenTLS.
func (s *Server) TLSAddr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsAddr == nil {
		return nil
	}
	a := *s.tlsAddr
	return &a
}

// TLSCertSHA256 is the SHA-256 of the TLS listener's certificate, or nil
// without ListenTLS.
func (s *Server) TLSCertSHA256() []byte {
	return append([]byte(nil), s.certPin...)
}

// URLs returns the TURN URLs to announce, "turn:<RelayAddress>:<port>?transport=udp"
// and, with ListenTCP, the matching "?transport=tcp" one, and with
// ListenTLS "turns:<RelayAddress>:<port>?transport=tcp". It returns nil
// before Start.
func (s *Server) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udpAddr == nil {
		return nil
	}
	host := s.cfg.RelayAddress.String()
	urls := []string{"turn:" + net.JoinHostPort(host, strconv.Itoa(s.udpAddr.Port)) + "?transport=udp"}
	if s.tcpAddr != nil {
		urls = append(urls, "turn:"+net.JoinHostPort(host, strconv.Itoa(s.tcpAddr.Port))+"?transport=tcp")
	}
	if s.tlsAddr != nil {
		urls = append(urls, "turns:"+net.JoinHostPort(host, strconv.Itoa(s.tlsAddr.Port))+"?transport=tcp")
	}
	return urls
}

// Allocations returns the number of live allocations.
func (s *Server) Allocations() int {
	return s.lim.live()
}

// Stats is what a server holds and the limits it holds it to, for status
// pages.
type Stats struct {
	Allocations           int           // live allocations
	TCPConns              int           // open TURN-over-TCP and -TLS connections
	MaxAllocations        int           // Config.MaxAllocations
	MaxAllocationsPerIP   int           // Config.MaxAllocationsPerIP
	MaxAllocationsPerUser int           // Config.MaxAllocationsPerUser
	AllocationLifetime    time.Duration // Config.AllocationLifetime
	URLs                  []string      // as URLs returns them
	// Bytes of UDP payload the relay sockets carried since Start: sent to
	// peers (the clients' data), and received from peers (relayed on to
	// the clients, or dropped when the peer has no permission).
	RelayedToPeers, RelayedFromPeers uint64
}

// Stats returns the server's current figures and its limits.
func (s *Server) Stats() Stats {
	s.tcpMu.Lock()
	tcp := len(s.tcpConns)
	s.tcpMu.Unlock()
	return Stats{
		Allocations:           s.lim.live(),
		TCPConns:              tcp,
		MaxAllocations:        s.cfg.MaxAllocations,
		MaxAllocationsPerIP:   s.cfg.MaxAllocationsPerIP,
		MaxAllocationsPerUser: s.cfg.MaxAllocationsPerUser,
		AllocationLifetime:    s.cfg.AllocationLifetime,
		URLs:                  s.URLs(),
		RelayedToPeers:        s.relayed.toPeers.Load(),
		RelayedFromPeers:      s.relayed.fromPeers.Load(),
	}
}

// authenticate is pion's AuthHandler. It returns the key pion checks the
// request's MESSAGE-INTEGRITY with (the comparison is pion/stun's
// hmac.Equal, constant time), so a forged password fails there. New
// allocations need an unexpired, not far-future username; other requests
// (which only act on the allocation the same user id created) also accept
// an authentic username up to RefreshGrace past its expiry. The password
// and key are never logged.
func (s *Server) authenticate(ra *pionturn.RequestAttributes) (userID string, key []byte, ok bool) {
	refuse := func(err error) (string, []byte, bool) {
		s.log.Debug("turn: auth refused", "reason", err.Error(), "src", addrString(ra.SrcAddr),
			"method", ra.Method.String())
		return "", nil, false
	}
	if ra.Realm != s.cfg.Realm {
		return refuse(ErrWrongRealm)
	}
	expiry, user, err := parseUsername(ra.Username)
	if err != nil {
		return refuse(err)
	}
	now := s.now()
	if err := checkExpiry(expiry, now, s.cfg.CredentialTTL); err != nil {
		inGrace := errors.Is(err, ErrExpired) && ra.Method != stun.MethodAllocate &&
			now.Unix()-expiry <= int64(s.cfg.RefreshGrace/time.Second)
		if !inGrace {
			return refuse(err)
		}
	}
	password := restPassword(s.secret, ra.Username)
	return user, pionturn.GenerateAuthKey(ra.Username, s.cfg.Realm, password), true
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// quota is pion's QuotaHandler, called for an authenticated Allocate.
func (s *Server) quota(userID, _ string, src net.Addr) bool {
	if reason := s.lim.reserve(userID, src); reason != "" {
		s.log.Debug("turn: allocation refused", "reason", reason, "src", addrString(src), "user", userID)
		return false
	}
	return true
}

// events are pion's lifecycle callbacks, feeding the limiter.
func (s *Server) events() pionturn.EventHandler {
	return pionturn.EventHandler{
		OnAllocationCreated: func(src, _ net.Addr, _, userID, _ string, relay net.Addr, _ int) {
			s.lim.created(src, userID)
			s.log.Debug("turn: allocation created", "src", addrString(src), "user", userID, "relay", addrString(relay))
		},
		OnAllocationDeleted: func(src, _ net.Addr, _, userID, _ string) {
			s.lim.deleted(src)
			s.log.Debug("turn: allocation deleted", "src", addrString(src), "user", userID)
		},
		OnAllocationError: func(src, _ net.Addr, _, _ string) {
			s.lim.failed(src)
		},
		OnPermissionDeleted: func(src, _ net.Addr, _, _, _ string, _ net.Addr, peer net.IP) {
			s.lim.permissionDeleted(src, peer)
		},
		OnChannelCreated: func(src, _ net.Addr, _, _, _ string, _, _ net.Addr, number uint16) {
			if !s.lim.channelCreated(src, number) {
				// Only reachable over TCP, where requests can't be screened:
				// end the connection and with it the allocation.
				s.log.Debug("turn: channel limit exceeded, closing connection", "src", addrString(src))
				s.killTCP(src)
			}
		},
		OnChannelDeleted: func(src, _ net.Addr, _, _, _ string, _, _ net.Addr, number uint16) {
			s.lim.channelDeleted(src, number)
		},
	}
}

// errRelayRefused is returned to pion for relay sockets we don't hand out.
var errRelayRefused = errors.New("turn: relay of this kind is not offered")

// relayGen wraps pion's address generators: it tunes relay socket buffers
// and refuses TCP relays (RFC 6062: calls don't need them, and they let
// clients open TCP connections from the server). EVEN-PORT requests (used
// by RTP/RTCP pairs, and by coturn's uclient) are served: pion probes for a
// free even port with up to 128 bind/close pairs after authenticating the
// request, inside the port range when one is set.
type relayGen struct {
	inner   pionturn.RelayAddressGenerator
	buffer  int
	counted *relayCounters
}

func (s *Server) relayGenerator(listenHost string) *relayGen {
	var inner pionturn.RelayAddressGenerator
	if s.cfg.RelayPortMin != 0 {
		inner = &pionturn.RelayAddressGeneratorPortRange{
			RelayAddress: s.cfg.RelayAddress,
			MinPort:      s.cfg.RelayPortMin,
			MaxPort:      s.cfg.RelayPortMax,
			MaxRetries:   32,
			Address:      listenHost,
			Net:          s.cfg.Net,
		}
	} else {
		inner = &pionturn.RelayAddressGeneratorStatic{
			RelayAddress: s.cfg.RelayAddress,
			Address:      listenHost,
			Net:          s.cfg.Net,
		}
	}
	return &relayGen{inner: inner, buffer: s.cfg.SocketBuffer, counted: &s.relayed}
}

func (g *relayGen) Validate() error { return g.inner.Validate() }

func (g *relayGen) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	c, addr, err := g.inner.AllocatePacketConn(conf)
	if err != nil {
		return nil, nil, err
	}
	tuneSocket(c, g.buffer)
	return countingConn{PacketConn: c, c: g.counted}, addr, nil
}

func (g *relayGen) AllocateListener(pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errRelayRefused
}

func (g *relayGen) AllocateConn(pionturn.AllocateConnConfig) (net.Conn, error) {
	return nil, errRelayRefused
}
