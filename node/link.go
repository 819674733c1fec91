package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// Linking a new device to this account, on the device that shows the code
// (docs/DEVICES.md §1; the new device's side is linkjoin.go). The node
// serves /callsign/link/1.0.0 through a devices.Linker; StartLink offers
// one link at a time. Once the person confirmed the numbers, this device
// hands over the account (its seed and portable items, and the roster of
// its devices), takes the new device's certificate, bundle and roster
// entry, and publishes the account's record with the new device in it, so
// contacts and this device's siblings reach it at once.

// linkTimeout bounds one link stream from its first frame.
const linkTimeout = 10 * time.Minute

// errNoLink: there is no link to confirm or cancel.
func errNoLink(what string) error {
	return api.Errorf(api.CodeNotFound, "run `callsign devices link` first", "no link is waiting for %s", what)
}

// linking is the node's side of the links it offers.
type linking struct {
	linker *devices.Linker
	srv    *p2p.Server

	mu  sync.Mutex
	run *linkRun // the last link offered; guarded by mu
	// added are devices linked here and not yet in a record this node
	// published; ownedRecords lists them. Guarded by mu.
	added map[identity.DeviceID]addedDevice
}

type addedDevice struct {
	cert   identity.DeviceCert
	bundle []byte
}

// linkRun is one link offered. Its fields are guarded by linking.mu.
type linkRun struct {
	p       *devices.PendingLink
	expires time.Time
	sas     string    // shown while the person compares
	answer  chan bool // the person's answer to the SAS; buffered, sent once
	replied bool
	device  *api.OwnDevice // the new device, once linked
	done    bool
	err     error
}

// replica is this device's replica of the account's synced registers
// (node/sync.go).
func (n *Node) replica() *devices.Replica { return n.repl }

// deviceID is this device's id.
func (n *Node) deviceID() identity.DeviceID {
	return identity.DeviceIDOf(n.keys.x25519.PublicKey().Bytes())
}

// startLinker serves the link protocol.
func (n *Node) startLinker() {
	n.link.linker = devices.NewLinker(n.host, devices.LinkConfig{Timeout: linkTimeout, Logger: n.log.With("component", "link")})
	n.link.srv = p2p.HandleStream(n.host, devices.LinkProtocol, p2p.HandlerConfig{
		Timeout:       linkTimeout,
		MaxConcurrent: 4,
		Rate:          1,
		Burst:         4,
		Logger:        n.log,
	}, n.link.linker.ServeStream)
	n.closers = append(n.closers, n.link.srv.Close, n.link.linker.Close)
}

// StartLink offers a link: it returns the code the new device types.
func (n *Node) StartLink(ctx context.Context, req api.LinkRequest) (api.LinkOffer, error) {
	if n.link.linker == nil {
		return api.LinkOffer{}, fmt.Errorf("link: %w", errors.ErrUnsupported)
	}
	run := &linkRun{answer: make(chan bool, 1)}
	p, err := n.link.linker.Offer(devices.LinkOffer{
		Addrs:      n.linkAddrs(),
		ConfirmSAS: func(ctx context.Context, sas string) (bool, error) { return n.confirmSAS(ctx, run, sas) },
		Account:    n.linkAccount,
		Linked:     func(ctx context.Context, from peer.ID, b []byte) error { return n.linkedDevice(ctx, run, from, b) },
		History:    n.linkHistory(req),
	})
	if errors.Is(err, devices.ErrLinkCode) {
		return api.LinkOffer{}, api.Errorf(api.CodeUnavailable, "wait until `callsign status` shows peers, then try again",
			"this node has no address a new device could reach yet: %v", err)
	}
	if err != nil {
		return api.LinkOffer{}, err
	}
	run.p, run.expires = p, p.Code().Expires
	n.link.mu.Lock()
	n.link.run = run
	n.link.mu.Unlock()
	n.wg.Go(func() {
		_, err := p.Wait(n.ctx)
		n.link.mu.Lock()
		run.done, run.err = true, err
		n.link.mu.Unlock()
		if err != nil {
			n.log.Info("link ended without a new device", "err", err)
		}
	})
	return api.LinkOffer{Code: p.Code().String(), Expires: run.expires}, nil
}

