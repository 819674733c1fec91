package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"
)

// Timing defaults. They are tuned for calls: a call should connect within a
// second when any path works and give up within seconds when none does.
const (
	// DefaultConnectTimeout bounds the time from SetAnswer/Answer to the
	// first working path; past it a call reports SetupTimeout.
	DefaultConnectTimeout = 20 * time.Second

	iceDisconnectedTimeout = 4 * time.Second
	iceFailedTimeout       = 8 * time.Second

	// iceKeepaliveInterval: how often a connected agent wakes up to check
	// its selected pair (consent) and, for the controlling agent, every
	// other pair (renomination, below). 2 s, not 1 s: that halves what
	// renomination's checks cost for the whole call, for about a second
	// more on the relay before a call moves to a direct path that answers
	// late. 2 s is also the longest pion honours: a connected agent wakes
	// at least every 2 s whatever is set here. A path that goes silent is
	// noticed at a wake-up, so ICE fails 12 to 14 s after the last packet.
	iceKeepaliveInterval = 2 * time.Second

	// handshakeGrace bounds how long Close lets a DTLS handshake in
	// progress end, so that the remote hears the DTLS close (see
	// Call.awaitHandshake): the last flight's round trip, or one
	// retransmission of it (pion's flight interval is 1 s) and its round
	// trip.
	handshakeGrace = 2 * time.Second

	// Acceptance waits: how long the controlling agent waits, after checks
	// start, before nominating a pair of the given type. A direct pair that
	// works is nominated at once; a relay pair is accepted after a short
	// wait so a direct pair that is about to succeed still wins. 300 ms,
	// not less: on a busy machine a loopback or LAN check can take over
	// 100 ms, and a call between two nodes side by side then went through
	// the relay (relay fallback costs 420 ms instead of 220 ms: still well
	// inside the 1 s budget, docs/BENCHMARKS.md).
	hostAcceptanceWait  = 0
	srflxAcceptanceWait = 20 * time.Millisecond
	prflxAcceptanceWait = 50 * time.Millisecond
	relayAcceptanceWait = 300 * time.Millisecond

	// renominationInterval: how often, once connected, the controlling
	// agent looks for a better pair than the one it nominated, and at most
	// how often it moves the call (ICE renomination; both ends are pion
	// and take a nomination that carries a higher value). A relay pair
	// accepted after relayAcceptanceWait, because the direct checks were
	// slow or lost (a busy machine, a LAN still resolving addresses), moves
	// to the direct pair once that answers: pion's rule prefers a
	// host-to-host pair to any relay pair, and otherwise needs 10 ms less
	// round-trip time or a clearly better pair before it moves, so a call
	// does not swing between pairs on noise. pion looks only when the
	// agent wakes up (iceKeepaliveInterval), and a pair must have answered
	// a check at one wake-up to be nominated at the next: a direct path
	// that opens carries the call 2 to 4 s later
	// (TestRelayUpgradesToDirect: 2.2-2.3 s; 1.2-1.3 s with a 1 s
	// keepalive).
	//
	// The cost: at each wake-up the controlling agent checks every
	// candidate pair that has not failed, for the whole call, even on a
	// host-to-host pair nothing can beat. That is 28 pairs on the
	// benchmark's LAN, more in the field: every STUN or TURN URL over UDP
	// gathers a server-reflexive candidate on a socket of its own, paired
	// with every remote candidate. BenchmarkConnectivityChecks: 3.1 KB/s
	// of STUN (35 messages a second) with the 2 s keepalive, against
	// 6.2 KB/s with 1 s and 0.18 KB/s without renomination, about as much
	// as the Opus audio. pion (ice v4.4.2, webrtc v4.2.20) has no switch
	// to stop these checks on a host pair: the SettingEngine turns
	// automatic renomination on or off for the agent's life, and while it
	// is on the agent checks every pair at every wake-up, whatever
	// SetICEMaxBindingRequests or renominationInterval say.
	renominationInterval = 1 * time.Second
)

