package msg

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/mailbox"
	"github.com/callsign/callsign/p2p"
)

// Mailboxes (package mailbox): when a recipient's device can't be reached,
// its queued text messages' sealed Deliver frames are put in sealed-sender
// boxes and deposited at (up to two of) the mailboxes its identity record
// names; a message deposited durably moves to StateSent. It stays in the
// outbox all the same, and direct delivery goes on being retried: the
// recipient's own ack (stored, or duplicate once it drained the mailbox)
// is what makes it StateDelivered. Only text messages and group carriers
// (groupcarrier.go) go to mailboxes; read receipts and call signals wait
// for the recipient itself.
//
// This account's own mailboxes (Config.Mailboxes) are registered with at
// Start and every mailboxRegister, and drained at Start, every
// Config.MailboxPoll and on Drain: each box is opened with the device's
// X25519 key and its ML-KEM prekeys (the box is hybrid: sealKey) and its
// frame goes through the same checks and commit as a
// frame from a stream (the certificate's peer id stands in for the
// stream's remote peer); the envelopes are acknowledged to the mailbox only
// after that commit, so a crash anywhere loses nothing, and the dedup by
// message id shows nothing twice. A frame the recipient refuses, or that
// asks for a first-contact stamp, is deleted from the mailbox too: the
// sender's outbox still holds it and delivers it directly.
//
// What is deposited is always the queue from its oldest unacknowledged
// message on, in order (frames written to a stream that was then lost
// included): the recipient then commits in queue order whichever way each
// message reaches it first, the mailbox or a direct retry, because each
// of the two goes in queue order from the same start. A sender that
// restarts deposits its unacknowledged messages again (the same boxes,
// mailbox.SealFrom: a mailbox that still holds one answers "duplicate");
// a recipient that drained them already drops them as duplicates.
const (
	mailboxCopies    = 2 // mailboxes a message is deposited at
	mailboxTimeout   = 20 * time.Second
	mailboxRegister  = 6 * time.Hour
	mailboxPollMin   = 30 * time.Second
	depositChunk     = mailbox.MaxPerDeposit
	drainChunk       = 256
	maxRememberedRec = 4096
)

// MailboxStatus is what this device knows of one of its mailboxes.
type MailboxStatus struct {
	Peer       peer.ID
	Registered bool      // the last registration succeeded
	Waiting    int       // envelopes waiting there at the last drain or registration
	Drained    int       // envelopes taken from it since Start
	LastDrain  time.Time // zero: never drained
	LastError  string    // the last registration's or drain's error, if it failed
	Prekeys    int       // one-time prekeys it holds for first contacts (the fewer kind)
}

// mboxState is the Service's mailbox state. The zero value is ready.
type mboxState struct {
	mu        sync.Mutex
	recs      map[identity.AccountID]Recipient // last lookups, for deposits
	deposited map[string]bool                  // outbox ids deposited since Start, each with its device (depositKey)
	refused   map[string]string                // outbox ids a mailbox refused: the reason told
	status    map[peer.ID]*MailboxStatus
	mine      map[peer.ID]bool // this account's mailboxes, as mailboxLoop last saw them
	kick      chan struct{}
}

func (m *mboxState) kickCh() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kick == nil {
		m.kick = make(chan struct{}, 1)
	}
	return m.kick
}

// remember keeps the last lookup of an account, for a deposit.
func (m *mboxState) remember(acct identity.AccountID, rec Recipient) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil || len(m.recs) >= maxRememberedRec {
		m.recs = map[identity.AccountID]Recipient{}
	}
	m.recs[acct] = rec
}

// Mailboxes reports this account's mailboxes, in Config.Mailboxes order.
func (s *Service) Mailboxes() []MailboxStatus {
	if s.cfg.Mailboxes == nil {
		return nil
	}
	var out []MailboxStatus
	s.mbox.mu.Lock()
	defer s.mbox.mu.Unlock()
	for _, ai := range s.cfg.Mailboxes() {
		st := MailboxStatus{Peer: ai.ID}
		if p := s.mbox.status[ai.ID]; p != nil {
			st = *p
		}
		out = append(out, st)
	}
	return out
}

