package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// Protocol is the mailbox's request/response protocol (see the package doc).
const Protocol protocol.ID = "/callsign/mailbox/1.0.0"

// Defaults of Config.
const (
	DefaultMaxMembers   = 1000
	DefaultMaxCount     = 10000
	DefaultMaxBytes     = 100 << 20
	DefaultMaxEnvelope  = 80 << 10
	DefaultExpiry       = 30 * 24 * time.Hour
	DefaultDepositRate  = 500
	DefaultDepositBurst = 5000
	DefaultMaxPrekeys   = 100
	DefaultFetchRate    = rate.Limit(1.0 / 6) // 10 a minute
	DefaultFetchBurst   = 10
	DefaultMemberRate   = rate.Limit(1.0 / 120) // 30 an hour
	DefaultMemberBurst  = 20
	registerSkew        = 10 * time.Minute
	maxPeersPerMember   = 8 // as many devices as an identity record lists
	sweepInterval       = time.Hour
)

// Config configures a Server. Zero values mean the default in each field's
// comment.
type Config struct {
	Host host.Host // required
	DB   *store.DB // required
	// MaxMembers caps the accounts registered; 0 = 1000.
	MaxMembers int
	// MaxCount and MaxBytes are each member's quota of waiting envelopes
	// and their bytes; 0 = 10,000 and 100 MiB.
	MaxCount int
	MaxBytes int64
	// MaxEnvelope caps one sealed envelope; 0 = 80 KiB (a msg frame of the
	// largest message, sealed), at most 128 KiB.
	MaxEnvelope int
	// Expiry is how long an envelope waits before it is deleted undrained;
	// 0 = 30 days.
	Expiry time.Duration
	// DepositRate and DepositBurst bound the envelopes one peer deposits
	// per second; 0 = 500 and 5000. rate.Inf lifts the limit.
	DepositRate  rate.Limit
	DepositBurst int
	// MaxPrekeys caps the one-time prekeys of each kind (X25519 and
	// ML-KEM-768) held for one member; 0 = 100, at most 100.
	MaxPrekeys int
	// FetchRate and FetchBurst bound the one-time prekey fetches one peer
	// makes; 0 = one every 6 s, burst 10. MemberRate and MemberBurst bound
	// the one-time prekeys handed out for one member, whoever asks; 0 =
	// one every 2 min, burst 20. Past either, a fetch gets no one-time
	// prekey and the sender uses the signed ones. rate.Inf lifts a limit.
	FetchRate   rate.Limit
	FetchBurst  int
	MemberRate  rate.Limit
	MemberBurst int
	// FilesDir is the directory of the files parked for members (see the
	// package doc, "Parked files"); "" parks none. MaxFile caps one file's
	// plaintext (0 = files.DefaultLimit, 100 MiB); MaxFileBytes the sealed
	// bytes parked for one member (0 = 1 GiB) and MaxFilesTotal for all
	// (0 = 10 GiB); FileExpiry how long a parked file waits (0 = Expiry).
	FilesDir      string
	MaxFile       int64
	MaxFileBytes  int64
	MaxFilesTotal int64
	FileExpiry    time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Stats is what a mailbox holds.
type Stats struct {
	Members int   // registered accounts
	Devices int   // their devices registered with a certificate (DeviceIDs known)
	Waiting int   // envelopes waiting, all members
	Bytes   int64 // their bytes
	Prekeys int   // one-time prekeys held, all members, both kinds
}

// Server is a public node's mailbox: it owns Protocol on the host and the
// store's mbox/ entries. Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	srv *p2p.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu serialises every write of the mailbox's entries (so deposits
	// never conflict) and guards the fields below.
	mu       sync.Mutex
	members  map[[32]byte]*memberState
	byPeer   map[peer.ID][32]byte
	tokens   map[[TokenSize]byte]tokenInfo
	tokenDay int64
	limiters map[peer.ID]*rate.Limiter // deposits, per peer
	fetchers map[peer.ID]*rate.Limiter // prekey fetches, per peer
	handouts map[queue]*rate.Limiter
	prekeys  map[queue][2]int // one-time prekeys held per queue: X25519, PQ

	// Parked files (park.go); fileStore is nil without Config.FilesDir.
	fileStore   *files.Store
	fileSrv     *files.Service
	parkSrv     *p2p.Server
	parked      map[[32]byte]map[files.Hash]parked
	parkedBytes map[[32]byte]int64 // sealed bytes parked per member
	parkedTotal int64
	parkedRefs  map[files.Hash]int // members each file is parked for
	arriving    map[files.Hash]bool
}

