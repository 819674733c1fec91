package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is a fake Directory shared by the nodes of one test.
type world struct {
	mu    sync.Mutex
	nodes map[identity.AccountID]*node
	// linked holds an account's devices after its first (linkDevice).
	linked map[identity.AccountID][]*node
	// revoked holds the devices an account revoked (revoke).
	revoked map[identity.AccountID][]identity.DeviceID
}

// revoke makes the directory list d, a linked device, as revoked by its
// account instead of as one of its devices.
func (w *world) revoke(d *node) {
	w.mu.Lock()
	defer w.mu.Unlock()
	acct := d.id()
	w.linked[acct] = slices.DeleteFunc(w.linked[acct], func(n *node) bool { return n == d })
	if w.revoked == nil {
		w.revoked = map[identity.AccountID][]identity.DeviceID{}
	}
	w.revoked[acct] = append(w.revoked[acct], d.cert.DeviceID())
}

func newWorld() *world {
	return &world{nodes: map[identity.AccountID]*node{}, linked: map[identity.AccountID][]*node{}}
}

func (w *world) Lookup(ctx context.Context, acct identity.AccountID) (Recipient, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.nodes[acct]
	if n == nil {
		return Recipient{}, errors.New("no such account")
	}
	r := Recipient{Account: n.acct.Public(), Relays: n.relays, Mailboxes: n.mailboxes, Revoked: w.revoked[acct]}
	for _, d := range append([]*node{n}, w.linked[acct]...) {
		r.Devices = append(r.Devices, d.cert)
		r.Bundles = append(r.Bundles, d.bundle)
	}
	return r, nil
}

// linkDevice is another device of the account of first, with keys and a
// store of its own: the world's directory names it after first's device
// (and the devices linked before it).
func linkDevice(t testing.TB, first *node, mod func(*Config)) *node {
	t.Helper()
	w := first.w
	w.mu.Lock()
	prev := w.nodes[first.id()]
	w.mu.Unlock()
	n := newDevice(t, w, first.acct, mod)
	w.mu.Lock()
	w.nodes[first.id()] = prev
	w.linked[first.id()] = append(w.linked[first.id()], n)
	w.mu.Unlock()
	return n
}

// policy is a fake Policy: Deliver unless set otherwise.
type policy struct {
	mu sync.Mutex
	m  map[identity.AccountID]Decision
}

func (p *policy) Classify(from identity.AccountID) Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.m[from]; ok {
		return d
	}
	return Deliver
}

func (p *policy) set(a identity.AccountID, d Decision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[identity.AccountID]Decision{}
	}
	p.m[a] = d
}

// node is one account with one device: a host, a store and a Service that
// can be stopped and started again on the same store and key.
type node struct {
	t         testing.TB
	w         *world
	dir       string
	key       crypto.PrivKey
	acct      *identity.AccountKey
	dh        *ecdh.PrivateKey
	cert      identity.DeviceCert
	bundle    []byte
	relays    []peer.AddrInfo
	mailboxes []peer.AddrInfo // guarded by world.mu
	pol       *policy
	mod       func(*Config)
	hostMod   func(*p2p.HostConfig)

	host host.Host
	db   testDB
	svc  *Service

	evMu   sync.Mutex
	events []Event
}

func newNode(t testing.TB, w *world, mod func(*Config)) *node {
	t.Helper()
	acct, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newDevice(t, w, acct, mod)
}

// newDevice is a node of acct with keys, a certificate and a store of its
// own; the world's directory names it as the account's device from now on.
func newDevice(t testing.TB, w *world, acct *identity.AccountKey, mod func(*Config)) *node {
	t.Helper()
	key, err := p2p.GeneratePeerKey()
	if err != nil {
		t.Fatal(err)
	}
	dh, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return deviceOf(t, w, acct, key, dh, t.TempDir(), mod)
}

// deviceOf is a node of acct with these keys and data directory, and a
// certificate issued now; the world's directory names it as the account's
// device from now on.
func deviceOf(t testing.TB, w *world, acct *identity.AccountKey, key crypto.PrivKey, dh *ecdh.PrivateKey, dir string, mod func(*Config)) *node {
	t.Helper()
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.IssueDeviceCert(acct, []byte(pid), dh.PublicKey().Bytes(), time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, w: w, dir: dir, key: key, acct: acct, dh: dh, cert: cert, pol: &policy{}, mod: mod}
	w.mu.Lock()
	w.nodes[acct.Public().ID()] = n
	w.mu.Unlock()
	t.Cleanup(n.stop)
	return n
}