// DrainMailboxes asks the service to register with and drain its
// mailboxes now (the node calls it when they change or it connects).
func (s *Service) DrainMailboxes() {
	select {
	case s.mbox.kickCh() <- struct{}{}:
	default:
	}
}

// mailboxConnected drains at once when a connection to one of this
// account's mailboxes comes up (the mailbox restarted, or this node got
// back online). It runs in libp2p's notification: it only signals.
func (s *Service) mailboxConnected(p peer.ID) {
	s.mbox.mu.Lock()
	mine := s.mbox.mine[p]
	s.mbox.mu.Unlock()
	if mine {
		s.DrainMailboxes()
	}
}

// depositKey names a copy in mboxState.deposited: the id and its device.
func depositKey(ps *peerState, id string) string { return id + "/" + string(ps.dev[:]) }

// depositWaiting deposits ps's queued text messages that no mailbox holds
// yet at the recipient's mailboxes. It runs on ps's sender goroutine after
// a delivery attempt that reached nobody.
func (s *Service) depositWaiting(ps *peerState) {
	if ps.sibling {
		return // a sibling's lane carries copies, control messages: none go to a mailbox
	}
	s.mbox.mu.Lock()
	rec, ok := s.mbox.recs[ps.id]
	s.mbox.mu.Unlock()
	if !ok || len(rec.Mailboxes) == 0 || len(rec.Devices) == 0 {
		return
	}
	to, err := sealKey(rec, ps.dev)
	if err != nil {
		s.log.Debug("no key to seal to", "peer", ps.id, "err", err)
		return
	}
	mbs := rec.Mailboxes[:min(len(rec.Mailboxes), mailboxCopies)]
	// A first contact is read only with a stamp (see the package doc), and
	// a recipient reading its mailbox can't ask for one: pay up front,
	// once per recipient, at the default price.
	s.mu.Lock()
	paid := ps.acct.stamp != nil
	s.mu.Unlock()
	if !paid {
		se := &stampError{bits: DefaultStampBits, recipient: rec.Account.Bytes()}
		if err := s.solveStampFor(ps, se); err != nil {
			return
		}
	}
	for s.ctx.Err() == nil {
		s.mu.Lock()
		stamp := ps.acct.stamp
		var ids []string
		s.mbox.mu.Lock()
		if s.mbox.deposited == nil {
			s.mbox.deposited = map[string]bool{}
		}
		for _, id := range ps.pending {
			if !s.mbox.deposited[depositKey(ps, id)] {
				ids = append(ids, id)
				if len(ids) == depositChunk {
					break
				}
			}
		}
		s.mbox.mu.Unlock()
		s.mu.Unlock()
		if len(ids) == 0 {
			return
		}
		frames, _, err := s.seal(ps, ids)
		if err != nil {
			s.log.Debug("seal for a mailbox", "peer", ps.id, "err", err)
			return
		}
		var boxes [][]byte
		var boxIDs []string
		var skip []string
		carriers := map[string]bool{}     // group carriers: deposited, not texts to mark sent
		attachment := map[string][]byte{} // a group carrier's (QueueGroupFile)
		secret, err := s.depositSecret()
		if err != nil {
			return
		}
		for _, f := range frames {
			if f.receipt && !f.mail {
				skip = append(skip, f.id)
				continue
			}
			if f.mail {
				carriers[f.id] = true
				if f.file != nil {
					attachment[f.id] = f.file
				}
			}
			b := f.frame
			if stamp != nil {
				b = withStamp(b, stamp)
			}
			box, err := mailbox.SealFrom(secret, to, b)
			if err != nil {
				return
			}
			boxes = append(boxes, box)
			boxIDs = append(boxIDs, f.id)
		}
		done := map[string]bool{}
		var lastErr error
		for _, mb := range mbs {
			if len(boxes) == 0 {
				break
			}
			if mb.ID == s.cfg.Host.ID() {
				continue
			}
			s.cfg.Host.Peerstore().AddAddrs(mb.ID, mb.Addrs, peerstore.TempAddrTTL)
			var res []mailbox.Status
			var used []byte
			err := s.withMemberToken(rec, ps.dev, mb.ID, func(token []byte) error {
				ctx, cancel := context.WithTimeout(s.ctx, mailboxTimeout)
				defer cancel()
				var err error
				res, err = mailbox.Deposit(ctx, s.cfg.Host, mb.ID, token, boxes)
				used = token
				return err
			})
			if err != nil {
				lastErr = err
				continue
			}
			var texts []string
			var attached [][]byte
			for i, r := range res {
				if r == mailbox.StatusOK || r == mailbox.StatusDuplicate {
					done[boxIDs[i]] = true
					if !carriers[boxIDs[i]] {
						texts = append(texts, boxIDs[i])
					} else if a := attachment[boxIDs[i]]; a != nil {
						attached = append(attached, a)
					}
				} else {
					lastErr = &mailbox.RefusedError{Status: r}
				}
			}
			if len(texts)+len(attached) > 0 && s.cfg.OnDeposited != nil {
				s.cfg.OnDeposited(ps.id, mb.ID, used, texts, attached)
			}
		}
		var sent []string
		kept := 0 // group carriers a mailbox took
		s.mbox.mu.Lock()
		for _, id := range skip {
			s.mbox.deposited[depositKey(ps, id)] = true // not for a mailbox: never try it again
		}
		for _, id := range boxIDs {
			if done[id] {
				s.mbox.deposited[depositKey(ps, id)] = true
				if carriers[id] {
					kept++
				} else {
					sent = append(sent, id)
				}
			}
		}
		s.mbox.mu.Unlock()
		if len(sent) > 0 {
			s.markSent(ps, sent)
			for _, id := range sent {
				s.emit(Event{Kind: EventState, Peer: ps.id, ID: id, State: StateSent})
			}
		}
		// What a mailbox took is sent before the rest is said to be
		// refused: whoever hears of the refusal finds the others sent.
		if lastErr != nil {
			s.log.Info("mailbox deposit", "peer", ps.id, "err", lastErr)
			var re *mailbox.RefusedError
			if errors.As(lastErr, &re) {
				texts := slices.DeleteFunc(slices.Clone(boxIDs), func(id string) bool { return carriers[id] })
				s.reportRefusal(ps, texts, done, "the recipient's mailbox refused it: "+re.Status.String())
			}
		}
		if len(sent)+kept+len(skip) < len(ids) {
			return // a mailbox refused or was not reached: the next attempt tries again
		}
	}
}