// memberState is a registered account and what the server keeps in memory of
// it. Count, Bytes and Next (store.MailboxMember) cover all its queues.
type memberState struct {
	store.MailboxMember
	devices []store.MailboxDevice     // registered with their certificates
	queued  map[identity.DeviceID]int // envelopes in each device's own queue (mbox/f/)
}

// queue names one of a member's queues, with its one-time prekeys: the
// account's (dev zero: mbox/e/, mbox/d/, mbox/k/, the only one before
// devices had their own), which belongs to the member's first device, or
// another device's (mbox/f/, mbox/g/, mbox/j/).
type queue struct {
	account [32]byte
	dev     identity.DeviceID
}

// devBytes is the device id the store names q's queue by; nil for the
// account's.
func (q queue) devBytes() []byte {
	if q.dev.IsZero() {
		return nil
	}
	return q.dev[:]
}

type tokenInfo struct {
	q       queue
	expired bool
}

// New validates cfg and allocates a Server; Start makes it serve.
func New(cfg Config) (*Server, error) {
	if cfg.Host == nil || cfg.DB == nil {
		return nil, errors.New("mailbox: Config.Host and Config.DB are required")
	}
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = DefaultMaxMembers
	}
	if cfg.MaxCount <= 0 {
		cfg.MaxCount = DefaultMaxCount
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxEnvelope <= 0 {
		cfg.MaxEnvelope = DefaultMaxEnvelope
	}
	if cfg.MaxEnvelope > maxEnvelopeWire {
		return nil, fmt.Errorf("mailbox: Config.MaxEnvelope %d exceeds %d", cfg.MaxEnvelope, maxEnvelopeWire)
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.DepositRate <= 0 {
		cfg.DepositRate = DefaultDepositRate
	}
	if cfg.DepositBurst <= 0 {
		cfg.DepositBurst = DefaultDepositBurst
	}
	if cfg.MaxPrekeys <= 0 {
		cfg.MaxPrekeys = DefaultMaxPrekeys
	}
	if cfg.MaxPrekeys > maxPrekeysWire {
		return nil, fmt.Errorf("mailbox: Config.MaxPrekeys %d exceeds %d", cfg.MaxPrekeys, maxPrekeysWire)
	}
	if cfg.FetchRate <= 0 {
		cfg.FetchRate = DefaultFetchRate
	}
	if cfg.FetchBurst <= 0 {
		cfg.FetchBurst = DefaultFetchBurst
	}
	if cfg.MemberRate <= 0 {
		cfg.MemberRate = DefaultMemberRate
	}
	if cfg.MemberBurst <= 0 {
		cfg.MemberBurst = DefaultMemberBurst
	}
	if cfg.MaxFile <= 0 {
		cfg.MaxFile = DefaultMaxFile
	}
	if cfg.MaxFile > files.MaxLimit {
		return nil, fmt.Errorf("mailbox: Config.MaxFile %d exceeds %d", cfg.MaxFile, int64(files.MaxLimit))
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.MaxFilesTotal <= 0 {
		cfg.MaxFilesTotal = DefaultMaxFilesTotal
	}
	if cfg.FileExpiry <= 0 {
		cfg.FileExpiry = cfg.Expiry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: log.With("component", "mailbox"), ctx: ctx, cancel: cancel,
		members: map[[32]byte]*memberState{}, byPeer: map[peer.ID][32]byte{},
		tokens: map[[TokenSize]byte]tokenInfo{}, limiters: map[peer.ID]*rate.Limiter{},
		fetchers: map[peer.ID]*rate.Limiter{}, handouts: map[queue]*rate.Limiter{},
		prekeys: map[queue][2]int{}, parked: map[[32]byte]map[files.Hash]parked{},
		parkedBytes: map[[32]byte]int64{}, parkedRefs: map[files.Hash]int{}, arriving: map[files.Hash]bool{}}, nil
}

// Start loads the members and serves Protocol; expired envelopes are
// deleted in the background.
func (s *Server) Start(ctx context.Context) error {
	var ms []store.MailboxMember
	var devs []store.MailboxDevice
	var counts, devCounts map[string][2]int
	var queued map[string]int
	if err := s.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		if ms, err = tx.MailboxMembers(); err != nil {
			return err
		}
		if devs, err = tx.MailboxDevices(); err != nil {
			return err
		}
		if queued, err = tx.MailboxDeviceQueued(); err != nil {
			return err
		}
		if devCounts, err = tx.MailboxDevicePrekeyCounts(); err != nil {
			return err
		}
		counts, err = tx.MailboxPrekeyCounts()
		return err
	}); err != nil {
		return fmt.Errorf("start mailbox: %w", err)
	}
	s.mu.Lock()
	for i := range ms {
		s.members[[32]byte(ms[i].Account)] = &memberState{MailboxMember: ms[i], queued: map[identity.DeviceID]int{}}
	}
	for _, d := range devs {
		if m := s.members[[32]byte(d.Account)]; m != nil {
			m.devices = append(m.devices, d)
		}
	}
	for q, n := range queued {
		if m := s.members[[32]byte([]byte(q[:32]))]; m != nil {
			m.queued[identity.DeviceID([]byte(q[32:]))] = n
		}
	}
	for a, c := range counts {
		s.prekeys[queue{account: [32]byte([]byte(a))}] = c
	}
	for q, c := range devCounts {
		s.prekeys[queue{[32]byte([]byte(q[:32])), identity.DeviceID([]byte(q[32:]))}] = c
	}
	s.rebuildTokensLocked(Day(s.cfg.Now()))
	s.mu.Unlock()
	if err := s.startFiles(); err != nil {
		return err
	}
	s.srv = p2p.Handle(s.cfg.Host, Protocol, p2p.HandlerConfig{
		Timeout:       30 * time.Second,
		MaxRequest:    maxRequest,
		Rate:          100,
		Burst:         200,
		MaxConcurrent: 32,
		Logger:        s.log,
	}, s.handle)
	s.wg.Go(s.sweepLoop)
	return nil
}