// linkOpen reports whether a link offered here has not ended yet.
func (n *Node) linkOpen() bool {
	n.link.mu.Lock()
	run := n.link.run
	n.link.mu.Unlock()
	return run != nil && (run.p.State() == devices.LinkWaiting || run.p.State() == devices.LinkSAS)
}

// linkAddrs are the addresses a link code carries: the host's announced
// ones, and for a node that keeps its address to itself (privacy.go) its
// direct ones too, which the new device, and only it, learns from the
// code: a relay reservation may not be there yet, and a direct link is
// faster.
func (n *Node) linkAddrs() []ma.Multiaddr {
	addrs := n.host.Addrs()
	if n.priv != nil && n.priv.on {
		if direct, err := n.host.Network().InterfaceListenAddresses(); err == nil {
			addrs = append(direct, addrs...)
		}
	}
	return addrs
}

// linkHistory is step 7 of a link asked for with req: the conversations
// of the last days req says, in chunks.
func (n *Node) linkHistory(req api.LinkRequest) func(context.Context, peer.ID, func([]byte) error) error {
	days := api.DefaultLinkHistoryDays
	if req.HistoryDays != nil {
		days = *req.HistoryDays
	}
	if days == 0 {
		return nil
	}
	var since time.Time
	if days > 0 {
		since = time.Now().AddDate(0, 0, -days)
	}
	return func(ctx context.Context, _ peer.ID, send func([]byte) error) error {
		var c devices.LinkHistoryChunk
		flush := func() error {
			if c.Len() == 0 {
				return nil
			}
			err := send(c.Bytes())
			c.Reset()
			return err
		}
		add := func(kind byte, body []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			it := devices.LinkItem{Kind: kind, Body: body}
			ok, err := c.Add(it)
			if err != nil || ok {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			_, err = c.Add(it)
			return err
		}
		// The groups after the conversations: a device of an older
		// version, which refuses their items, keeps the conversations.
		err := n.db.View(func(tx *store.Tx) error {
			if err := msg.ExportLinkHistory(tx, since, add); err != nil {
				return err
			}
			return groupchat.ExportLinkHistory(tx, since, add)
		})
		if err != nil {
			return err
		}
		return flush()
	}
}

// confirmSAS shows sas and waits for the person's answer (ConfirmLink).
func (n *Node) confirmSAS(ctx context.Context, run *linkRun, sas string) (bool, error) {
	n.link.mu.Lock()
	run.sas = sas
	n.link.mu.Unlock()
	select {
	case ok := <-run.answer:
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// LinkStatus says where the last link offered is.
func (n *Node) LinkStatus(context.Context) (api.LinkStatus, error) {
	n.link.mu.Lock()
	defer n.link.mu.Unlock()
	return n.linkStatusLocked(), nil
}

func (n *Node) linkStatusLocked() api.LinkStatus {
	run := n.link.run
	if run == nil {
		return api.LinkStatus{State: api.LinkNone}
	}
	st := api.LinkStatus{Expires: run.expires, Device: run.device}
	switch run.p.State() {
	case devices.LinkWaiting:
		st.State = api.LinkWaiting
	case devices.LinkSAS:
		switch {
		case run.sas == "":
			st.State = api.LinkConnecting
		case run.replied:
			st.State = api.LinkHandover
		default:
			st.State, st.SAS = api.LinkSAS, run.sas
		}
	case devices.LinkLinked:
		st.State = api.LinkLinked
	default:
		st.State = api.LinkFailed
		if run.err != nil {
			st.Reason = run.err.Error()
		} else {
			st.Reason = "the link ended"
		}
	}
	return st
}

// ConfirmLink answers the numbers of the link waiting for them: sas must
// be the digits this device shows (spaces ignored); any other digits
// decline the link.
func (n *Node) ConfirmLink(_ context.Context, sas string) (api.LinkStatus, error) {
	n.link.mu.Lock()
	defer n.link.mu.Unlock()
	run := n.link.run
	if run == nil || run.sas == "" || run.replied || run.p.State() != devices.LinkSAS {
		return api.LinkStatus{}, errNoLink("its numbers")
	}
	ok := digits(sas) == digits(run.sas)
	run.replied = true
	run.answer <- ok
	if !ok {
		return api.LinkStatus{}, api.Errorf(api.CodeConflict, "run `callsign devices link` again and compare the numbers on both screens",
			"the numbers differ from this device's: the link is declined")
	}
	return n.linkStatusLocked(), nil
}

// digits keeps the digits of s.
func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// CancelLink ends the link offered, whatever its state.
func (n *Node) CancelLink(context.Context) (api.LinkStatus, error) {
	n.link.mu.Lock()
	run := n.link.run
	n.link.mu.Unlock()
	if run == nil {
		return api.LinkStatus{}, errNoLink("canceling")
	}
	run.p.Cancel()
	n.link.mu.Lock()
	defer n.link.mu.Unlock()
	return n.linkStatusLocked(), nil
}

// linkAccount is step 5's payload: the account's portable items and the
// roster, once the record has room for one more device.
func (n *Node) linkAccount(ctx context.Context, _ peer.ID) ([]byte, error) {
	if rec, err := n.dht.ResolveIdentity(ctx, n.keys.account.Public().ID()); err == nil && len(rec.Devices) >= dht.MaxDevices {
		return nil, fmt.Errorf("the account has %d devices, the most its record holds: revoke one first", len(rec.Devices))
	}
	var a devices.LinkAccount
	r := n.replica()
	err := n.db.Update(func(tx *store.Tx) error {
		if err := n.rosterSelf(tx, r); err != nil {
			return err
		}
		if err := tx.ExportPortable(func(kind byte, body []byte) error {
			a.Items = append(a.Items, devices.LinkItem{Kind: kind, Body: slices.Clone(body)})
			return nil
		}); err != nil {
			return err
		}
		var err error
		a.Roster, _, err = r.Roster(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a.Marshal()
}

// rosterSelf writes this device's roster entry if it has none: the first
// link of an account names the device that shows the code.
func (n *Node) rosterSelf(tx *store.Tx, r *devices.Replica) error {
	id := n.deviceID()
	if _, ok, err := r.Get(tx, devices.KindRoster, id[:]); err != nil || ok {
		return err
	}
	pid, err := n.host.ID().MarshalBinary()
	if err != nil {
		return err
	}
	e := devices.RosterEntry{PeerID: pid, X25519: n.keys.x25519.PublicKey().Bytes(), Name: defaultDeviceName(), Added: n.started.UTC()}
	return r.Changed(tx, devices.KindRoster, id[:], e.Marshal())
}

// defaultDeviceName is what a device is called until it is named: the
// machine's host name.
func defaultDeviceName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "callsign"
	}
	if len(h) > devices.MaxDeviceName {
		h = h[:devices.MaxDeviceName]
	}
	return h
}

// linkedDevice checks step 6's payload from the new device from and
// takes it in: the device's certificate must be this account's, valid
// now, for from's peer id, of a device neither this one nor revoked. Its
// roster entry is stored, and the account's record is published with it.
func (n *Node) linkedDevice(ctx context.Context, run *linkRun, from peer.ID, b []byte) error {
	ld, err := devices.UnmarshalLinkedDevice(b)
	if err != nil {
		return err
	}
	c := ld.Cert
	id := c.DeviceID()
	switch pid, err := peer.IDFromBytes(c.PeerID); {
	case !c.Account.Equal(n.keys.account.Public()):
		return errors.New("the new device's certificate is not by this account's key")
	case c.Verify(time.Now()) != nil:
		return fmt.Errorf("the new device's certificate: %w", c.Verify(time.Now()))
	case err != nil || pid != from:
		return errors.New("the new device's certificate is for another peer")
	case id == n.deviceID():
		return errors.New("the new device has this device's key")
	}
	r := n.replica()
	err = n.db.Update(func(tx *store.Tx) error {
		if old, ok, err := r.Get(tx, devices.KindRoster, id[:]); err != nil {
			return err
		} else if ok {
			if e, err := devices.UnmarshalRosterEntry(old.Value); err == nil && e.Revoked() {
				return fmt.Errorf("device %s was revoked: %w", id, devices.ErrRevoked)
			}
		}
		if _, err := r.Apply(tx, []devices.Op{ld.Roster}); err != nil {
			return err
		}
		return r.Queue(tx, ld.Roster) // the other devices learn its name
	})
	if err != nil {
		return err
	}
	e, _ := devices.UnmarshalRosterEntry(ld.Roster.Value) // checked by UnmarshalLinkedDevice
	n.link.mu.Lock()
	if n.link.added == nil {
		n.link.added = map[identity.DeviceID]addedDevice{}
	}
	n.link.added[id] = addedDevice{cert: c, bundle: ld.Bundle}
	run.device = &api.OwnDevice{ID: id.String(), Name: e.Name, Added: e.Added}
	n.link.mu.Unlock()
	n.log.Info("device linked", "device", id, "name", e.Name, "peer", from)
	// The record with the new device, and this device's view of its
	// siblings, before the link completes: what this device sends from
	// now on is copied to the new one. On a slow network the full
	// publication (handles, keepers) goes on in the background, which
	// also retries the record.
	if err := n.publishRecord(ctx); err != nil {
		n.log.Info("publishing the record with the linked device; will retry", "err", err)
	} else if err := n.msg.RefreshSelf(ctx); err != nil {
		n.log.Info("reading the record with the linked device", "err", err)
	}
	n.wg.Go(n.publishLinked)
	return nil
}

// publishLinked publishes the account's record and handles with the
// devices linked or revoked here, retrying, then has messaging look its
// own account up again.
func (n *Node) publishLinked() {
	backoff := time.Second
	for {
		err := n.publish(n.ctx)
		if err == nil || n.ctx.Err() != nil || errors.Is(err, msg.ErrDeviceRevoked) {
			break
		}
		n.log.Info("publishing the record with a linked device failed; will retry", "err", err, "in", backoff)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
	if n.ctx.Err() == nil {
		// The record just published is the DHT's cached one.
		if err := n.msg.RefreshSelf(n.ctx); err != nil {
			n.log.Info("reading the account's record after publishing it", "err", err)
		}
	}
}

// addLinked lists the devices linked here in rec, the record this node is
// about to publish.
func (n *Node) addLinked(rec *dht.IdentityRecord) {
	n.link.mu.Lock()
	defer n.link.mu.Unlock()
	for _, d := range n.link.added {
		rec.AddDevice(d.cert, d.bundle)
	}
}

// publishedLinked forgets the devices linked here that pub, a record the
// network confirmed, lists: from now on the network's record carries them.
func (n *Node) publishedLinked(pub *dht.IdentityRecord) {
	n.link.mu.Lock()
	defer n.link.mu.Unlock()
	for _, c := range pub.Devices {
		delete(n.link.added, c.DeviceID())
	}
}

// Devices lists the account's devices: those its record names and those
// its roster knows, with the names the roster gives them.
func (n *Node) Devices(ctx context.Context) ([]api.OwnDevice, error) {
	self := n.deviceID()
	byID := map[identity.DeviceID]*api.OwnDevice{self: {ID: self.String(), Name: defaultDeviceName(), Current: true}}
	var order []identity.DeviceID
	order = append(order, self)
	add := func(id identity.DeviceID) *api.OwnDevice {
		d, ok := byID[id]
		if !ok {
			d = &api.OwnDevice{ID: id.String()}
			byID[id] = d
			order = append(order, id)
		}
		return d
	}
	rec, err := n.dht.ResolveIdentity(ctx, n.keys.account.Public().ID())
	if err == nil {
		for _, c := range rec.Devices {
			add(c.DeviceID())
		}
		for _, id := range rec.Revoked {
			add(id).Revoked = true
		}
	} else if !errors.Is(err, dht.ErrNotFound) {
		n.log.Info("devices: the account's record", "err", err)
	}
	var entries []devices.RosterEntry
	if err := n.db.View(func(tx *store.Tx) (err error) { _, entries, err = n.replica().Roster(tx); return err }); err != nil {
		return nil, err
	}
	for _, e := range entries {
		d := add(e.DeviceID())
		d.Name, d.Added = e.Name, e.Added
		d.Revoked = d.Revoked || e.Revoked()
	}
	out := make([]api.OwnDevice, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}
