// Package node is callsign's composition root: it builds and wires the store,
// the libp2p host, the DHT address book, messaging, calls and the local API,
// owns their lifecycle (New, Start, Close), and holds the policies (who may
// reach us, through the contacts book; when to republish; which relays and
// mailboxes to use). What the local API does is node/backend's: the node
// hands it the services it needs and answers only for its own state (ID,
// Status, Peers, Handles, Claim: status.go).
//
// Only cmd/callsign and tests import node. It must not know wire encodings
// or the store's key layout: it talks to each package through its typed API.
package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/node/backend"
	"github.com/callsign/callsign/store"
)

// Version is the node's version string, shown by `callsign status`.
var Version = "0.1.0-dev"

// DefaultAPIAddr is where the local API listens when Config.APIAddr is
// empty. If the port is taken (another node on this machine), the node falls
// back to an ephemeral port and says so; every CLI command finds it through
// the data directory anyway.
const DefaultAPIAddr = "127.0.0.1:4142"

// Config configures a Node. The zero value of every field but DataDir means
// its default.
type Config struct {
	// DataDir holds the store, the keys and the API endpoint files.
	// Required; created with mode 0700 if missing.
	DataDir string
	// Passphrase encrypts the store through Argon2id. nil means a generated
	// key file (DataDir/store.key, mode 0600).
	Passphrase []byte
	// Listen is the libp2p listen multiaddrs. nil means all interfaces on
	// the ports this data directory used last time (ephemeral ports on the
	// first run; public nodes default to 4141).
	Listen []string
	// APIAddr is the local API address (loopback only). "" = DefaultAPIAddr.
	APIAddr string
	// Bootstrap is multiaddrs (with /p2p/) of nodes to join the network
	// through. They are remembered in the store and used on later starts.
	Bootstrap []string
	// Join is an invite ("callsign:join/...", printed by a community
	// node) to join the network through. It is remembered with the
	// bootstrap addresses, so later starts rejoin without it (join.go).
	Join string
	// BootstrapFiles list the nodes a community ships, one invite or
	// multiaddr a line (# comments). They are read at every start and not
	// remembered; a missing file is skipped, a bad line fails Start.
	// nil = none.
	BootstrapFiles []string
	// MDNS finds nodes on the local network by multicast DNS and joins
	// them. false = off (tests); `callsign up` turns it on.
	MDNS bool
	// MDNSService is the DNS-SD service mDNS announces and looks for.
	// "" = DefaultMDNSService; tests use one of their own.
	MDNSService string
	// Public makes this a community node: DHT server, circuit relay,
	// reachable addresses announced.
	Public bool
	// Community is a public node's community name, shown in its invite.
	// "" = none.
	Community string
	// Announce replaces the observed addresses announced by a public node.
	Announce []string
	// TURNListen is the UDP address of a public node's TURN relay. "" means
	// 0.0.0.0:3478, or 127.0.0.1 on a free port for a node kept on loopback.
	TURNListen string
	// TURNRelayIP is the address a public node's TURN relay announces in
	// relay candidates. "" means the first IPv4 of Announce, else of the
	// host's addresses.
	TURNRelayIP string
	// TURNPorts bounds the UDP ports relayed media uses ("" = any), as
	// "MIN-MAX", for firewalls.
	TURNPorts string
	// TURNTCP is the TCP address of TURN over TCP: "" = TURNListen's
	// host and port, "off" = none (node/turn.go).
	TURNTCP string
	// TURNTLS is the TCP address of TURN over TLS: "" = TURNListen's host
	// on port 443, or 5349 when 443 can't be bound; "off" = none.
	TURNTLS string
	// TURNTLSCert and TURNTLSKey are PEM files of the operator's
	// certificate for TURN over TLS. "" = a self-signed one kept in the
	// data directory (members pin it).
	TURNTLSCert, TURNTLSKey string
	// DirectFromEveryone lets anyone connect to this node directly and
	// announces its own addresses (IP and ports) to everyone. Default off:
	// a node that joins through public nodes announces only relay
	// addresses through them, lets only its contacts and relays connect
	// directly, and tells contacts its addresses inside the E2E session
	// (node/privacy.go). Public nodes and DHT servers always announce
	// theirs.
	DirectFromEveryone bool
	// MetricsAddr, when set, serves /metrics (Prometheus) on its own
	// listener without the API's token (up --metrics); the API serves it
	// with the token either way.
	MetricsAddr string
	// BackupParams are the Argon2id cost and chunk size of the backups the
	// API makes; zero = devices.DefaultBackupParams (tests lower them).
	BackupParams devices.BackupParams
	// FileLimit caps an attachment this node sends or fetches, in bytes;
	// 0 = files.DefaultLimit (100 MiB).
	FileLimit int64
	// DHTServer forces DHT server mode on a non-public node (test networks).
	DHTServer bool
	// BehindNAT listens nowhere and treats the node as unreachable from the
	// start: others reach it only through its relays (the public nodes it
	// bootstraps from). Tests use it to stand for a node behind a NAT.
	BehindNAT bool
	// Network overrides network-wide parameters (test networks only: every
	// node of a network must use the same values). Zero = production.
	Network Network
	// NewHost builds the libp2p host from the device key instead of the
	// real transports (tests: hosts on libp2p's mocknet, to simulate
	// latency, partitions or hundreds of nodes). nil = TCP and QUIC per
	// Listen. The node closes the host it gets.
	NewHost func(key crypto.PrivKey) (host.Host, error)
	// Web is the web app to serve; nil = none.
	Web fs.FS
	// BrowserConnectTimeout bounds the time from a browser tab's offer to
	// its working connection to the node, for calls with the tab's media.
	// 0 = media.DefaultBridgeConnectTimeout (10 s).
	BrowserConnectTimeout time.Duration
	// Mailboxes are multiaddrs (with /p2p/) of the community nodes that
	// hold messages for this node while it is offline; they are named in
	// its identity record. nil = the first two nodes it bootstraps from
	// (none on a public node).
	Mailboxes []string
	// Logger receives the node's logs; nil = discard.
	Logger *slog.Logger
}