// Close stops serving and waits for the server's goroutines. Idempotent.
func (s *Server) Close() error {
	s.cancel()
	if s.srv != nil {
		s.srv.Close()
	}
	if s.parkSrv != nil {
		s.parkSrv.Close()
		s.fileSrv.Close()
	}
	s.wg.Wait()
	return nil
}

// Stats counts the members and what waits for them.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Members: len(s.members)}
	for _, m := range s.members {
		st.Devices += len(m.devices)
		st.Waiting += m.Count
		st.Bytes += m.Bytes
	}
	for _, c := range s.prekeys {
		st.Prekeys += c[0] + c[1]
	}
	return st
}

// Prekeys reports how many one-time prekeys of each kind (X25519, ML-KEM)
// the mailbox holds under the account of the member with this account key:
// its first device's (see the package doc, "Queues per device").
func (s *Server) Prekeys(account []byte) (x25519, pq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.prekeys[queue{account: [32]byte(account)}]
	return c[0], c[1]
}

// addTokensLocked maps m's peers to it and computes its tokens for the
// days around s.tokenDay: yesterday, today and tomorrow are valid (clocks
// differ), the week before is expired. The account token names the
// account's queue, a device token its device's queue (the account's for
// its first device).
func (s *Server) addTokensLocked(m *memberState) {
	a := [32]byte(m.Account)
	for _, p := range m.Peers {
		s.byPeer[peer.ID(p)] = a
	}
	mb := []byte(s.cfg.Host.ID())
	day := s.tokenDay
	for d := day - 7; d <= day+1; d++ {
		s.tokens[[TokenSize]byte(Token(m.Account, mb, d))] = tokenInfo{q: queue{account: a}, expired: d < day-1}
		for _, dv := range m.devices {
			t := DeviceToken(m.Account, mb, identity.DeviceID(dv.ID), d)
			s.tokens[[TokenSize]byte(t)] = tokenInfo{q: deviceQueue(a, dv), expired: d < day-1}
		}
	}
}

