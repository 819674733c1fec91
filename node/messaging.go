package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// startMsg starts end-to-end encrypted messaging: the msg service owns the
// protocol, the outbox and the prekeys; the node supplies the directory (the
// DHT) and the policy (contacts, requests, blocking).
func (n *Node) startMsg(ctx context.Context) error {
	if err := n.startMailbox(ctx); err != nil {
		return err
	}
	pid, err := peer.IDFromPrivateKey(n.keys.device)
	if err != nil {
		return err
	}
	now := time.Now()
	cert, err := identity.IssueDeviceCert(n.keys.account, []byte(pid), n.keys.x25519.PublicKey().Bytes(), now, now.Add(deviceCertTTL))
	if err != nil {
		return fmt.Errorf("device certificate: %w", err)
	}
	n.cert = cert
	svc, err := msg.New(msg.Config{
		Host:      n.host,
		DB:        n.db,
		Account:   n.keys.account,
		DeviceDH:  n.keys.x25519,
		Cert:      cert,
		Directory: directory{n},
		Policy:    policy{n},
		OnEvent:   n.onMsgEvent,
		OnSignal:  n.onSignal,
		RetryMin:  n.cfg.Network.RetryMin,
		RetryMax:  n.cfg.Network.RetryMax,
		Mailboxes: n.mailboxPeers,
		Logger:    n.log.With("component", "msg"),
	})
	if err != nil {
		return fmt.Errorf("messaging: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("messaging: %w", err)
	}
	n.msg = svc
	n.closers = append(n.closers, svc.Close)
	n.priv.start(svc)
	n.wg.Go(n.bundleLoop)
	return nil
}

// bundleLoop republishes the identity record whenever the prekey bundle in
// it changes (rotation, one-time prekeys used up).
func (n *Node) bundleLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.msg.BundleChanged():
		}
		if !n.Published() {
			continue // the first publication will carry the new bundle
		}
		if err := n.publish(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Info("republish after prekey rotation", "err", err)
		}
	}
}

// directory resolves accounts for the msg service through the DHT, and
// makes their devices dialable.
type directory struct{ n *Node }

func (d directory) Lookup(ctx context.Context, account identity.AccountID) (msg.Recipient, error) {
	rec, err := d.n.dht.ResolveIdentity(ctx, account)
	if err != nil {
		return msg.Recipient{}, err
	}
	r := msg.Recipient{Account: rec.Account, Devices: rec.Devices, Bundle: rec.Prekeys}
	for _, a := range rec.Relays {
		if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
			r.Relays = append(r.Relays, *ai)
		}
	}
	r.Relays = mergeAddrInfos(r.Relays)
	for _, a := range rec.Mailboxes {
		if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
			r.Mailboxes = append(r.Mailboxes, *ai)
		}
	}
	r.Mailboxes = mergeAddrInfos(r.Mailboxes)
	for _, dev := range rec.Devices {
		pid, err := peer.IDFromBytes(dev.PeerID)
		if err != nil || pid == d.n.host.ID() {
			continue
		}
		if len(d.n.host.Network().ConnsToPeer(pid)) > 0 {
			continue
		}
		// Not connected: the addresses we know may be stale (the peer
		// restarted on another port), so ask the DHT for fresh ones.
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ai, err := d.n.dht.FindPeer(fctx, pid)
		cancel()
		if err == nil && len(ai.Addrs) > 0 {
			d.n.host.Peerstore().AddAddrs(pid, ai.Addrs, peerstore.TempAddrTTL)
		}
	}
	return r, nil
}

// policy decides what happens to a message from an account: contacts'
// messages are delivered, blocked accounts' dropped silently, and everyone
// else's wait in requests until accepted.
type policy struct{ n *Node }