// reportRefusal tells the user (EventState, still StateQueued, with the
// reason) about the messages no mailbox took because one refused them,
// once per message and reason.
func (s *Service) reportRefusal(ps *peerState, ids []string, done map[string]bool, reason string) {
	var tell []string
	s.mbox.mu.Lock()
	if s.mbox.refused == nil || len(s.mbox.refused) > 1<<16 {
		s.mbox.refused = map[string]string{}
	}
	for _, id := range ids {
		if !done[id] && s.mbox.refused[id] != reason {
			s.mbox.refused[id] = reason
			tell = append(tell, id)
		}
	}
	s.mbox.mu.Unlock()
	for _, id := range tell {
		s.emit(Event{Kind: EventState, Peer: ps.id, ID: id, State: StateQueued, Reason: reason})
	}
}

// withMemberToken calls f with the token that names rec's device dev at
// mailbox mb: its device token, and, if mb answers that it knows no such
// member and dev is the record's first device, the account's. A mailbox
// with a queue per device knows the device token of each device
// registered there, and the account's token reaches the queue and
// one-time prekeys of the member's first device, which need not be rec's
// first device: an account restored onto a new device registers that
// device beside the old first one, whose queue it can't drain and whose
// one-time prekeys are not its own. An older mailbox (no queues per
// device), or a device not registered there yet, takes the account's for
// the record's first device; another device's copy waits in the outbox.
func (s *Service) withMemberToken(rec Recipient, dev identity.DeviceID, mb peer.ID, f func(token []byte) error) error {
	day := mailbox.Day(s.cfg.Now())
	acct := rec.Account.Bytes()
	err := f(mailbox.DeviceToken(acct, []byte(mb), dev, day))
	var re *mailbox.RefusedError
	if errors.As(err, &re) && re.Status == mailbox.StatusNotMember && rec.Devices[0].DeviceID() == dev {
		err = f(mailbox.Token(acct, []byte(mb), day))
	}
	return err
}

