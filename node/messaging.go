package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/groupchat"
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
	var revoked bool
	if err := n.db.View(func(tx *store.Tx) (err error) { revoked, err = tx.Revoked(); return err }); err != nil {
		return err
	}
	// Group chats ride on messaging: their carriers go through its outbox
	// (QueueGroup), and it hands them back (OnGroup).
	groups, err := groupchat.New(groupchat.Config{DB: n.db, Account: n.keys.account, Device: cert.DeviceID(),
		Transport: groupTransport{n}, OnEvent: n.onGroupEvent, Log: n.log.With("component", "groups")})
	if err != nil {
		return fmt.Errorf("group chats: %w", err)
	}
	n.groups = groups
	n.closers = append(n.closers, groups.Close)
	svc, err := msg.New(msg.Config{
		Revoked:   revoked,
		OnRevoked: n.onRevoked,
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
		ViewAge:   n.cfg.Network.ViewAge,
		Mailboxes: n.mailboxPeers,
		Logger:    n.log.With("component", "msg"),

		// Asked before anything of a signal is decrypted (node/calls.go).
		AcceptSignal: n.acceptSignal,
		// The account's shared state between its devices (node/sync.go).
		OnSync:     n.onSync,
		OnSiblings: n.onSiblings,
		OnGroup:    groups.Receive,
		// Attachments follow their messages to mailboxes (node/files.go).
		OnDeposited: n.files.onDeposited,
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
	n.wg.Go(n.files.resume)
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
	// Every device of the record, each with its bundle: a message goes to
	// each (docs/DEVICES.md §2.1).
	r := msg.Recipient{Account: rec.Account, Devices: rec.Devices, Revoked: rec.Revoked}
	for i := range rec.Devices {
		r.Bundles = append(r.Bundles, rec.Bundle(i))
	}
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

// Forget implements msg.Forgetter: the DHT's cached record of account
// goes.
func (d directory) Forget(account identity.AccountID) { d.n.dht.ForgetIdentity(account) }

// policy is messaging's policy: what the address book says about the
// sender (contacts.Book.MessageFrom).
type policy struct{ n *Node }

func (p policy) Classify(from identity.AccountID) msg.Decision {
	a, err := p.n.contacts.MessageFrom(from)
	if err != nil {
		p.n.log.Warn("message policy: contact lookup failed; holding as a request", "err", err)
	}
	switch a {
	case contacts.Deliver:
		return msg.Deliver
	case contacts.Drop:
		return msg.Drop
	}
	// A member of a group this account joined is no stranger.
	if g := p.n.groups; g != nil && g.IsMember(from) {
		return msg.Deliver
	}
	return msg.Request
}

// groupTransport carries the group chats' carriers through messaging.
type groupTransport struct{ n *Node }

func (t groupTransport) QueueGroup(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error {
	return t.n.msg.QueueGroup(ctx, to, bodies...)
}

// QueueGroupDirect carries carriers that go to no mailbox (a group's
// receipts).
func (t groupTransport) QueueGroupDirect(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error {
	return t.n.msg.QueueGroupDirect(ctx, to, bodies...)
}

// QueueGroupFile carries a message with an attachment (file, its
// files.Ref), which is parked with the carrier at the mailbox of a member
// that can't be reached (node/files.go).
func (t groupTransport) QueueGroupFile(ctx context.Context, to []identity.AccountID, file []byte, bodies ...[]byte) error {
	return t.n.msg.QueueGroupFile(ctx, to, file, bodies...)
}

// onGroupEvent hands a change of the group chats to the API's
// subscribers.
func (n *Node) onGroupEvent(ev groupchat.Event) {
	switch ev.Kind {
	case groupchat.EventMessage:
		if ev.Updated {
			n.files.removeFile(ev.Removed) // deleted for everyone: its file goes
			break
		}
		if ev.Message != nil && !ev.Message.Out {
			n.metrics.Message(msg.DirIn, false)
		}
		n.files.onGroupMessage(ev.Message)
	case groupchat.EventDeleted:
		if ev.Message != nil {
			n.files.removeFile(ev.Message.File)
		}
	}
	if b := n.backend.Load(); b != nil {
		b.GroupEvent(ev)
	}
}

// onMsgEvent counts a message event, offers our addresses to a contact who
// wrote (privacy.go), and hands the event to the API's subscribers.
func (n *Node) onMsgEvent(ev msg.Event) {
	switch ev.Kind {
	case msg.EventMessage:
		if ev.Message == nil {
			return
		}
		// An outgoing message here is a copy of one this account sent
		// from another of its devices: the peer did not speak, and this
		// device did not send it.
		if ev.Message.Direction == msg.DirIn {
			if !ev.Request {
				n.priv.contactSpoke(ev.Peer)
			}
			n.metrics.Message(ev.Message.Direction, ev.Request)
		}
		n.files.onMessage(ev)
	case msg.EventDeleted:
		n.files.onDeleted(ev)
	case msg.EventState:
		n.metrics.state(ev.State)
	}
	// Nil until the API is about to start: nobody can be subscribed yet.
	if b := n.backend.Load(); b != nil {
		b.MessageEvent(ev)
	}
}