func (p policy) Classify(from identity.AccountID) msg.Decision {
	var c store.Contact
	err := p.n.db.View(func(tx *store.Tx) error {
		var err error
		c, err = tx.Contact(from.String())
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return msg.Request
	case err != nil:
		p.n.log.Warn("message policy: contact lookup failed; holding as a request", "err", err)
		return msg.Request
	case c.Blocked:
		return msg.Drop
	case c.KeyChanged:
		// The contact's handle now points at another key: keep the
		// conversation with the pinned key, but hold new messages back as a
		// request until the user has verified again.
		return msg.Request
	}
	return msg.Deliver
}

func (n *Node) onMsgEvent(ev msg.Event) {
	switch ev.Kind {
	case msg.EventMessage:
		if ev.Message == nil {
			return
		}
		if !ev.Request {
			n.priv.contactSpoke(ev.Peer)
		}
		m := n.toAPIMessage(*ev.Message, n.petname(ev.Message.Peer))
		n.metrics.message(m.Direction, ev.Request)
		n.events.publish(api.NewEvent(api.EventMessage, m))
		if ev.Request {
			n.events.publish(api.NewEvent(api.EventRequest, m))
		}
	case msg.EventState:
		n.metrics.state(ev.State)
		n.events.publish(api.NewEvent(api.EventState, api.StateChange{ID: ev.ID, Peer: string(ev.Peer), State: ev.State, Reason: ev.Reason}))
	}
}

func (n *Node) toAPIMessage(m store.Message, peerName string) api.Message {
	me := n.Account().String()
	out := api.Message{ID: m.ID, Text: string(m.Body), SentAt: m.SentAt.UTC(), State: m.State, Direction: m.Direction, Peer: m.Peer, PeerName: peerName}
	if m.Direction == store.DirIn {
		out.From, out.To = m.Peer, me
	} else {
		out.From, out.To = me, m.Peer
	}
	return out
}

// peerFor finds the account a name refers to: a contact (petname, handle
// or account id), an account id, or — when network is set — a handle
// resolved on the DHT, whose resolution it returns so that the rest of the
// operation (pinning the key of a new contact) does not look it up again.
// A contact whose key changed is refused until the user verifies again.
func (n *Node) peerFor(ctx context.Context, name string, network bool) (identity.AccountID, *store.Contact, *dht.Resolution, error) {
	var c store.Contact
	err := n.db.View(func(tx *store.Tx) error {
		var err error
		c, err = findContact(tx, name)
		return err
	})
	if err == nil {
		return identity.AccountID(c.Account), &c, nil, nil
	}
	if !api.IsCode(err, api.CodeNotFound) {
		return "", nil, nil, err
	}
	if id, err := identity.ParseAccountID(name); err == nil {
		return id, nil, nil, nil
	}
	if !network {
		return "", nil, nil, api.Errorf(api.CodeNotFound, "use a contact's petname or handle, or an account id", "no conversation with %q", name)
	}
	res, err := n.resolve(ctx, name)
	if err != nil {
		return "", nil, nil, err
	}
	if res.Status != "ok" {
		return "", nil, nil, api.Errorf(api.CodeNotFound, "check the name with `callsign whois`", "cannot send to %s: %s", name, strings.ReplaceAll(string(res.Status), "_", " "))
	}
	if _, changed, err := n.checkPin(res); err != nil {
		return "", nil, nil, err
	} else if changed {
		return "", nil, nil, api.Errorf(api.CodeConflict, "compare safety numbers with `callsign verify "+name+"`, then confirm with --confirmed",
			"held back: @%s now resolves to a different key than the one you pinned", res.Name)
	}
	return res.Owner.ID(), nil, res, nil
}

// Send implements api.Backend: it returns once the message is durable in
// the outbox.
func (n *Node) Send(ctx context.Context, to, text string) (api.Message, error) {
	if text == "" {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "empty message")
	}
	if !utf8.ValidString(text) {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "message is not valid UTF-8")
	}
	if len(text) > msg.DefaultMaxMessage {
		return api.Message{}, api.Errorf(api.CodeTooLarge, "split it into several messages", "message is %d bytes; the limit is %d bytes", len(text), msg.DefaultMaxMessage)
	}
	id, c, res, err := n.peerFor(ctx, to, true)
	if err != nil {
		return api.Message{}, err
	}
	if c != nil && c.KeyChanged {
		return api.Message{}, api.Errorf(api.CodeConflict, "compare safety numbers with `callsign verify "+to+"`, then confirm with --confirmed",
			"held back: %s's handle now resolves to a different key than the one you pinned", c.Petname)
	}
	if id == n.Account() {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "that is your own account")
	}
	if c == nil {
		// Writing to someone makes them a contact: their key is pinned now
		// (trust on first use) and their replies are not requests.
		if res == nil { // an account id: its key is looked up now
			if res, err = n.resolve(ctx, to); err != nil {
				return api.Message{}, err
			}
		}
		ct, err := n.addResolved(ctx, to, res, "")
		if err != nil {
			return api.Message{}, err
		}
		c = &store.Contact{Account: ct.Account, Petname: ct.Petname}
		id = identity.AccountID(ct.Account)
	}
	m, err := n.msg.Send(ctx, id, []byte(text))
	if err != nil {
		if errors.Is(err, msg.ErrTooLarge) {
			return api.Message{}, api.Errorf(api.CodeTooLarge, "", "%v", err)
		}
		return api.Message{}, err
	}
	name := ""
	if c != nil {
		name = c.Petname
	}
	out := n.toAPIMessage(m, name)
	// Every client of this node (another tab, `messages --follow`) sees
	// what was sent, whoever sent it.
	n.metrics.message(out.Direction, false)
	n.events.publish(api.NewEvent(api.EventMessage, out))
	return out, nil
}

