package groupchat

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// net is an in-process stand-in for msg's QueueGroup: each device's
// carriers wait in its inbox, in order, until deliver hands them to the
// devices that are online. (The node tests carry them over msg between
// real nodes.)
type net struct {
	t     testing.TB
	mu    sync.Mutex
	accts map[identity.AccountID][]*dev
	// refusals are the errors Receive returned, as "device: error".
	refusals []string
	// skew moves every device's clock ahead (Config.Now).
	skew atomic.Int64
	// strangers[to][from]: to's node holds from a stranger (Receive's
	// request, as msg decides it from the contacts).
	strangers map[identity.AccountID]map[identity.AccountID]bool
}

func (n *net) now() time.Time { return time.Now().Add(time.Duration(n.skew.Load())) }

type dev struct {
	n       *net
	name    string
	key     *identity.AccountKey
	id      identity.DeviceID
	db      *store.DB
	svc     *Service
	offline bool
	inbox   []delivery

	evMu   sync.Mutex
	events []Event
}

type delivery struct {
	from identity.AccountID
	dev  identity.DeviceID
	body []byte
}

func newNet(t testing.TB) *net {
	return &net{t: t, accts: map[identity.AccountID][]*dev{}, strangers: map[identity.AccountID]map[identity.AccountID]bool{}}
}

// stranger has to's devices take what from sends as a stranger's (on:
// true), or a contact's (false, the default).
func (n *net) stranger(to, from *dev, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.strangers[to.acct()] == nil {
		n.strangers[to.acct()] = map[identity.AccountID]bool{}
	}
	n.strangers[to.acct()][from.acct()] = on
}

// account is a new account with one device.
func (n *net) account(name string) *dev {
	k, err := identity.GenerateAccountKey(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.device(name, k)
}

// device is a new device of k's account.
func (n *net) device(name string, k *identity.AccountKey) *dev {
	return n.deviceOn(name, k, n.db())
}

// db is a new store in memory.
func (n *net) db() *store.DB {
	db, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { db.Close() })
	return db
}

// deviceOn is a new device of k's account on db.
func (n *net) deviceOn(name string, k *identity.AccountKey, db *store.DB) *dev {
	t := n.t
	d := &dev{n: n, name: name, key: k, db: db}
	rand.Read(d.id[:])
	svc, err := New(Config{DB: db, Account: k, Device: d.id, Transport: d, Now: n.now,
		OnEvent: func(e Event) { d.evMu.Lock(); d.events = append(d.events, e); d.evMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	d.svc = svc
	t.Cleanup(func() { svc.Close() })
	n.mu.Lock()
	n.accts[d.acct()] = append(n.accts[d.acct()], d)
	n.mu.Unlock()
	return d
}

func (d *dev) acct() identity.AccountID      { return d.key.Public().ID() }
func (d *dev) pub() identity.AccountPub      { return d.key.Public() }
func (d *dev) String() string                { return d.name }
func (d *dev) ctx() context.Context          { return context.Background() }
func (d *dev) in(g group.ID) []Message       { return d.messages(g) }
func (d *dev) info(g group.ID) (Info, error) { return d.svc.Group(g) }

// QueueGroup is the Transport: every device of each account but this one.
func (d *dev) QueueGroup(_ context.Context, to []identity.AccountID, bodies ...[]byte) error {
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range to {
		for _, r := range n.accts[a] {
			if r == d {
				continue
			}
			for _, b := range bodies {
				r.inbox = append(r.inbox, delivery{d.acct(), d.id, slices.Clone(b)})
			}
		}
	}
	return nil
}

// deliver hands every online device what waits for it, until nothing
// does.
func (n *net) deliver() {
	for {
		n.mu.Lock()
		var next *dev
		for _, ds := range n.accts {
			for _, d := range ds {
				if !d.offline && len(d.inbox) > 0 {
					next = d
				}
			}
		}
		if next == nil {
			n.mu.Unlock()
			return
		}
		del := next.inbox[0]
		next.inbox = next.inbox[1:]
		request := n.strangers[next.acct()][del.from]
		n.mu.Unlock()
		if err := next.svc.Receive(del.from, del.dev, del.body, request); err != nil {
			n.mu.Lock()
			n.refusals = append(n.refusals, fmt.Sprintf("%s: %v", next.name, err))
			n.mu.Unlock()
		}
	}
}

func (n *net) refused() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.refusals
	n.refusals = nil
	return out
}

func (d *dev) messages(g group.ID) []Message {
	d.n.t.Helper()
	ms, _, err := d.svc.Messages(g, "", 1000)
	if err != nil {
		d.n.t.Fatal(err)
	}
	return ms
}

// texts is d's conversation in g as "sender: text" lines, the sender's
// device name standing for its account.
func (d *dev) texts(g group.ID) []string {
	var out []string
	for _, m := range d.messages(g) {
		out = append(out, d.n.nameOf(m.From)+": "+string(m.Text))
	}
	return out
}

func (n *net) nameOf(a identity.AccountID) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ds := n.accts[a]; len(ds) > 0 {
		name, _, _ := strings.Cut(ds[0].name, "/")
		return name
	}
	return string(a)
}

// memberNames is g's member list as d sees it.
func (d *dev) memberNames(g group.ID) []string {
	d.n.t.Helper()
	in, err := d.svc.Group(g)
	if err != nil {
		d.n.t.Fatalf("%s: %v", d.name, err)
	}
	var out []string
	for _, m := range in.Members {
		out = append(out, d.n.nameOf(m.Account.ID()))
	}
	slices.Sort(out)
	return out
}