// deviceQueue returns the queue of a's device d: the account's for its
// first device.
func deviceQueue(a [32]byte, d store.MailboxDevice) queue {
	if d.First {
		return queue{account: a}
	}
	return queue{a, identity.DeviceID(d.ID)}
}

// rebuildTokensLocked computes every member's tokens for the days around
// day.
func (s *Server) rebuildTokensLocked(day int64) {
	s.tokenDay = day
	clear(s.tokens)
	for _, m := range s.members {
		s.addTokensLocked(m)
	}
}

// limiterLocked returns the limiter of key in m, made with r and burst.
// Past 4096 limiters, the full ones (idle for a while) are dropped first,
// so the map stays bounded under a flood of new peers.
func limiterLocked[K comparable](m map[K]*rate.Limiter, key K, r rate.Limit, burst int) *rate.Limiter {
	l := m[key]
	if l == nil {
		if len(m) >= 4096 {
			now := time.Now()
			for q, ql := range m {
				if ql.TokensAt(now) >= float64(burst) {
					delete(m, q)
				}
			}
		}
		l = rate.NewLimiter(r, burst)
		m[key] = l
	}
	return l
}

func (s *Server) limiter(p peer.ID) *rate.Limiter {
	return limiterLocked(s.limiters, p, s.cfg.DepositRate, s.cfg.DepositBurst)
}

func refuse(st Status, reason string) []byte {
	r := response{status: st, reason: reason}
	return r.marshal()
}

func (s *Server) handle(ctx context.Context, from peer.ID, b []byte) ([]byte, error) {
	req, err := unmarshalRequest(b)
	if err != nil {
		return refuse(StatusMalformed, "malformed request"), nil
	}
	switch req.op {
	case opRegister:
		return s.register(from, req), nil
	case opDeposit:
		return s.deposit(from, req), nil
	case opDrain:
		return s.drain(from, req), nil
	case opUpload:
		return s.upload(from, req), nil
	case opFetch:
		return s.fetch(from, req), nil
	default:
		return s.ack(from, req), nil
	}
}

// RegisterMessage is what a member signs (LabelRegister) to register with
// the mailbox whose peer id bytes are mailbox.
func RegisterMessage(mailbox, account, cert []byte, unix uint64) []byte {
	b := make([]byte, 0, len(mailbox)+len(account)+len(cert)+16)
	b = append(b, byte(len(mailbox)))
	b = append(b, mailbox...)
	b = append(b, account...)
	b = append(b, byte(len(cert)))
	b = append(b, cert...)
	for i := 7; i >= 0; i-- {
		b = append(b, byte(unix>>(8*i)))
	}
	return b
}

