package msg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// handleMsg serves one inbound ProtocolMsg (or ProtocolMsg10) stream: it
// reads Deliver frames, commits the ones that arrived together in one
// transaction and answers each with an Ack, in order. A frame that does
// not parse or exceeds the cap resets the stream. A stream that is not
// known to be a contact's waits at most strangerIdle for each frame, and
// moves to the contacts' pool once a frame shows a contact's certificate.
func (s *Service) handleMsg(ctx context.Context, st network.Stream) error {
	rx := rxStream{v: v10}
	if st.Protocol() == ProtocolMsg {
		rx.v = v11
	}
	return s.serveStream(ctx, st, &rx, maxDeliverFrame(s.cfg.MaxMessage))
}

// handleSignal serves one inbound ProtocolSignal stream, the signal lane:
// as handleMsg, with 1.1.0 frames, but only call signals, capped at
// maxSignalFrame, with slots and a frame budget of their own. Anything
// else resets the stream: a frame that is not a control frame, a sender
// certificate that does not verify, a sender Config.AcceptSignal refuses
// (before anything is decrypted or stored). A frame that decrypts to
// something other than a signal is refused.
func (s *Service) handleSignal(ctx context.Context, st network.Stream) error {
	rx := rxStream{v: v11, lane: true}
	return s.serveStream(ctx, st, &rx, maxSignalFrame)
}