// Network holds parameters every node of one network must share.
type Network struct {
	PoW               identity.PoWParams // zero = production proof of work
	RecordTTL         time.Duration      // 0 = dht default (72 h)
	RepublishInterval time.Duration      // 0 = dht default (12 h)
	Grace             time.Duration      // 0 = dht default (24 h)
	CacheTTL          time.Duration      // 0 = dht default (1 min); how long a resolution is reused
	RetryMin          time.Duration      // 0 = msg default (500 ms); first delay between delivery attempts
	RetryMax          time.Duration      // 0 = msg default (30 s); longest delay between delivery attempts
	ViewAge           time.Duration      // 0 = msg default (1 min); how old a contact's devices may be at a send
	RingTimeout       time.Duration      // 0 = call default (30 s); unanswered calls end as missed
	NoKeep            bool               // no schedule for keepers: names lapse when their owner stops (tests)
}

// lockWait is how long takeLock tries a busy lock before it reports
// ErrAlreadyRunning.
const lockWait = time.Second

// Errors a user can do something about. They carry a hint (see Hint).
var (
	ErrAlreadyRunning = errors.New("a callsign node is already running with this data directory")
)

// Error is a node error with a hint for the user.
type Error struct {
	Err  error
	hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint says what the user can do about the error.
func (e *Error) Hint() string { return e.hint }

func withHint(err error, hint string) error { return &Error{Err: err, hint: hint} }

// Node is a running callsign node.
type Node struct {
	cfg Config
	log *slog.Logger

	lock     *os.File
	db       *store.DB
	keys     *keys
	host     host.Host
	priv     *privacy         // who may connect directly; set by startHost
	repl     *devices.Replica // the account's synced registers (node/sync.go)
	sync     syncState
	dht      *dht.DHT
	contacts *contacts.Book // the address book, shared by the message and call policies and the API
	msg      *msg.Service
	groups   *groupchat.Service
	files    *attachments                 // attachments (files.go)
	calls    atomic.Pointer[call.Service] // set by startCalls; read by msg's signal callback
	media    *media.Engine                // set by startCalls
	callCfg  *callSettings                // set by startCalls
	cert     identity.DeviceCert          // this device's certificate, issued at Start
	// backend is the local API's backend, set just before the API starts;
	// messaging's and calls' event callbacks read it (nil before: nobody
	// can be subscribed to events yet).
	backend   atomic.Pointer[backend.Service]
	api       *api.Server
	metrics   *metrics // set by New, before anything publishes an event
	metricsAt string   // the --metrics listener's address; "" = none
	started   time.Time

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closers   []func() error // undo list, run in reverse by Close
	closeOnce sync.Once
	closeErr  error

	pubMu sync.Mutex // serialises publish

	mboxes mailboxes // mailboxes: a public node's, and this node's own (mailbox.go)

	mu         sync.Mutex // guards the fields below
	identitySq uint64     // last identity record seq published
	published  bool       // identity record confirmed at least once

	join joinState // finding the network (join.go)

	link linking // linking new devices to the account (link.go)

	// Restoring a backup from the web app (restore.go): restoreCh is
	// made by Run, which restarts the node with what Restore sends on it,
	// once (restoreSent, guarded by restoreMu).
	restoreCh   chan restoreRequest
	restoreMu   sync.Mutex
	restoreSent bool
	joinAcct    *joinRun // the web app's link to another account (linkweb.go); guarded by restoreMu
}

// New validates cfg. It does not touch the disk or the network: Start does.
func New(cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("node: no data directory")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("node: data directory: %w", err)
	}
	cfg.DataDir = abs
	for _, a := range append(append([]string{}, cfg.Listen...), cfg.Announce...) {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, withHint(fmt.Errorf("bad address %q: %v", a, err), "addresses are multiaddrs, e.g. /ip4/0.0.0.0/tcp/4141")
		}
	}
	for _, b := range cfg.Bootstrap {
		if _, err := peer.AddrInfoFromString(b); err != nil {
			return nil, withHint(fmt.Errorf("bad bootstrap address %q: %v", b, err), "a bootstrap address ends in /p2p/<peer id>; `callsign id` on that node prints its addresses")
		}
	}
	if err := checkJoin(cfg.Join); err != nil {
		return nil, err
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.TURNRelayIP != "" && net.ParseIP(cfg.TURNRelayIP) == nil {
		return nil, withHint(fmt.Errorf("bad TURN relay address %q", cfg.TURNRelayIP), "give an IP address, e.g. 203.0.113.7")
	}
	if _, _, err := parsePortRange(cfg.TURNPorts); err != nil {
		return nil, withHint(err, "give a range like 49152-65535")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, log: log, ctx: ctx, cancel: cancel}
	n.metrics = newMetrics(n)
	return n, nil
}