// sealKey is what a box for rec's device is sealed to: the device's
// certified X25519 key and the ML-KEM-768 prekey of the bundle in its
// record, whose identity key must be that same X25519 key and whose
// signatures must be the account's.
func sealKey(rec Recipient, id identity.DeviceID) (mailbox.SealKey, error) {
	i := slices.IndexFunc(rec.Devices, func(d identity.DeviceCert) bool { return d.DeviceID() == id })
	if i < 0 {
		return mailbox.SealKey{}, errors.New("no such device in the record")
	}
	dev := rec.Devices[i]
	x, err := ecdh.X25519().NewPublicKey(dev.X25519)
	if err != nil {
		return mailbox.SealKey{}, err
	}
	b, err := e2e.UnmarshalBundle(rec.bundleOf(dev))
	if err != nil {
		return mailbox.SealKey{}, err
	}
	if !bytes.Equal(b.IdentityDH, dev.X25519) {
		return mailbox.SealKey{}, errors.New("the bundle is another device's")
	}
	if err := b.Verify(rec.Account.Bytes()); err != nil {
		return mailbox.SealKey{}, err
	}
	pq, err := mlkem.NewEncapsulationKey768(b.PQPrekey)
	if err != nil {
		return mailbox.SealKey{}, err
	}
	return mailbox.SealKey{X25519: x, PQID: b.PQPrekeyID, PQ: pq}, nil
}

// depositSecret is the key sealed boxes' ids are derived from, so a frame
// sealed again gets the same id and a mailbox that holds it stores it once
// (mailbox.SealFrom).
func (s *Service) depositSecret() ([]byte, error) {
	return hkdf.Key(sha256.New, s.cfg.DeviceDH.Bytes(), nil, "callsign/v1/mailbox-deposit-secret", 32)
}

// mailboxLoop registers with and drains this account's mailboxes.
func (s *Service) mailboxLoop() {
	poll := s.cfg.MailboxPoll
	kick := s.mbox.kickCh()
	registered := map[peer.ID]time.Time{}
	uploadFailed := map[peer.ID]bool{} // until the next registration
	for {
		mbs := s.cfg.Mailboxes()
		mine := make(map[peer.ID]bool, len(mbs))
		for _, mb := range mbs {
			mine[mb.ID] = true
		}
		s.mbox.mu.Lock()
		s.mbox.mine = mine
		s.mbox.mu.Unlock()
		for _, mb := range mbs {
			if s.ctx.Err() != nil {
				return
			}
			if mb.ID == s.cfg.Host.ID() {
				continue
			}
			s.cfg.Host.Peerstore().AddAddrs(mb.ID, mb.Addrs, peerstore.TempAddrTTL)
			if t, ok := registered[mb.ID]; !ok || s.cfg.Now().Sub(t) > mailboxRegister {
				held, err := s.registerMailbox(mb.ID)
				if err != nil {
					continue
				}
				registered[mb.ID] = s.cfg.Now()
				delete(uploadFailed, mb.ID)
				s.topUpMailbox(mb.ID, held, uploadFailed)
			}
			held, err := s.drainMailbox(mb.ID)
			if err != nil {
				var re *mailbox.RefusedError
				if errors.As(err, &re) && re.Status == mailbox.StatusNotMember {
					delete(registered, mb.ID) // the mailbox forgot us: register again
				}
				continue
			}
			s.topUpMailbox(mb.ID, held, uploadFailed)
		}
		t := time.NewTimer(poll)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-kick:
			t.Stop()
		case <-t.C:
		}
	}
}

func (s *Service) mboxStatus(mb peer.ID, fn func(st *MailboxStatus)) {
	s.mbox.mu.Lock()
	defer s.mbox.mu.Unlock()
	if s.mbox.status == nil {
		s.mbox.status = map[peer.ID]*MailboxStatus{}
	}
	st := s.mbox.status[mb]
	if st == nil {
		st = &MailboxStatus{Peer: mb}
		s.mbox.status[mb] = st
	}
	fn(st)
}