// petname is the petname of a contact, "" for someone who is not one.
func (n *Node) petname(account string) string {
	var name string
	_ = n.db.View(func(tx *store.Tx) error {
		if c, err := tx.Contact(account); err == nil {
			name = c.Petname
		}
		return nil
	})
	return name
}

// petnames maps account ids to petnames for display.
func (n *Node) petnames() map[string]string {
	out := map[string]string{}
	_ = n.db.View(func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for _, c := range cs {
			out[c.Account] = c.Petname
		}
		return err
	})
	return out
}

func (n *Node) conversations(requests bool) ([]api.Conversation, error) {
	var cs []store.Conversation
	last := map[string]store.Message{}
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		if cs, err = tx.Conversations(); err != nil {
			return err
		}
		for _, c := range cs {
			if c.Request != requests {
				continue
			}
			ms, _, err := tx.Messages(c.Peer, store.Page{Limit: 1, Newest: true})
			if store.IsCorrupt(err) {
				continue // no preview; opening the conversation reports the damage
			}
			if err != nil {
				return err
			}
			if len(ms) > 0 {
				last[c.Peer] = ms[0]
			}
		}
		return nil
	}); err != nil {
		return nil, apiStoreError(err)
	}
	names := n.petnames()
	out := []api.Conversation{}
	for _, c := range cs {
		if c.Request != requests {
			continue
		}
		conv := api.Conversation{Peer: c.Peer, PeerName: names[c.Peer], LastAt: c.LastAt.UTC(), Unread: c.Unread, Request: c.Request}
		if m, ok := last[c.Peer]; ok {
			am := n.toAPIMessage(m, conv.PeerName)
			conv.Last = &am
		}
		out = append(out, conv)
	}
	// Most recent first, as a chat list shows them.
	slices.SortStableFunc(out, func(a, b api.Conversation) int { return b.LastAt.Compare(a.LastAt) })
	return out, nil
}

// Conversations implements api.Backend.
func (n *Node) Conversations(ctx context.Context) ([]api.Conversation, error) {
	return n.conversations(false)
}

// Requests implements api.Backend. Senders that are not contacts are
// named by the handle their identity record claims, looked up briefly.
func (n *Node) Requests(ctx context.Context) ([]api.Conversation, error) {
	all, err := n.conversations(true)
	if err != nil {
		return nil, err
	}
	// A request from someone since blocked is gone from the list: what
	// they sent stays on disk until the conversation is deleted, but
	// nothing asks the user about it again.
	blocked := map[string]bool{}
	if err := n.db.View(func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for _, c := range cs {
			blocked[c.Account] = c.Blocked
		}
		return err
	}); err != nil {
		return nil, err
	}
	reqs := all[:0]
	for _, r := range all {
		if !blocked[r.Peer] {
			reqs = append(reqs, r)
		}
	}
	for i := range reqs {
		if reqs[i].PeerName != "" {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		rec, err := n.dht.ResolveIdentity(lctx, identity.AccountID(reqs[i].Peer))
		cancel()
		if err != nil {
			continue
		}
		reqs[i].PeerName = n.verifiedHandle(ctx, rec.Account, rec.Handles)
	}
	return reqs, nil
}