// Payload types and codec parameters the engine offers. Nothing else is
// negotiated: the node passes encoded media through and never transcodes.
const (
	opusPayloadType = 111
	vp8PayloadType  = 96
	opusClockRate   = 48000
	opusChannels    = 2
	vp8ClockRate    = 90000
)

// ICEServer is one STUN or TURN server, as handed to a call. URLs use the
// "stun:host:port", "turn:host:port?transport=udp|tcp" and
// "turns:host:port?transport=tcp" forms.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
	// TLSCertSHA256 pins the certificate of this server's "turns:" URLs
	// (32 bytes; see turntls.go). nil: the system roots decide.
	TLSCertSHA256 []byte
}

// Config configures an Engine. The zero value is valid: host candidates on
// every non-loopback interface of the real network, no STUN or TURN.
type Config struct {
	// ICEServers are the STUN and TURN servers every call uses unless its
	// CallConfig names its own. Default: none.
	ICEServers []ICEServer

	// RelayOnly makes every call use relay candidates only, so the remote
	// never learns a local or public address. Default: false (a call can
	// still ask for it in CallConfig).
	RelayOnly bool

	// Net is the network the engine uses. nil means the operating system's
	// network; tests pass a pion vnet.Net.
	Net transport.Net

	// IPs restricts host candidates to these local addresses. Listing a
	// loopback address makes loopback candidates eligible (tests use
	// 127.0.0.1). Default: every non-loopback address.
	IPs []netip.Addr

	// PortMin and PortMax bound the local UDP ports used for ICE. Both zero
	// means ephemeral ports.
	PortMin, PortMax uint16

	// ConnectTimeout bounds the time from the exchange of offer and answer to
	// a working media path; a call that misses it reports SetupTimeout.
	// Default: DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// Logger receives the engine's and pion's logs. nil discards them.
	Logger *slog.Logger
}

// Engine owns the pion/webrtc API shared by all calls of one node. It is
// safe for concurrent use.
type Engine struct {
	cfg       Config
	api       *webrtc.API
	log       *slog.Logger
	servers   []webrtc.ICEServer
	parseSeen counter
	turnTCP   *turnDialer // dials TURN over TCP and TLS

	// testHookHandshakeWait, when set (by a test, before the engine's
	// first call), runs as Close begins to wait for a call's handshake.
	testHookHandshakeWait func(*Call)

	mu      sync.Mutex
	calls   map[*Call]struct{}
	bridges map[*Bridge]struct{}
	closed  bool
}

// ErrClosed is returned by an Engine or Call that has been closed.
var ErrClosed = errors.New("media: closed")