// Start opens the store, creates the identity on the first run, starts the
// libp2p host, the DHT and the local API, and returns once the API answers.
// Publishing the identity record and handles continues in the background.
// On error, everything started so far is closed again.
func (n *Node) Start(ctx context.Context) (err error) {
	n.started = time.Now()
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return withHint(fmt.Errorf("create data directory: %w", err), "pick a directory you can write to with --data")
	}
	if err := n.takeLock(); err != nil {
		return err
	}
	// An address a node killed with SIGKILL left behind goes now, not
	// when the API is up, so no client is sent there meanwhile.
	api.RemoveEndpoint(n.cfg.DataDir)
	if err := checkDataDir(n.cfg.DataDir, n.log); err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Options{Dir: n.cfg.DataDir, Passphrase: n.cfg.Passphrase, Logger: n.log.With("component", "store"), Checks: storeChecks})
	if err != nil {
		return storeError(err)
	}
	n.db = db
	n.closers = append(n.closers, db.Close)

	if err := checkRestored(n.db); err != nil {
		return err
	}
	if n.keys, err = loadKeys(n.db, n.log); err != nil {
		return err
	}
	n.contacts = contacts.New(n.db, msg.AcceptRequest)
	n.repl = n.newReplica()
	n.sync.kick = make(chan struct{}, 1)
	if err := n.readBootstrapFiles(); err != nil {
		return err
	}
	if err := n.startHost(); err != nil {
		return err
	}
	if err := n.startDHT(ctx); err != nil {
		return err
	}
	if err := n.startFiles(); err != nil {
		return err
	}
	if err := n.startMsg(ctx); err != nil {
		return err
	}
	if err := n.startCalls(ctx); err != nil {
		return err
	}
	n.startSync()
	n.startLinker()
	n.startRevoked()
	n.startBackend()
	if err := n.startAPI(); err != nil {
		return err
	}
	if n.cfg.MetricsAddr != "" {
		if err := n.serveMetrics(n.cfg.MetricsAddr); err != nil {
			return err
		}
	}
	n.startJoin()
	n.wg.Go(n.publishLoop)
	n.log.Info("node started", "account", n.keys.account.Public().ID(), "peer", n.host.ID(), "api", n.api.Addr(),
		"encryption", n.db.Encryption(), "public", n.cfg.Public, "startup", time.Since(n.started).Round(time.Millisecond))
	return nil
}