func (s *Server) register(from peer.ID, req request) []byte {
	now := s.cfg.Now()
	pub, err := identity.ParseAccountPub(req.account)
	if err != nil {
		return refuse(StatusForbidden, "bad account key")
	}
	t := time.Unix(int64(req.time), 0)
	if t.Before(now.Add(-registerSkew)) || t.After(now.Add(registerSkew)) {
		return refuse(StatusExpired, "registration time is not now; check the clock")
	}
	if !pub.Verify(LabelRegister, RegisterMessage([]byte(s.cfg.Host.ID()), req.account, req.cert, req.time), req.signature) {
		return refuse(StatusForbidden, "bad registration signature")
	}
	cert, err := identity.UnmarshalDeviceCert(req.cert)
	if err != nil || !cert.Account.Equal(pub) || cert.Verify(now) != nil {
		return refuse(StatusForbidden, "bad device certificate")
	}
	if string(cert.PeerID) != string(from) {
		return refuse(StatusForbidden, "the certificate is for another device")
	}
	dev := cert.DeviceID()
	if dev.IsZero() {
		return refuse(StatusForbidden, "bad device certificate")
	}
	a := [32]byte(req.account)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.members[a]
	if old == nil && len(s.members) >= s.cfg.MaxMembers {
		return refuse(StatusFull, fmt.Sprintf("this mailbox holds for %d members, its most", s.cfg.MaxMembers))
	}
	m := &memberState{MailboxMember: store.MailboxMember{Account: req.account, Next: 1}, queued: map[identity.DeviceID]int{}}
	if old != nil {
		m.MailboxMember, m.queued = old.MailboxMember, old.queued
	}
	m.Registered = now
	var oldDevs []store.MailboxDevice
	if old != nil {
		oldDevs = old.devices
	}
	devs, removed, moved := registerDevice(req.account, oldDevs, dev, from)
	peers := [][]byte{[]byte(from)}
	for _, p := range m.Peers {
		if !bytes.Equal(p, []byte(from)) && !bytes.Equal(p, moved) {
			peers = append(peers, p)
		}
	}
	// Past maxPeersPerMember, the least recently registered peers go, and
	// their devices with them (their queues wait until they expire).
	for _, p := range peers[min(len(peers), maxPeersPerMember):] {
		if i := slices.IndexFunc(devs, func(d store.MailboxDevice) bool { return bytes.Equal(d.Peer, p) }); i >= 0 {
			removed = append(removed, devs[i])
			devs = slices.Delete(devs, i, i+1)
		}
	}
	m.Peers = peers[:min(len(peers), maxPeersPerMember)]
	m.devices = devs
	self := devs[slices.IndexFunc(devs, func(d store.MailboxDevice) bool { return bytes.Equal(d.Peer, []byte(from)) })]
	err = s.cfg.DB.Update(func(tx *store.Tx) error {
		if err := tx.PutMailboxMember(m.MailboxMember); err != nil {
			return err
		}
		for _, d := range removed {
			if err := tx.DeleteMailboxDevice(d.Account, d.ID); err != nil {
				return err
			}
			if d.First { // the account's keys stay, as before devices
				continue
			}
			for _, kind := range []byte{store.MailboxPrekeyX25519, store.MailboxPrekeyPQ} {
				if _, err := tx.DeleteMailboxDevicePrekeys(d.Account, d.ID, kind); err != nil {
					return err
				}
			}
		}
		return tx.PutMailboxDevice(self)
	})
	if err != nil {
		s.log.Warn("register member", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable")
	}
	if old != nil {
		for _, p := range old.Peers {
			delete(s.byPeer, peer.ID(p))
		}
	}
	for _, d := range removed {
		if !d.First {
			delete(s.prekeys, queue{a, identity.DeviceID(d.ID)})
		}
	}
	if len(removed) > 0 { // their tokens go
		for t, ti := range s.tokens {
			if ti.q.account == a {
				delete(s.tokens, t)
			}
		}
	}
	s.members[a] = m
	s.addTokensLocked(m)
	q := deviceQueue(a, self)
	r := response{status: StatusOK, waiting: uint64(m.waiting(q)), perDevice: true}
	s.countsLocked(q, &r)
	return r.marshal()
}

// registerDevice returns a member's devices (old) with dev registered
// from peer p; the devices that go (one registered from p before is
// another device now: p's certificate names another key); and the peer
// dev registered from before, if it was another. A device new here is the
// member's first device (the account's queue and one-time prekeys are
// its) if no other device is registered: the first to register with its
// certificate, which for a member registered before devices were told
// apart is its one device, so it keeps its queue.
func registerDevice(account []byte, old []store.MailboxDevice, dev identity.DeviceID, p peer.ID) (devs, removed []store.MailboxDevice, moved []byte) {
	found := false
	for _, d := range old {
		switch {
		case identity.DeviceID(d.ID) == dev:
			if !bytes.Equal(d.Peer, []byte(p)) {
				moved = d.Peer
			}
			d.Peer = []byte(p)
			found = true
		case bytes.Equal(d.Peer, []byte(p)):
			removed = append(removed, d)
			continue
		}
		devs = append(devs, d)
	}
	if !found {
		devs = append(devs, store.MailboxDevice{Account: account, ID: bytes.Clone(dev[:]), Peer: []byte(p), First: len(devs) == 0})
	}
	return devs, removed, moved
}

// waiting is the number of envelopes in q, one of m's queues.
func (m *memberState) waiting(q queue) int {
	if !q.dev.IsZero() {
		return m.queued[q.dev]
	}
	n := m.Count
	for _, c := range m.queued {
		n -= c
	}
	return max(n, 0)
}

func (s *Server) deposit(from peer.ID, req request) []byte {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.limiter(from).AllowN(now, len(req.envelopes)) {
		return refuse(StatusRateLimited, "too many deposits from this peer; try again later")
	}
	q, tst, reason := s.tokenQueueLocked([TokenSize]byte(req.token), now)
	if tst != StatusOK {
		return refuse(tst, reason)
	}
	mm := s.members[q.account]
	m := mm.MailboxMember
	results := make([]Status, len(req.envelopes))
	var puts []store.MailboxEnvelope
	seen := map[[store.MailboxDigestSize]byte]bool{}
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		for i, e := range req.envelopes {
			if len(e) > s.cfg.MaxEnvelope {
				results[i] = StatusTooLarge
				continue
			}
			dg := digest(e)
			dup, err := tx.MailboxDeviceDigest(m.Account, q.devBytes(), dg[:])
			if err != nil {
				return err
			}
			if dup || seen[dg] {
				results[i] = StatusDuplicate
				continue
			}
			// The quota is the member's: all its queues together.
			if m.Count+1 > s.cfg.MaxCount || m.Bytes+int64(len(e)) > s.cfg.MaxBytes {
				results[i] = StatusOverQuota
				continue
			}
			seen[dg] = true
			puts = append(puts, store.MailboxEnvelope{Seq: m.Next, Expires: now.Add(s.cfg.Expiry), Digest: dg[:], Data: e})
			m.Next++
			m.Count++
			m.Bytes += int64(len(e))
			results[i] = StatusOK
		}
		return nil
	})
	if err == nil && len(puts) > 0 {
		err = s.cfg.DB.Update(func(tx *store.Tx) error {
			for _, e := range puts {
				if err := tx.PutMailboxDeviceEnvelope(m.Account, q.devBytes(), e); err != nil {
					return err
				}
			}
			return tx.PutMailboxMember(m)
		})
	}
	if err != nil {
		s.log.Warn("deposit", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable; try again later")
	}
	mm.MailboxMember = m
	if !q.dev.IsZero() {
		mm.queued[q.dev] += len(puts)
	}
	st := StatusOK
	for _, r := range results {
		if r != StatusOK && r != StatusDuplicate {
			st = r // the first refusal names the request's status
			break
		}
	}
	r := response{status: st, results: results}
	if st != StatusOK {
		r.reason = "refused: " + st.String()
	}
	return r.marshal()
}