// verifiedHandle picks the name to show for an account from the handles
// its identity record claims. A record can claim anything, so a global
// handle is shown only if it resolves to this account; else the
// self-certifying handle, which is checked against the key.
func (n *Node) verifiedHandle(ctx context.Context, owner identity.AccountPub, handles []string) string {
	self := ""
	tried := 0
	for _, h := range handles {
		if identity.IsSelfCert(h) {
			if identity.VerifySelfCert(h, owner) && self == "" {
				self = h
			}
			continue
		}
		if tried == 2 {
			continue
		}
		tried++
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := n.dht.Resolve(lctx, h)
		cancel()
		if err == nil && res.Status == "ok" && res.Owner.Equal(owner) {
			return h
		}
	}
	return self
}

// Messages implements api.Backend.
func (n *Node) Messages(ctx context.Context, name string, pr api.PageRequest) (api.MessagePage, error) {
	id, c, _, err := n.peerFor(ctx, name, true)
	if err != nil {
		return api.MessagePage{}, err
	}
	var ms []store.Message
	var next string
	err = n.db.View(func(tx *store.Tx) error {
		var err error
		ms, next, err = tx.Messages(id.String(), store.Page{Cursor: pr.Cursor, Limit: pr.Limit, Newest: pr.Newest})
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return api.MessagePage{}, api.Errorf(api.CodeBadRequest, "", "bad cursor")
		}
		return api.MessagePage{}, apiStoreError(err)
	}
	page := api.MessagePage{Messages: make([]api.Message, 0, len(ms)), Next: next}
	peerName := ""
	if c != nil {
		peerName = c.Petname
		if c.KeyChanged {
			page.Warning = fmt.Sprintf("%s's handle now resolves to a different key; new messages from it are held back until you verify again", c.Petname)
		}
	}
	for _, m := range ms {
		page.Messages = append(page.Messages, n.toAPIMessage(m, peerName))
	}
	return page, nil
}

// MarkRead implements api.Backend; nil ids marks every unread incoming
// message read.
func (n *Node) MarkRead(ctx context.Context, name string, ids []string) error {
	id, _, _, err := n.peerFor(ctx, name, false)
	if err != nil {
		return err
	}
	if ids == nil {
		err := n.db.View(func(tx *store.Tx) error {
			cursor := ""
			for {
				ms, next, err := tx.Messages(id.String(), store.Page{Cursor: cursor, Limit: 1000})
				if err != nil {
					return err
				}
				for _, m := range ms {
					if m.Direction == store.DirIn && m.State != msg.StateRead {
						ids = append(ids, m.ID)
					}
				}
				if next == "" {
					return nil
				}
				cursor = next
			}
		})
		if err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := n.msg.MarkRead(ctx, id, ids); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return api.Errorf(api.CodeBadRequest, "", "%v", err)
		}
		return err
	}
	return nil
}

// accountPub finds the public key of an account and the handles its
// record claims: from res when this operation resolved it already, else
// from its identity record on the DHT.
func (n *Node) accountPub(ctx context.Context, id identity.AccountID, res *dht.Resolution) (identity.AccountPub, []string, error) {
	if res != nil && res.Owner.ID() == id { // looked up already in this operation
		var handles []string
		if res.Identity != nil {
			handles = res.Identity.Handles
		}
		return res.Owner, handles, nil
	}
	rec, err := n.dht.ResolveIdentity(ctx, id)
	if err != nil {
		return identity.AccountPub{}, nil, api.Errorf(api.CodeUnavailable, "try again once the node has peers", "look up %s: %v", id, err)
	}
	return rec.Account, rec.Handles, nil
}