func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrWrongPassphrase):
		return withHint(err, "check $CALLSIGN_PASSPHRASE; nothing was changed")
	case errors.Is(err, store.ErrNeedPassphrase):
		return withHint(err, "set $CALLSIGN_PASSPHRASE to the passphrase this node was created with")
	case errors.Is(err, store.ErrHasKeyFile):
		return withHint(err, "this node keeps its store key in store.key; unset $CALLSIGN_PASSPHRASE")
	case store.IsCorrupt(err):
		return withHint(err, "run `callsign store verify` to list what is damaged; keep a copy of the data directory before changing anything")
	}
	return err // store.Open's errors say "open store"
}

// takeLock holds DataDir/lock for the node's lifetime so that a second node
// on the same data directory fails early and clearly. A CLI command holds
// a shared lock for a moment to see whether a node runs, so a busy lock
// is tried again for up to lockWait before the node gives up.
func (n *Node) takeLock() error {
	f, err := os.OpenFile(filepath.Join(n.cfg.DataDir, api.LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	for deadline := time.Now().Add(lockWait); errors.Is(err, syscall.EWOULDBLOCK) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return withHint(fmt.Errorf("%w (%s)", ErrAlreadyRunning, n.cfg.DataDir), "stop the other node first, or pick another --data directory")
		}
		return fmt.Errorf("lock data directory: %w", err)
	}
	n.lock = f
	n.closers = append(n.closers, func() error {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return f.Close()
	})
	return nil
}

// startBackend builds the local API's backend over the services started so
// far. It closes before the call service: a tab's bridge ends with its
// call.
func (n *Node) startBackend() {
	b := backend.New(backend.Config{
		Self:                  n.keys.account.Public(),
		Node:                  n,
		DB:                    n.db,
		Contacts:              n.contacts,
		Directory:             n.dht,
		Messages:              n.msg,
		Files:                 n.files,
		Groups:                n.groups, // started with messaging, before the backend
		Typer:                 n,
		Calls:                 n.calls.Load(),
		Bridges:               n.media,
		CallSettings:          n.callCfg,
		BrowserConnectTimeout: n.cfg.BrowserConnectTimeout,
		Metrics:               n.metrics,
		Logger:                n.log.With("component", "backend"),
		BackupParams:          n.cfg.BackupParams,
	})
	n.backend.Store(b)
	n.closers = append(n.closers, b.Close)
}

func (n *Node) startAPI() error {
	token, err := n.apiToken()
	if err != nil {
		return err
	}
	srv, err := api.NewServer(api.ServerConfig{Addr: n.cfg.APIAddr, Token: token, Backend: n.backend.Load(), Web: n.cfg.Web, Metrics: n.metrics.handler(), Logger: n.log.With("component", "api")})
	if err != nil {
		return withHint(err, "use --api 127.0.0.1:PORT")
	}
	// n.api is set before the server serves: a request that arrives at
	// once (a page polling for the node's return after a restore) reads
	// it.
	n.api = srv
	if err := srv.Start(); err != nil {
		if n.cfg.APIAddr != DefaultAPIAddr || !errors.Is(err, syscall.EADDRINUSE) {
			return withHint(err, "pick another port with --api 127.0.0.1:PORT (port 0 picks a free one)")
		}
		n.log.Info("default API port busy, using a free one", "wanted", DefaultAPIAddr)
		if srv, err = api.NewServer(api.ServerConfig{Addr: "127.0.0.1:0", Token: token, Backend: n.backend.Load(), Web: n.cfg.Web, Metrics: n.metrics.handler(), Logger: n.log.With("component", "api")}); err != nil {
			return err
		}
		n.api = srv
		if err := srv.Start(); err != nil {
			return err
		}
	}
	n.closers = append(n.closers, srv.Close)
	if err := api.WriteEndpoint(n.cfg.DataDir, srv.Addr(), token); err != nil {
		return fmt.Errorf("write API endpoint: %w", err)
	}
	n.closers = append(n.closers, func() error { api.RemoveEndpoint(n.cfg.DataDir); return nil })
	return nil
}