// tokenQueueLocked returns the queue tok names on the day of now, or the
// status and reason to refuse with.
func (s *Server) tokenQueueLocked(tok [TokenSize]byte, now time.Time) (queue, Status, string) {
	if d := Day(now); d != s.tokenDay {
		s.rebuildTokensLocked(d)
	}
	ti, ok := s.tokens[tok]
	if !ok {
		return queue{}, StatusNotMember, "no member has this token"
	}
	if ti.expired {
		return queue{}, StatusExpired, "this token is of a day that has passed"
	}
	return ti.q, StatusOK, ""
}

// queueOfLocked returns the member one of whose devices from is, and
// that device's queue: its own, or the account's for the member's first
// device; a peer registered before devices were told apart has the
// account's while no device does. Or the reason to refuse with.
func (s *Server) queueOfLocked(from peer.ID) (*memberState, queue, string) {
	a, ok := s.byPeer[from]
	if !ok {
		return nil, queue{}, "this device is not a registered member's"
	}
	m := s.members[a]
	first := false
	for _, d := range m.devices {
		if bytes.Equal(d.Peer, []byte(from)) {
			return m, deviceQueue(a, d), ""
		}
		first = first || d.First
	}
	if first {
		return nil, queue{}, "this device must register again"
	}
	return m, queue{account: a}, ""
}