// Accept implements api.Backend: the sender of a message request becomes
// a contact (its key pinned) and its conversation a normal one.
func (n *Node) Accept(ctx context.Context, name string) (api.Contact, error) {
	id, c, res, err := n.peerFor(ctx, name, true)
	if err != nil {
		return api.Contact{}, err
	}
	if c == nil {
		pub, handles, err := n.accountPub(ctx, id, res)
		if err != nil {
			return api.Contact{}, err
		}
		now := time.Now().UTC()
		c = &store.Contact{Account: id.String(), PubKey: pub.Bytes(), AddedAt: now, PinnedAt: now}
		for _, h := range handles {
			if !identity.IsSelfCert(h) {
				c.Handle = h
				break
			}
		}
		if c.Handle == "" && len(handles) > 0 {
			c.Handle = handles[0]
		}
		c.Petname = c.Handle
		if c.Petname == "" {
			c.Petname = id.String()
		}
	}
	c.Accepted, c.Blocked = true, false
	err = n.db.Update(func(tx *store.Tx) error {
		if other, err := tx.ContactByPetname(c.Petname); err == nil && other.Account != c.Account {
			c.Petname = c.Petname + "-" + c.Account[4:10]
		}
		if err := tx.PutContact(*c); err != nil {
			return err
		}
		conv, err := tx.Conversation(c.Account)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		conv.Request = false
		return tx.PutConversation(conv)
	})
	if err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(*c), nil
}

// SetContactFlag implements api.Backend for block and follow. Blocking or
// following someone who is not a contact yet makes them one.
func (n *Node) SetContactFlag(ctx context.Context, name, flag string, on bool) (api.Contact, error) {
	id, c, res, err := n.peerFor(ctx, name, true)
	if err != nil {
		return api.Contact{}, err
	}
	if c == nil {
		if !on {
			return api.Contact{}, api.Errorf(api.CodeNotFound, "`callsign contacts list` shows your contacts", "no contact %q", name)
		}
		pub, _, err := n.accountPub(ctx, id, res)
		if err != nil {
			return api.Contact{}, err
		}
		now := time.Now().UTC()
		c = &store.Contact{Account: id.String(), PubKey: pub.Bytes(), Petname: name, AddedAt: now, PinnedAt: now}
		if h, err := identity.NormalizeHandle(name); err == nil {
			c.Handle = h
		}
		if checkPetname(name) != nil || strings.HasPrefix(name, "csa1") {
			c.Petname = id.String()
		}
	}
	switch flag {
	case "block":
		c.Blocked = on
	case "follow":
		c.Following = on
	default:
		return api.Contact{}, api.Errorf(api.CodeBadRequest, "", "unknown flag %q", flag)
	}
	if err := n.db.Update(func(tx *store.Tx) error { return tx.PutContact(*c) }); err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(*c), nil
}

// Safety implements api.Backend: the safety number with a contact, and with
// confirm, marking it verified. After a key change the number is the one
// for the new key, and confirming re-pins the contact to it.
func (n *Node) Safety(ctx context.Context, name string, confirm bool) (api.Safety, error) {
	var c store.Contact
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		c, err = findContact(tx, name)
		return err
	}); err != nil {
		return api.Safety{}, err
	}
	keyBytes := c.PubKey
	if c.KeyChanged && len(c.SeenPubKey) > 0 {
		keyBytes = c.SeenPubKey
	}
	pub, err := identity.ParseAccountPub(keyBytes)
	if err != nil {
		return api.Safety{}, fmt.Errorf("contact %s has no usable key: %w", c.Petname, err)
	}
	out := api.Safety{Name: c.Petname, Account: pub.ID().String(), SafetyNumber: identity.SafetyNumber(n.keys.account.Public(), pub),
		Verified: c.Verified && !c.KeyChanged, KeyChanged: c.KeyChanged}
	if !confirm {
		return out, nil
	}
	err = n.db.Update(func(tx *store.Tx) error {
		if c.KeyChanged {
			if err := tx.DeleteContact(c.Account); err != nil {
				return err
			}
			c.Account, c.PubKey, c.SeenPubKey, c.KeyChanged = pub.ID().String(), pub.Bytes(), nil, false
			c.PinnedAt = time.Now().UTC()
		}
		c.Verified = true
		return tx.PutContact(c)
	})
	if err != nil {
		return api.Safety{}, err
	}
	out.Verified, out.KeyChanged = true, false
	return out, nil
}