// apiToken reuses the token in the data directory, so that clients holding
// it keep working across restarts, or makes a new one.
func (n *Node) apiToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, api.TokenFile))
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
	}
	return api.NewToken(), nil
}

// APIAddr is the bound address of the local API (valid after Start).
func (n *Node) APIAddr() string { return n.api.Addr() }

// WebTicket returns a fresh one-time sign-in ticket for the web app and
// the app's address with it (valid after Start). `callsign up` prints it
// instead of the token.
func (n *Node) WebTicket() api.Ticket { return n.api.NewTicket() }

// Backend is what the local API serves (valid after Start), for callers
// in this process.
func (n *Node) Backend() api.Backend { return n.backend.Load() }

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// Host is the node's libp2p host (tests and benchmarks).
func (n *Node) Host() host.Host { return n.host }

// DHT is the node's address book (tests and benchmarks).
func (n *Node) DHT() *dht.DHT { return n.dht }

// Account is the node's account id.
func (n *Node) Account() identity.AccountID { return n.keys.account.Public().ID() }

// Close stops everything Start started, in reverse order, and waits for
// every goroutine. It is idempotent and safe after a failed Start.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		var errs []error
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// listenAddrs picks the libp2p listen addresses: the configured ones, else
// all interfaces on the remembered ports (public nodes: 4141).
func (n *Node) listenAddrs() []string {
	if n.cfg.BehindNAT {
		return []string{}
	}
	if len(n.cfg.Listen) > 0 {
		return n.cfg.Listen
	}
	tcp, quic := 0, 0
	if n.cfg.Public {
		tcp, quic = 4141, 4141
	}
	var lp store.ListenPorts
	if err := n.db.View(func(tx *store.Tx) error { var err error; lp, err = tx.ListenPorts(); return err }); err == nil {
		if lp.TCP != 0 {
			tcp = lp.TCP
		}
		if lp.QUIC != 0 {
			quic = lp.QUIC
		}
	}
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", tcp),
		fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", quic),
		fmt.Sprintf("/ip6/::/tcp/%d", tcp),
		fmt.Sprintf("/ip6/::/udp/%d/quic-v1", quic),
	}
}

// rememberPorts stores the ports the host actually bound, so the next start
// reuses them.
func (n *Node) rememberPorts() {
	var lp store.ListenPorts
	for _, a := range n.host.Network().ListenAddresses() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil && lp.TCP == 0 {
			fmt.Sscan(p, &lp.TCP)
		}
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil && lp.QUIC == 0 {
			if p, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				fmt.Sscan(p, &lp.QUIC)
			}
		}
	}
	if err := n.db.Update(func(tx *store.Tx) error { return tx.PutListenPorts(lp) }); err != nil {
		n.log.Warn("remember listen ports", "err", err)
	}
}

// isLoopbackListen reports whether every listen address is loopback (used
// to keep test and walkthrough networks on 127.0.0.1).
func isLoopbackListen(addrs []string) bool {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return false
		}
		ip, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			ip, err = a.ValueForProtocol(ma.P_IP6)
		}
		if err != nil || !net.ParseIP(ip).IsLoopback() {
			return false
		}
	}
	return true
}

// Published reports whether the identity record has been published and
// confirmed at least once since Start.
func (n *Node) Published() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.published
}

// parsePortRange parses "MIN-MAX" ("" = 0, 0).
func parsePortRange(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, nil
	}
	var a, b int
	if _, err := fmt.Sscanf(s, "%d-%d", &a, &b); err != nil || a < 1024 || b > 65535 || a > b || fmt.Sprintf("%d-%d", a, b) != s {
		return 0, 0, fmt.Errorf("bad TURN port range %q", s)
	}
	return uint16(a), uint16(b), nil
}