func (n *node) id() identity.AccountID { return n.acct.Public().ID() }

// lane is n's lane to other's device.
func (n *node) lane(other *node) *peerState {
	return n.svc.lane(n.svc.acct(other.id()), other.cert.DeviceID())
}

// start opens the store, a host (same key, new port) and the Service.
func (n *node) start() {
	t := n.t
	t.Helper()
	mod := n.hostMod
	n.host = p2ptest.NewHost(t, func(c *p2p.HostConfig) {
		c.PrivKey = n.key
		c.Listen = p2ptest.ListenTCP
		if mod != nil {
			mod(c)
		}
	})
	db, err := store.Open(context.Background(), store.Options{Dir: n.dir})
	if err != nil {
		t.Fatal(err)
	}
	n.db = testDB{db}
	cfg := Config{
		Host: n.host, DB: db, Account: n.acct, DeviceDH: n.dh, Cert: n.cert,
		Directory: n.w, Policy: n.pol,
		OnEvent:  func(e Event) { n.evMu.Lock(); n.events = append(n.events, e); n.evMu.Unlock() },
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
	}
	if n.mod != nil {
		n.mod(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	b, err := svc.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	n.w.mu.Lock()
	n.bundle = b
	n.w.mu.Unlock()
}

// stop closes the Service, the store and the host.
func (n *node) stop() {
	if n.svc != nil {
		n.svc.Close()
		n.svc = nil
	}
	if n.db.DB != nil {
		n.db.Close()
		n.db = testDB{}
	}
	if n.host != nil {
		n.host.Close()
		n.host = nil
	}
}

// know tells n's peerstore where other's host listens (the node's DHT
// does this in production).
func (n *node) know(other *node) {
	n.host.Peerstore().AddAddrs(other.host.ID(), other.host.Addrs(), peerstore.PermanentAddrTTL)
}

func (n *node) messages(peer identity.AccountID) []Message {
	n.t.Helper()
	var all []Message
	cursor := ""
	for {
		page, next, err := n.db.Messages(string(peer), Page{Cursor: cursor, Limit: 1000})
		if err != nil {
			n.t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func (n *node) incoming(peer identity.AccountID) []Message {
	var in []Message
	for _, m := range n.messages(peer) {
		if m.Direction == DirIn {
			in = append(in, m)
		}
	}
	return in
}

// outbox lists what waits for an ack: control messages' outbox entries
// and the text messages queued in their index entries.
func (n *node) outbox() []OutboxEntry {
	n.t.Helper()
	e, err := n.db.DueOutbox(time.Unix(0, 1<<62), 1<<20)
	if err != nil {
		n.t.Fatal(err)
	}
	err = n.db.View(func(tx *store.Tx) error {
		qs, err := In(tx).Queued()
		for _, q := range qs {
			env, err := In(tx).QueuedEnvelope(q.Peer, q.Dev, q.ID)
			if err != nil {
				return err
			}
			e = append(e, OutboxEntry{ID: q.ID, Peer: q.Peer, Envelope: env, CreatedAt: q.At, NextAttempt: q.At})
		}
		return err
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return e
}

func (n *node) eventsOf(kind EventKind) []Event {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	var out []Event
	for _, e := range n.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (n *node) send(to *node, text string) Message {
	n.t.Helper()
	m, err := n.svc.Send(context.Background(), to.id(), []byte(text))
	if err != nil {
		n.t.Fatal(err)
	}
	return m
}

func (n *node) state(peer identity.AccountID, id string) string {
	m, err := n.db.Message(string(peer), id)
	if err != nil {
		return "error: " + err.Error()
	}
	return m.State
}

// pair starts two nodes that know each other's addresses.
func pair(t testing.TB, mod func(*Config)) (a, b *node) {
	w := newWorld()
	a, b = newNode(t, w, mod), newNode(t, w, mod)
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	return a, b
}