func (s *Service) registerMailbox(mb peer.ID) (mailbox.Held, error) {
	ctx, cancel := context.WithTimeout(s.ctx, mailboxTimeout)
	defer cancel()
	held, err := mailbox.Register(ctx, s.cfg.Host, mb, s.cfg.Account, s.cfg.Cert, s.cfg.Now())
	s.mboxStatus(mb, func(st *MailboxStatus) {
		st.Registered = err == nil
		if err != nil {
			st.LastError = err.Error()
		} else {
			st.Waiting, st.LastError = held.Waiting, ""
			st.Prekeys = min(held.Prekeys, held.PQPrekeys)
		}
	})
	if err != nil && s.ctx.Err() == nil {
		s.log.Info("register with mailbox", "mailbox", mb, "err", err)
	}
	return held, err
}

// drainMailbox takes everything waiting at mb, commits it and
// acknowledges it, chunk by chunk, and returns what mb holds after.
func (s *Service) drainMailbox(mb peer.ID) (mailbox.Held, error) {
	var held mailbox.Held
	for s.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(s.ctx, mailboxTimeout)
		entries, h, err := mailbox.Drain(ctx, s.cfg.Host, mb, drainChunk)
		cancel()
		if err == nil {
			held = h
		}
		waiting := held.Waiting
		if err == nil && len(entries) > 0 {
			var done []uint64
			done, err = s.receiveBoxes(entries)
			if len(done) > 0 {
				ctx, cancel := context.WithTimeout(s.ctx, mailboxTimeout)
				var aerr error
				waiting, aerr = mailbox.Ack(ctx, s.cfg.Host, mb, done)
				cancel()
				if err == nil {
					err = aerr
				}
			}
		}
		s.mboxStatus(mb, func(st *MailboxStatus) {
			if err != nil {
				st.LastError = err.Error()
				return
			}
			st.LastError, st.Waiting, st.LastDrain = "", waiting, s.cfg.Now()
			st.Prekeys = min(held.Prekeys, held.PQPrekeys)
			st.Drained += len(entries)
		})
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Info("drain mailbox", "mailbox", mb, "err", err)
			}
			return held, err
		}
		if len(entries) == 0 || waiting == 0 {
			return held, nil
		}
	}
	return held, s.ctx.Err()
}

// receiveBoxes opens and commits drained envelopes, in order, and returns
// the sequence numbers that may be deleted from the mailbox: those
// committed (or refused, or garbage). It stops at the first batch that
// could not be committed (store trouble, overload), so that it and the
// envelopes after it stay in the mailbox.
func (s *Service) receiveBoxes(entries []mailbox.Entry) ([]uint64, error) {
	var done []uint64
	type item struct {
		seq   uint64
		frame []byte
	}
	var batch []item
	var remote peer.ID
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		frames := make([][]byte, len(batch))
		for i, it := range batch {
			frames[i] = it.frame
		}
		rx := rxStream{v: v11}
		_, err := s.receive(remote, &rx, frames)
		if err == nil {
			for _, it := range batch {
				done = append(done, it.seq)
			}
			batch = batch[:0]
			return nil
		}
		if c, ok := p2p.CodeOf(err); !ok || c != p2p.CodeBadRequest {
			return err
		}
		// One of them is malformed: take them one by one.
		for _, it := range batch {
			rx := rxStream{v: v11}
			if _, err := s.receive(remote, &rx, [][]byte{it.frame}); err != nil {
				if c, ok := p2p.CodeOf(err); !ok || c != p2p.CodeBadRequest {
					return err
				}
			}
			done = append(done, it.seq)
		}
		batch = batch[:0]
		return nil
	}
	for _, e := range entries {
		frame, err := mailbox.Open(s.cfg.DeviceDH, pqPrekeys{s}, e.Data)
		var from peer.ID
		if err == nil {
			from, err = s.framePeer(frame)
		}
		if err != nil {
			// Not for this device, or garbage: nothing to keep.
			done = append(done, e.Seq)
			continue
		}
		if from != remote || len(batch) == maxBatch {
			if err := flush(); err != nil {
				return done, err
			}
			remote = from
		}
		batch = append(batch, item{e.Seq, frame})
	}
	return done, flush()
}

// framePeer is the peer id in a Deliver frame's certificate.
func (s *Service) framePeer(frame []byte) (peer.ID, error) {
	f, err := unmarshalDeliver(frame, s.maxCT, v11)
	if err != nil {
		return "", err
	}
	cert, err := identity.UnmarshalDeviceCert(f.cert)
	if err != nil {
		return "", err
	}
	return peer.IDFromBytes(cert.PeerID)
}