func (s *Server) drain(from peer.ID, req request) []byte {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, q, reason := s.queueOfLocked(from)
	if m == nil {
		return refuse(StatusNotMember, reason)
	}
	var envs []store.MailboxEnvelope
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		envs, err = tx.MailboxDeviceEnvelopes(m.Account, q.devBytes(), 0, int(req.max), maxDrainBytes)
		return err
	})
	if err != nil {
		s.log.Warn("drain", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable; try again later")
	}
	var expired []uint64
	r := response{status: StatusOK}
	for _, e := range envs {
		if !now.Before(e.Expires) {
			expired = append(expired, e.Seq)
			continue
		}
		r.entries = append(r.entries, Entry{Seq: e.Seq, Data: e.Data})
	}
	if len(expired) > 0 {
		s.deleteLocked(m, q, expired)
	}
	r.waiting = uint64(max(m.waiting(q)-len(r.entries), 0))
	s.countsLocked(q, &r)
	return r.marshal()
}

func (s *Server) ack(from peer.ID, req request) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, q, reason := s.queueOfLocked(from)
	if m == nil {
		return refuse(StatusNotMember, reason)
	}
	if err := s.deleteLocked(m, q, req.seqs); err != nil {
		s.log.Warn("ack", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable; try again later")
	}
	r := response{status: StatusOK, waiting: uint64(m.waiting(q))}
	s.countsLocked(q, &r)
	return r.marshal()
}

// deleteLocked deletes the envelopes seqs of m's queue q (those still
// there; a sequence number of another queue is none of q's) in one
// transaction and updates its counts.
func (s *Server) deleteLocked(m *memberState, q queue, seqs []uint64) error {
	n := m.MailboxMember
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		n = m.MailboxMember
		for _, seq := range seqs {
			e, err := tx.DeleteMailboxDeviceEnvelope(m.Account, q.devBytes(), seq)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			n.Count--
			n.Bytes -= int64(len(e.Data))
		}
		return tx.PutMailboxMember(n)
	})
	if err == nil {
		if !q.dev.IsZero() {
			if c := m.queued[q.dev] - (m.Count - n.Count); c > 0 {
				m.queued[q.dev] = c
			} else {
				delete(m.queued, q.dev)
			}
		}
		m.MailboxMember = n
	}
	return err
}

// sweepLoop deletes expired envelopes now (in the background: reading
// every envelope of a full mailbox takes seconds) and hourly.
func (s *Server) sweepLoop() {
	s.sweep()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep deletes every expired envelope, one member at a time, so deposits
// and drains wait at most for one member's scan.
func (s *Server) sweep() {
	s.mu.Lock()
	accts := make([][32]byte, 0, len(s.members))
	for a := range s.members {
		accts = append(accts, a)
	}
	s.mu.Unlock()
	for _, a := range accts {
		if s.ctx.Err() != nil || !s.sweepMember(a) {
			return
		}
	}
	s.sweepFiles()
}

// sweepMember deletes a's expired envelopes, in each of its queues;
// false on a store error.
func (s *Server) sweepMember(a [32]byte) bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[a]
	if m == nil || m.Count == 0 {
		return true
	}
	qs := []queue{{account: a}}
	for dev := range m.queued {
		qs = append(qs, queue{a, dev})
	}
	for _, q := range qs {
		if m.waiting(q) == 0 {
			continue
		}
		var expired []uint64
		from := uint64(0)
		for {
			var envs []store.MailboxEnvelope
			err := s.cfg.DB.View(func(tx *store.Tx) error {
				var err error
				envs, err = tx.MailboxDeviceEnvelopes(m.Account, q.devBytes(), from, 1024, 64<<20)
				return err
			})
			if err != nil {
				s.log.Warn("sweep mailbox", "err", err)
				return false
			}
			for _, e := range envs {
				if !now.Before(e.Expires) {
					expired = append(expired, e.Seq)
				}
				from = e.Seq + 1
			}
			if len(envs) < 1024 {
				break
			}
		}
		for len(expired) > 0 {
			k := min(len(expired), 1024)
			if err := s.deleteLocked(m, q, expired[:k]); err != nil {
				s.log.Warn("sweep mailbox", "err", err)
				return false
			}
			expired = expired[k:]
		}
	}
	return true
}