// NewEngine validates cfg and builds the engine's webrtc API: Opus (48 kHz,
// stereo) and VP8 only, mDNS off, short ICE timeouts, and acceptance waits
// that let a relay pair win quickly when no direct pair works.
func NewEngine(cfg Config) (*Engine, error) {
	if (cfg.PortMin == 0) != (cfg.PortMax == 0) || cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("media: port range %d-%d: set both bounds, min <= max", cfg.PortMin, cfg.PortMax)
	}
	if cfg.ConnectTimeout < 0 {
		return nil, fmt.Errorf("media: negative connect timeout %v", cfg.ConnectTimeout)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	servers, err := toPionServers(cfg.ICEServers)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: opusClockRate, Channels: opusChannels,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: opusPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("media: register opus: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: vp8ClockRate},
		PayloadType:        vp8PayloadType,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("media: register vp8: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("media: interceptors: %w", err)
	}

	se := webrtc.SettingEngine{LoggerFactory: slogFactory{log: log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnectedTimeout, iceFailedTimeout, iceKeepaliveInterval)
	se.SetHostAcceptanceMinWait(hostAcceptanceWait)
	se.SetSrflxAcceptanceMinWait(srflxAcceptanceWait)
	se.SetPrflxAcceptanceMinWait(prflxAcceptanceWait)
	se.SetRelayAcceptanceMinWait(relayAcceptanceWait)
	if err := se.SetICERenomination(webrtc.WithRenominationInterval(renominationInterval)); err != nil {
		return nil, fmt.Errorf("media: renomination: %w", err)
	}
	se.SetSTUNGatherTimeout(3 * time.Second)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	netw := cfg.Net
	if netw == nil {
		if netw, err = newBufferedNet(); err != nil {
			return nil, fmt.Errorf("media: network: %w", err)
		}
	}
	se.SetNet(netw)
	turnTCP := newTURNDialer(netw)
	turnTCP.register(cfg.ICEServers)
	se.SetICEProxyDialer(turnTCP)
	if cfg.PortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("media: port range: %w", err)
		}
	}
	if len(cfg.IPs) > 0 {
		allowed := slices.Clone(cfg.IPs)
		loopback := false
		for i, a := range allowed {
			allowed[i] = a.Unmap()
			loopback = loopback || a.IsLoopback()
		}
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && slices.Contains(allowed, a.Unmap())
		})
		se.SetIncludeLoopbackCandidate(loopback)
	}

	return &Engine{
		cfg:     cfg,
		api:     webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)),
		log:     log,
		servers: servers,
		turnTCP: turnTCP,
		calls:   make(map[*Call]struct{}),
		bridges: make(map[*Bridge]struct{}),
	}, nil
}

// ParseCount reports how many remote SDPs this engine's calls have handed
// to ValidateSDP. A node test uses it to prove that a caller refused by the
// call policy never reached the SDP parser.
func (e *Engine) ParseCount() uint64 { return e.parseSeen.load() }

// Close closes every call and bridge (a bridge ends Closed) and waits for their
// goroutines. It is idempotent; NewCall and NewBridge fail with ErrClosed
// afterwards.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	calls := make([]*Call, 0, len(e.calls))
	for c := range e.calls {
		calls = append(calls, c)
	}
	bridges := make([]*Bridge, 0, len(e.bridges))
	for b := range e.bridges {
		bridges = append(bridges, b)
	}
	e.mu.Unlock()
	for _, c := range calls {
		c.Close()
	}
	for _, b := range bridges {
		b.Close()
	}
	return nil
}

func (e *Engine) forget(c *Call) {
	e.mu.Lock()
	delete(e.calls, c)
	e.mu.Unlock()
}

const (
	maxICEServers  = 8
	maxICEURLs     = 8
	maxICEFieldLen = 512
)

func toPionServers(in []ICEServer) ([]webrtc.ICEServer, error) {
	if len(in) > maxICEServers {
		return nil, fmt.Errorf("media: %d ICE servers, at most %d", len(in), maxICEServers)
	}
	out := make([]webrtc.ICEServer, 0, len(in))
	for i, s := range in {
		if len(s.URLs) == 0 || len(s.URLs) > maxICEURLs {
			return nil, fmt.Errorf("media: ICE server %d: need 1 to %d URLs", i, maxICEURLs)
		}
		if len(s.Username) > maxICEFieldLen || len(s.Credential) > maxICEFieldLen {
			return nil, fmt.Errorf("media: ICE server %d: username or credential too long", i)
		}
		if err := checkTLSPin(s); err != nil {
			return nil, fmt.Errorf("media: ICE server %d: %w", i, err)
		}
		ps := webrtc.ICEServer{URLs: slices.Clone(s.URLs), Username: s.Username, Credential: s.Credential}
		for _, u := range s.URLs {
			if len(u) > maxICEFieldLen {
				return nil, fmt.Errorf("media: ICE server %d: URL too long", i)
			}
			if _, err := ice.ParseURL(u); err != nil {
				return nil, fmt.Errorf("media: ICE server %d: %w", i, err)
			}
		}
		out = append(out, ps)
	}
	return out, nil
}