func (s *Service) serveStream(ctx context.Context, st network.Stream, rx *rxStream, maxFrame int) error {
	remote := st.Conn().RemotePeer()
	key := inboundKey{remote, rx.lane}
	if !s.acquireInbound(key) {
		return p2p.WithCode(p2p.CodeOverloaded, errors.New("too many streams from this peer"))
	}
	defer s.releaseInbound(key)
	lim := s.limiter(key)
	br := bufio.NewReaderSize(st, 64<<10)
	bw := bufio.NewWriterSize(st, 16<<10)
	known := p2p.IsKnown(ctx)
	for {
		idle := inboundIdle
		if !known {
			idle = strangerIdle
		}
		st.SetReadDeadline(time.Now().Add(idle))
		b, err := p2p.ReadFrame(br, maxFrame)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readError(err)
		}
		batch, size := [][]byte{b}, len(b)
		for br.Buffered() > 0 && len(batch) < min(maxBatch, lim.Burst()) && size < maxBatchBytes {
			b, err := p2p.ReadFrame(br, maxFrame)
			if err != nil {
				return readError(err)
			}
			batch, size = append(batch, b), size+len(b)
		}
		if err := lim.WaitN(ctx, len(batch)); err != nil {
			return p2p.WithCode(p2p.CodeRateLimited, err)
		}
		acks, err := s.receive(remote, rx, batch)
		if err != nil {
			return err
		}
		if !known && rx.contact != "" {
			// A contact's device: remembered, so its next stream gets a
			// contact's slot at once, and this one moves there now.
			s.learnPeer(remote, rx.contact)
			known = p2p.Promote(ctx)
		}
		st.SetWriteDeadline(time.Now().Add(ackTimeout))
		for _, a := range acks {
			if err := p2p.WriteFrame(bw, a.marshal()); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// rxStream is what one inbound stream remembers between batches.
type rxStream struct {
	v       version
	lane    bool // the signal lane: signals only
	cc      certCache
	paid    identity.AccountID // the sender whose first-contact stamp this stream checked
	contact identity.AccountID // the last sender, if the Policy delivers it (a contact)
	relayed []Message          // texts a sibling relayed, stored after the batch (storeRelayed)
}

func readError(err error) error {
	switch {
	case errors.Is(err, p2p.ErrFrameTooLarge):
		return p2p.WithCode(p2p.CodeTooLarge, err)
	case errors.Is(err, p2p.ErrBadVarint), errors.Is(err, io.ErrUnexpectedEOF):
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	return err
}

// inboundKey counts a peer's inbound streams and frames: its msg streams
// and its signal lane apart, so a text backlog never stalls a signal.
type inboundKey struct {
	peer peer.ID
	lane bool
}

func (s *Service) acquireInbound(k inboundKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound[k] >= maxStreamsPerPeer {
		return false
	}
	s.inbound[k]++
	return true
}

func (s *Service) releaseInbound(k inboundKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound[k]--; s.inbound[k] <= 0 {
		delete(s.inbound, k)
	}
}

// limiter returns k's frame bucket: Config.PeerRate for msg streams,
// signalRate for the signal lane. Buckets of peers without streams that
// have refilled are forgotten when the map grows, bounding its memory.
func (s *Service) limiter(k inboundKey) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[k]
	if l == nil {
		if len(s.limiters) >= 4096 {
			now := time.Now()
			for q, ql := range s.limiters {
				if s.inbound[q] == 0 && ql.TokensAt(now) >= float64(ql.Burst()) {
					delete(s.limiters, q)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(s.cfg.PeerRate), s.cfg.PeerBurst)
		if k.lane {
			l = rate.NewLimiter(signalRate, signalBurst)
		}
		s.limiters[k] = l
	}
	return l
}

// certCache remembers the last sender certificate a stream verified.
type certCache struct {
	raw     []byte
	pub     identity.AccountPub
	id      identity.AccountID // pub.ID(), computed once per certificate
	dh      []byte             // the device's X25519 identity key
	dev     identity.DeviceID  // its DeviceID
	expires time.Time
}

// checkSender verifies a Deliver's sender fields against the stream's
// remote peer: the certificate must parse, verify now, name the frame's
// sender account and certify remote. On success cc holds the certificate.
func (s *Service) checkSender(cc *certCache, f *deliverFrame, remote peer.ID, now time.Time) (identity.AccountPub, identity.AccountID, string) {
	if cc.raw != nil && bytes.Equal(cc.raw, f.cert) && now.Before(cc.expires) {
		if !bytes.Equal(cc.pub.Bytes(), f.sender) {
			return identity.AccountPub{}, "", "sender does not match the certificate"
		}
		return cc.pub, cc.id, ""
	}
	*cc = certCache{}
	cert, err := identity.UnmarshalDeviceCert(f.cert)
	if err != nil {
		return identity.AccountPub{}, "", "malformed device certificate"
	}
	if !bytes.Equal(cert.Account.Bytes(), f.sender) {
		return identity.AccountPub{}, "", "sender does not match the certificate"
	}
	if string(cert.PeerID) != string(remote) {
		return identity.AccountPub{}, "", "certificate is for another peer"
	}
	if err := cert.Verify(now); err != nil {
		return identity.AccountPub{}, "", "invalid device certificate"
	}
	id := cert.Account.ID()
	*cc = certCache{raw: bytes.Clone(f.cert), pub: cert.Account, id: id, dh: cert.X25519, dev: cert.DeviceID(), expires: cert.Expires}
	return cert.Account, id, ""
}

// rxItem is one Deliver frame being received.
type rxItem struct {
	f   deliverFrame
	dh  []byte // the sending device's X25519 identity key, from its certificate
	ack *ackFrame
}

// receive processes a batch of frames from remote and returns their acks.
// An error means nothing of the batch was committed; the stream is reset.
func (s *Service) receive(remote peer.ID, rx *rxStream, batch [][]byte) ([]ackFrame, error) {
	now := s.cfg.Now()
	acks := make([]ackFrame, len(batch))
	// Frames are received per sending device: each has its own sessions.
	type sender struct {
		acct identity.AccountID
		dev  identity.DeviceID
	}
	groups := map[sender][]rxItem{}
	var order []sender
	pubs := map[identity.AccountID]identity.AccountPub{}
	for i, b := range batch {
		var f deliverFrame
		var err error
		if rx.lane {
			f, err = unmarshalSignalFrame(b)
		} else {
			f, err = unmarshalDeliver(b, s.maxCT, rx.v)
		}
		if err != nil {
			return nil, p2p.WithCode(p2p.CodeBadRequest, err)
		}
		acks[i].id = f.id
		pub, acct, reason := s.checkSender(&rx.cc, &f, remote, now)
		if reason == "" && s.isRevoked(acct, rx.cc.dev) {
			reason = reasonRevoked
		}
		switch {
		case reason != "" || acct != s.selfID:
		case rx.cc.dev == s.selfDev:
			reason = "sender is this device"
		case rx.lane:
			// Calls ring on one device until they ring on every one
			// (docs/DEVICES.md §3): no signals between siblings yet.
			reason = "sender is this account"
		}
		if reason != "" && rx.lane {
			return nil, p2p.WithCode(p2p.CodeBadRequest, errors.New("signal lane: "+reason))
		}
		if reason != "" {
			acks[i].status, acks[i].reason = statusRefused, reason
			continue
		}
		if rx.lane && s.cfg.AcceptSignal != nil && !s.cfg.AcceptSignal(acct) {
			return nil, p2p.WithCode(p2p.CodeRefused, errors.New("signal lane: signals from this account are not accepted"))
		}
		from := sender{acct, rx.cc.dev}
		if _, ok := groups[from]; !ok {
			order = append(order, from)
			pubs[acct] = pub
		}
		groups[from] = append(groups[from], rxItem{f: f, dh: rx.cc.dh, ack: &acks[i]})
	}
	for _, from := range order {
		if err := s.receiveFrom(rx, from.acct, pubs[from.acct], from.dev, groups[from]); err != nil {
			return nil, err
		}
	}
	if len(rx.relayed) > 0 {
		// Under their senders' locks, not this account's: after its
		// commit (a crash in between loses them here; the sender's next
		// look at the record sends it the texts that follow).
		s.storeRelayed(rx.relayed)
		rx.relayed = nil
	}
	return acks, nil
}

// refusal turns a decryption error into the short reason the sender sees.
func refusal(err error) string {
	switch {
	case errors.Is(err, e2e.ErrReplay):
		return "session: replayed message"
	case errors.Is(err, e2e.ErrUnknownPrekey):
		return reasonUnknownPrekey
	case errors.Is(err, e2e.ErrNoSession):
		return reasonNoSession
	case errors.Is(err, e2e.ErrTooManySkipped):
		return "session: too many skipped messages"
	case errors.Is(err, e2e.ErrBadSignature):
		return "session: bad signature"
	case errors.Is(err, e2e.ErrMalformed):
		return "session: malformed ciphertext"
	}
	return reasonUndecryptable
}

// receiveFrom handles the frames of one device of a sender account: policy,
// dedup by id before decrypting, the first-contact stamp and the request
// limits of a sender that is not a contact, decryption with the sessions
// with that device, and one transaction for their state, the messages,
// their seen ids and the conversation.
func (s *Service) receiveFrom(rx *rxStream, acct identity.AccountID, pub identity.AccountPub, dev identity.DeviceID, items []rxItem) error {
	// A sibling (another device of this account) sends only copies of
	// the messages it sent; no policy, stamp or request cap applies.
	sibling := acct == s.selfID
	dec := Deliver
	if !sibling {
		dec = s.cfg.Policy.Classify(acct)
	}
	rx.contact = ""
	if dec == Deliver {
		rx.contact = acct
		if !sibling {
			s.forgetRequests(acct) // accepted, if it was a request
		}
	}
	if dec == Drop {
		// A blocked sender's messages are acknowledged and dropped unread.
		// Its control frames are still opened, so that a call invite
		// reaches the call policy, which refuses it and logs it.
		kept := items[:0]
		for _, it := range items {
			if it.f.kind == kindReceipt && s.cfg.OnSignal != nil {
				kept = append(kept, it)
				continue
			}
			it.ack.status = statusStored
		}
		if items = kept; len(items) == 0 {
			return nil
		}
	}
	// The sessions are the sending device's lane's; the conversation is
	// the account's, whose lock serialises every writer of it.
	a := s.acct(acct)
	ps := s.lane(a, dev)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := s.loadSetLocked(ps); err != nil {
		return p2p.WithCode(p2p.CodeInternal, err)
	}
	set := ps.set
	peerID := string(acct)

	// Dedup before decrypting, with one read per id: a seen id is a
	// duplicate; an id one of our own messages to this peer has is refused.
	// Under ps.mu nothing else stores into this conversation until the
	// commit below, so the fresh ids are stored without reading again.
	// A sender that is not a contact has its conversation read too: none
	// means a first contact, and its requests are counted if the book has
	// not counted them yet.
	fresh := make([]bool, len(items))
	firstContact := false
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		data := s.data(tx)
		batchIDs := map[msgID]bool{}
		for i, it := range items {
			use, err := data.IDUse(peerID, it.f.id.String())
			if err != nil {
				return err
			}
			if use == IDOurs {
				it.ack.status, it.ack.reason = statusRefused, "message id already in use"
				continue
			}
			if use == IDSeen || batchIDs[it.f.id] {
				it.ack.status = statusDuplicate
				continue
			}
			batchIDs[it.f.id] = true
			fresh[i] = true
		}
		if dec != Request {
			return nil
		}
		_, err := data.Conversation(peerID)
		if errors.Is(err, store.ErrNotFound) {
			firstContact = true
			return nil
		}
		if err != nil || s.knownRequests(acct) {
			return err
		}
		u, err := s.pendingRequests(data, peerID)
		if err == nil {
			s.setRequests(acct, u)
		}
		return err
	})
	if err != nil {
		return p2p.WithCode(p2p.CodeInternal, fmt.Errorf("dedup: %w", err))
	}
	if firstContact && rx.paid != acct {
		if err := s.checkFirstContact(rx, acct, pub, items, fresh); err != nil {
			return err
		}
	}

	s.preMu.Lock()
	defer s.preMu.Unlock()
	var (
		msgs           []Message
		copies         []Message // a sibling's: messages this account sent
		relayed        []Message // a sibling's: texts it relays (repair.go)
		relays         []relay   // msgs to relay to siblings the sender did not know
		actions        []Message // reactions, edits and deletes, for their targets
		readThere      []siblingRead
		receipts       []msgID
		signals        [][]byte // call signals, handed to OnSignal after the commit
		seen           []string // receipts' and signals' ids
		sessionChanged bool
		prekeysChanged bool
		reserved       usage // requests counted for msgs
		rechecked      bool
	)
	for i, it := range items {
		if !fresh[i] {
			continue
		}
		if e2e.IsInitial(it.f.ciphertext) {
			// A session is bound to the identity key it was started with: one
			// device's certificate must not carry another device's session.
			if ik, err := e2e.InitiatorKey(it.f.ciphertext); err == nil && !bytes.Equal(ik, it.dh) {
				it.ack.status, it.ack.reason = statusRefused, reasonForeignSession
				continue
			}
		}
		pt, accepted, err := set.Decrypt(s.self, s.prekeys, pub.Bytes(), it.f.ciphertext, messageAD(it.f.id, it.f.kind), nil)
		if err != nil {
			it.ack.status, it.ack.reason = statusRefused, refusal(err)
			continue
		}
		sessionChanged = true
		prekeysChanged = prekeysChanged || accepted
		c, err := unmarshalContent(pt, s.cfg.MaxMessage)
		clear(pt)
		if err == nil && (c.kind != contentText) != (it.f.kind == kindReceipt) {
			err = errors.New("content kind does not match the frame kind")
		}
		if err == nil && rx.lane && c.kind != contentSignal {
			err = errors.New("signal lane: not a signal")
		}
		var to identity.AccountID
		siblingOnly := c.kind == contentCopy || c.kind == contentRead || c.kind == contentSync || c.kind == contentRelay
		if err == nil && siblingOnly != sibling && c.kind != contentGroup { // a group's: from any member device
			// Decrypted, so the session stays in step; not stored.
			it.ack.status, it.ack.reason = statusRefused, reasonNotCopy
			if !sibling {
				it.ack.reason = reasonSiblingOnly
			}
			continue
		}
		if err == nil && (c.kind == contentCopy || c.kind == contentRead || c.kind == contentRelay) {
			if to, err = identity.AccountIDFromHash(c.to); err == nil && to == s.selfID {
				err = errors.New("a conversation with this account itself")
			}
		}
		if errors.Is(err, wire.ErrNewerVersion) {
			it.ack.status, it.ack.reason = statusRefused, reasonNewerContent
			continue
		}
		if err != nil {
			it.ack.status, it.ack.reason = statusRefused, "malformed content"
			continue
		}
		if dec == Request && c.kind == contentText {
			reason, full := s.reserveRequest(acct, len(c.body)+len(c.file))
			if full && !rechecked {
				rechecked = s.recheckRequests(acct)
				if rechecked {
					reason, _ = s.reserveRequest(acct, len(c.body)+len(c.file))
				}
			}
			if reason != "" {
				// Decrypted, so the session stays in step; not stored.
				it.ack.status, it.ack.reason = statusRefused, reason
				continue
			}
			reserved = reserved.add(usage{1, int64(len(c.body) + len(c.file))})
		}
		it.ack.status = statusStored
		id := it.f.id.String()
		if c.kind == contentCopy {
			seen = append(seen, id)
			copies = append(copies, s.textOf(&c, id, string(to), DirOut))
			continue
		}
		if c.kind == contentRead {
			seen = append(seen, id)
			readThere = append(readThere, siblingRead{string(to), c.ids})
			continue
		}
		if c.kind == contentRelay {
			seen = append(seen, id)
			relayed = append(relayed, s.textOf(&c, id, string(to), DirIn))
			continue
		}
		if c.kind == contentSync {
			// Applied in a transaction of its own, before the one that
			// commits the session and the seen id: a crash between the two
			// has the frame delivered again, and applying it twice changes
			// nothing (sync ops are idempotent).
			if s.cfg.OnSync != nil {
				if err := s.cfg.OnSync(c.body); err != nil {
					s.log.Warn("a sync batch from a sibling was refused", "device", dev, "err", err)
					it.ack.status, it.ack.reason = statusRefused, "sync refused: "+err.Error()
					continue
				}
			}
			seen = append(seen, id)
			continue
		}
		if c.kind == contentSignal {
			seen = append(seen, id)
			signals = append(signals, c.body)
			continue
		}
		if c.kind == contentGroup {
			// Applied in a transaction of its own, like a sync batch; a
			// blocked sender's is acknowledged and dropped.
			if dec != Drop {
				if s.cfg.OnGroup == nil {
					it.ack.status, it.ack.reason = statusRefused, "groups are not served here"
					continue
				}
				if err := s.cfg.OnGroup(acct, dev, c.body, dec == Request); err != nil {
					s.log.Info("a group carrier was refused", "peer", acct, "device", dev, "err", err)
					it.ack.status, it.ack.reason = statusRefused, "group: "+err.Error()
					continue
				}
			}
			seen = append(seen, id)
			continue
		}
		if c.kind == contentReceipt {
			seen = append(seen, id)
			if dec != Drop {
				receipts = append(receipts, c.ids...)
			}
			continue
		}
		if c.action != nil {
			// A reaction, edit or delete: folded into its target, not
			// stored (a blocked sender's changes nothing).
			seen = append(seen, id)
			if dec != Drop {
				actions = append(actions, s.textOf(&c, id, peerID, DirIn))
			}
			continue
		}
		if dec == Deliver && !sibling {
			if devs := s.relayTargets(c.devices); len(devs) > 0 {
				relays = append(relays, relay{len(msgs), devs})
			}
		}
		msgs = append(msgs, s.textOf(&c, id, peerID, DirIn))
	}
	if !sessionChanged {
		return nil
	}
	state, err := set.Marshal()
	var prekeys []byte
	if err == nil && prekeysChanged {
		prekeys, err = s.prekeys.Marshal()
	}
	var read []string
	var copied, updated []Message
	var readHere []readChange
	if err == nil {
		err = s.cfg.DB.Update(func(tx *store.Tx) error {
			data := s.data(tx)
			read, updated = read[:0], updated[:0]
			var err error
			var fromCopies []Message
			if copied, fromCopies, err = storeCopies(data, copies); err != nil {
				return err
			}
			updated = append(updated, fromCopies...)
			if readHere, err = markReadThere(data, readThere); err != nil {
				return err
			}
			at := s.cfg.Now()
			// Every id was checked free above, under ps.mu: no reads.
			for _, id := range seen {
				if err := data.PutSeen(peerID, id, at); err != nil {
					return err
				}
			}
			for _, m := range msgs {
				if err := data.InsertMessage(m); err != nil {
					return err
				}
			}
			for _, a := range actions {
				t, ok, err := data.ApplyAction(a)
				if err != nil {
					return err
				}
				if ok {
					updated = append(updated, t)
				}
			}
			for _, r := range relays {
				for _, d := range r.devs {
					if err := s.putForSibling(data, contentRelay, &msgs[r.msg], d); err != nil {
						return err
					}
				}
			}
			for _, rid := range receipts {
				changed := false
				m, err := data.UpdateMessageState(peerID, rid.String(), func(m Message) (string, bool) {
					changed = m.Direction == DirOut && m.State != StateRead && m.State != StateFailed
					return StateRead, changed
				})
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if changed {
					read = append(read, m.ID)
				}
			}
			if len(msgs) > 0 {
				c, err := data.Conversation(peerID)
				if errors.Is(err, store.ErrNotFound) {
					c, err = Conversation{Peer: peerID}, nil
				}
				if err != nil {
					return err
				}
				c.LastAt = msgs[len(msgs)-1].At
				for i := range msgs {
					withTimer(&c, &msgs[i])
					if msgs[i].TimerSet == nil {
						c.Unread++ // a timer change is a line, not a message to read
					}
				}
				if dec == Request {
					c.Request = true
				}
				if err := data.PutConversation(c); err != nil {
					return err
				}
			}
			if err := data.PutSession(peerID, dev, state); err != nil {
				return err
			}
			if prekeys != nil {
				return tx.PutPrekeys(prekeys)
			}
			return nil
		})
	}
	if err != nil {
		// The in-memory state ran ahead of the store: reload it, and let
		// the sender retry the whole batch.
		if reserved.count > 0 {
			s.releaseRequests(acct, reserved)
		}
		s.releaseSetLocked(ps, true)
		if prekeysChanged {
			s.reloadPrekeysLocked()
		}
		return p2p.WithCode(p2p.CodeInternal, fmt.Errorf("store messages: %w", err))
	}
	s.releaseSetLocked(ps, false)
	if !s.inView(a, dev) {
		// A device the account's record did not name when it was last
		// looked up (linked or restored since), or an account not looked
		// up yet: look it up afresh, so that messages go to this device
		// too.
		s.refreshView(a, sibling)
	}
	for i := range msgs {
		m := msgs[i]
		s.emit(Event{Kind: EventMessage, Peer: acct, ID: m.ID, State: StateReceived, Message: &m, Request: dec == Request})
	}
	rx.relayed = append(rx.relayed, relayed...)
	for _, r := range relays {
		s.mu.Lock()
		self := s.acctLocked(s.selfID)
		lanes := make([]*peerState, len(r.devs))
		for i, d := range r.devs {
			lanes[i] = s.laneLocked(self, d)
		}
		s.mu.Unlock()
		for _, ln := range lanes {
			s.enqueue(ln, false, nil, msgs[r.msg].ID)
		}
	}
	for i := range copied {
		m := copied[i]
		s.emit(Event{Kind: EventMessage, Peer: identity.AccountID(m.Peer), ID: m.ID, State: StateSent, Message: &m})
	}
	for i := range updated {
		m := updated[i]
		s.emit(Event{Kind: EventUpdated, Peer: identity.AccountID(m.Peer), ID: m.ID, Message: &m})
	}
	for _, r := range readHere {
		s.emit(Event{Kind: EventState, Peer: identity.AccountID(r.peer), ID: r.id, State: StateRead})
	}
	for _, id := range read {
		s.emit(Event{Kind: EventState, Peer: acct, ID: id, State: StateRead})
	}
	if s.cfg.OnSignal != nil {
		for _, sig := range signals {
			s.cfg.OnSignal(acct, dev, sig)
		}
	}
	return nil
}

// checkFirstContact applies the first-contact rule to the fresh frames of
// a sender that is not a contact and has no conversation here: until one
// frame carries a valid stamp, frames are not read. On 1.1.0 they are
// answered with the stamp status (the sender resends them with a stamp);
// on 1.0.0, which has no stamps, refused. A stamp that does not verify is
// refused.
func (s *Service) checkFirstContact(rx *rxStream, acct identity.AccountID, pub identity.AccountPub, items []rxItem, fresh []bool) error {
	for i, it := range items {
		if !fresh[i] {
			continue
		}
		if rx.paid == acct {
			return nil
		}
		fresh[i] = false
		switch {
		case it.f.stamp != nil:
			ok, err := s.verifyStamp(pub.Bytes(), it.f.stamp)
			if err != nil {
				return err
			}
			if !ok {
				it.ack.status, it.ack.reason = statusRefused, reasonBadStamp
				continue
			}
			rx.paid, fresh[i] = acct, true
		case rx.v == v11:
			it.ack.status, it.ack.stampBits = statusStamp, uint64(s.cfg.StampBits)
		default:
			it.ack.status, it.ack.reason = statusRefused, reasonStampV10
		}
	}
	return nil
}

// textOf is the message a text's content c (a text, a sibling's copy or
// relay) makes in the conversation with peer, arrived now: outgoing ones
// sent, incoming ones received.
func (s *Service) textOf(c *content, id, peer, dir string) Message {
	state := StateReceived
	if dir == DirOut {
		state = StateSent
	}
	m := Message{ID: id, Peer: peer, Direction: dir, Seq: c.seq, Body: c.body, File: c.file, SentAt: time.Unix(0, c.sentAt), At: s.stamp(), State: state}
	m.extrasOf(c)
	return m
}

// storeCopies stores messages a sibling sent here (copies of the messages
// it sent, texts it relays), each in its conversation, unless the
// conversation already has the id (sent again, or come another way); it
// returns those stored.
func storeCopies(data *Data, copies []Message) (stored, updated []Message, err error) {
	for _, m := range copies {
		use, err := data.IDUse(m.Peer, m.ID)
		if err != nil {
			return nil, nil, err
		}
		if use != IDFree {
			continue
		}
		if m.Action != nil {
			// A sibling's (or its contact's) reaction, edit or delete:
			// folded into its target here too, its id kept as seen.
			if err := data.PutSeen(m.Peer, m.ID, m.At); err != nil {
				return nil, nil, err
			}
			t, ok, err := data.ApplyAction(m)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				updated = append(updated, t)
			}
			continue
		}
		c, err := data.Conversation(m.Peer)
		if errors.Is(err, store.ErrNotFound) {
			c, err = Conversation{Peer: m.Peer}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		withTimer(&c, &m)
		if err := data.InsertMessage(m); err != nil {
			return nil, nil, err
		}
		if m.At.After(c.LastAt) {
			c.LastAt = m.At
		}
		if err := data.PutConversation(c); err != nil {
			return nil, nil, err
		}
		stored = append(stored, m)
	}
	return stored, updated, nil
}

// relay is an incoming text (msgs[msg]) to relay to this account's devs.
type relay struct {
	msg  int
	devs []identity.DeviceID
}

// siblingRead is what a sibling read: messages of the conversation with
// peer.
type siblingRead struct {
	peer string
	ids  []msgID
}

// readChange is a message marked read.
type readChange struct{ peer, id string }

// markReadThere marks the incoming messages a sibling read as read here,
// with the conversations' unread counts, and returns those that were not.
// A message this device does not have (yet) is passed over.
func markReadThere(data *Data, reads []siblingRead) ([]readChange, error) {
	var changed []readChange
	for _, r := range reads {
		n := 0
		for _, id := range r.ids {
			was := false
			_, err := data.UpdateMessageState(r.peer, id.String(), func(m Message) (string, bool) {
				was = m.Direction == DirIn && m.State != StateRead
				return StateRead, was
			})
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if was {
				n++
				changed = append(changed, readChange{r.peer, id.String()})
			}
		}
		if n == 0 {
			continue
		}
		c, err := data.Conversation(r.peer)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.Unread = max(0, c.Unread-n)
		if err := data.PutConversation(c); err != nil {
			return nil, err
		}
	}
	return changed, nil
}
