package msg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// Outbox envelope encodings (a queued text message's envelope in its index
// entry, or OutboxEntry.Envelope of a control message; msg's own):
//
//	empty                       a text message not yet sealed; its plaintext is the
//	                            Message with the same id
//	0x01 || content             a control message (read receipt) not yet sealed
//	0x02 || deliver frame       sealed: the exact Deliver frame every attempt resends
//	0x03, 0x04                  the same for a group carrier (groupcarrier.go)
//	0x05, 0x06                  the same for a group carrier that goes to no mailbox
const (
	envPending byte = 0x01
	envSealed  byte = 0x02
)

// retryDelay is the wait before attempt n (n ≥ 1) with ±20% jitter.
func (s *Service) retryDelay(n int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

// runSender delivers ps's queue until it is empty, retrying with backoff.
func (s *Service) runSender(ps *peerState) {
	attempts := 0
	for {
		s.mu.Lock()
		if len(ps.pending) == 0 || s.state != 1 {
			ps.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if attempts > 0 {
			t := time.NewTimer(s.retryDelay(attempts))
			select {
			case <-s.ctx.Done():
				t.Stop()
				continue
			case <-ps.kick:
				t.Stop()
			case <-t.C:
			}
		}
		progressed, err := s.deliver(ps)
		if errors.Is(err, errLaneMoved) {
			attempts = 0 // its messages went to the account's devices' lanes
			continue
		}
		if errors.Is(err, errSessionRefused) {
			if err = s.restartSession(ps); err == nil {
				attempts = 0
				continue
			}
		}
		if err != nil && !progressed && s.ctx.Err() == nil {
			// Not reached: its mailboxes hold what waits meanwhile.
			s.depositWaiting(ps)
		}
		var se *stampError
		switch {
		case errors.As(err, &se):
			// A first contact: pay, then resend at once.
			if err = s.solveStampFor(ps, se); err == nil {
				attempts = 0
				continue
			}
			attempts++
		case err == nil:
			attempts = 0
		case progressed:
			attempts = 1
		default:
			attempts++
		}
		if err != nil && s.ctx.Err() == nil {
			s.log.Debug("delivery attempt failed", "peer", ps.id, "attempt", attempts, "err", err)
		}
	}
}

// errSessionRefused ends a delivery attempt whose recipient could not
// open the session's frames: runSender starts the session again.
var errSessionRefused = errors.New("the recipient cannot open this session")

// sessionRestartEvery is how often a session with one device may be
// dropped because the device could not open it: a device that fails
// again within it has its frames fail.
const sessionRestartEvery = 10 * time.Minute

// sessionBroken reports whether a refusal for reason says that ps's device
// cannot open the session its frames were sealed in — it does not know
// the prekeys the session started from, or has no such session any more —
// so that a new one would do, and ps may start one now.
func (s *Service) sessionBroken(ps *peerState, reason string) bool {
	switch reason {
	case reasonUnknownPrekey, reasonUndecryptable, reasonNoSession:
	default:
		return false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if time.Since(ps.restarted) < sessionRestartEvery {
		return false
	}
	if err := s.loadSetLocked(ps); err != nil {
		return false
	}
	a := ps.set.Active()
	// A session the device has answered in opened there: only its loss
	// ("no session") makes a new one useful.
	return a != nil && (reason == reasonNoSession || a.Initiator() && !a.Confirmed())
}

// restartSession drops the session with ps's device and unseals what is
// queued for it, so that the next attempt starts a session from the
// device's current bundle and seals the queue again in it. A control
// message sealed in the old session (a receipt, a sibling's copy) can't
// be sealed again: it is refused and dropped as before.
func (s *Service) restartSession(ps *peerState) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.restarted = time.Now()
	s.mu.Lock()
	ids := slices.Clone(ps.pending)
	s.mu.Unlock()
	peer, dev := string(ps.id), ps.dev
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		if err := data.DeleteSession(peer, dev); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		for _, id := range ids {
			env, err := data.QueuedEnvelope(peer, dev, id)
			if errors.Is(err, store.ErrNotFound) || err == nil && len(env) == 0 {
				continue // a control message, or not sealed
			}
			if err != nil {
				return err
			}
			if err := data.SetQueuedEnvelope(peer, dev, id, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restart the session: %w", err)
	}
	s.releaseSetLocked(ps, true)
	s.mu.Lock()
	for _, id := range ids {
		delete(ps.frames, id)
		ps.unsealed[id] = true // sealed again, in order, before anything queued after
	}
	s.mu.Unlock()
	s.log.Info("the device could not open the session with it: starting a new one", "peer", ps.id, "device", dev)
	return nil
}

// stampError ends a delivery attempt whose recipient asks for a
// first-contact stamp before it reads the frames.
type stampError struct {
	bits      int
	recipient []byte // the recipient's account key
}

func (e *stampError) Error() string {
	return fmt.Sprintf("recipient asks for a first-contact stamp of %d bits", e.bits)
}

// solveStampFor makes sure ps has a stamp of se.bits bits or more and keeps
// it for every later frame to ps (in memory: after a restart it is computed
// again if asked for again). A stamp already paid for is used again: one
// paid up front for a mailbox deposit, or by the lane or the sender while
// a delivery attempt without it was on its way, and a computation under
// way for ps is waited for, not repeated: a stamp of 8 bits costs about
// 0.3 s of one core here on average, with a long random tail, and much
// more on a slow device.
func (s *Service) solveStampFor(ps *peerState, se *stampError) error {
	for {
		s.mu.Lock()
		if ps.acct.stamp != nil && ps.acct.stampBits >= se.bits {
			s.mu.Unlock()
			return nil
		}
		if w := ps.acct.stamping; w != nil {
			s.mu.Unlock()
			select {
			case <-w:
				continue
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		done := make(chan struct{})
		ps.acct.stamping = done
		s.mu.Unlock()

		start := time.Now()
		stamp, err := solveStamp(s.ctx, s.cfg.Account.Public().Bytes(), se.recipient, se.bits)
		s.mu.Lock()
		ps.acct.stamping = nil
		if err == nil && (ps.acct.stamp == nil || se.bits > ps.acct.stampBits) {
			ps.acct.stamp, ps.acct.stampBits = stamp, se.bits
		}
		s.mu.Unlock()
		close(done)
		if err != nil {
			return err
		}
		s.log.Debug("first-contact stamp computed", "peer", ps.id, "bits", se.bits, "took", time.Since(start))
		return nil
	}
}

// dial opens a msg stream to pid, 1.1.0 if the peer speaks it; the stream
// may run over a limited (relayed) connection.
func (s *Service) dial(ctx context.Context, pid peer.ID) (network.Stream, version, error) {
	ctx = network.WithAllowLimitedConn(ctx, string(ProtocolMsg))
	st, err := s.cfg.Host.NewStream(ctx, pid, ProtocolMsg, ProtocolMsg10)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s stream to %s: %w", ProtocolMsg, pid, err)
	}
	if st.Protocol() == ProtocolMsg {
		return st, v11, nil
	}
	return st, v10, nil
}

// inflight is a frame written to the stream and not yet acknowledged.
type inflight struct {
	id      string
	receipt bool
}

// deliver runs one connection to ps's device: it seals and writes the
// queue in order, pipelined, and processes the acks, until the queue has
// been empty for idleStream. progressed reports whether any ack arrived.
func (s *Service) deliver(ps *peerState) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	rec, pid, err := s.reach(ctx, ps)
	if err != nil {
		return false, err
	}
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	st, v, err := s.dial(dctx, pid)
	dcancel()
	if err != nil {
		return false, err
	}
	// A stamp the peer asked for goes with every frame (1.1.0).
	s.mu.Lock()
	stamp, stampBits := ps.acct.stamp, ps.acct.stampBits
	s.mu.Unlock()
	if v != v11 {
		stamp = nil
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()

	acks := make(chan ackFrame, window)
	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readAcks(ctx, st, v, acks, readErr)
	}()
	defer func() {
		stop()
		cancel()
		if err != nil {
			st.Reset()
		}
		<-readDone
	}()

	bw := bufio.NewWriterSize(st, 64<<10)
	var (
		flight   []inflight
		ackBuf   []ackFrame
		unmarked []string // written text messages whose sent state is not yet persisted
	)
	// Persist the sent state of what was written and not acked when the
	// attempt ends (acked messages went straight to delivered).
	defer func() {
		if len(unmarked) > 0 {
			s.markSent(ps, unmarked)
		}
	}()
	idle := time.NewTimer(idleStream)
	defer idle.Stop()
	ackTimer := time.NewTimer(ackTimeout)
	defer ackTimer.Stop()
	sentTimer := time.NewTimer(time.Hour)
	defer sentTimer.Stop()
	for {
		// Acks first, so the recipient never waits on us.
	drain:
		for len(ackBuf) < window {
			select {
			case a := <-acks:
				ackBuf = append(ackBuf, a)
			default:
				break drain
			}
		}
		if len(ackBuf) > 0 {
			if len(ackBuf) > len(flight) {
				return progressed, errors.New("recipient acked more frames than were sent")
			}
			for i, a := range ackBuf {
				if a.id.String() != flight[i].id {
					return progressed, fmt.Errorf("ack %d for %s out of order", i, a.id)
				}
			}
			// The frames from the first that asks for a stamp on wait
			// for the stamp; the ones before it are done.
			var need *stampError
			for i, a := range ackBuf {
				if a.status != statusStamp {
					continue
				}
				switch {
				case a.stampBits > MaxStampBits:
					ackBuf[i] = ackFrame{id: a.id, status: statusRefused,
						reason: fmt.Sprintf("recipient asks for a first-contact stamp of %d bits; the most this sender does is %d", a.stampBits, MaxStampBits)}
				case stamp != nil && int(a.stampBits) <= stampBits:
					ackBuf[i] = ackFrame{id: a.id, status: statusRefused, reason: "recipient did not take the first-contact stamp"}
				default:
					need = &stampError{bits: int(a.stampBits), recipient: rec.Account.Bytes()}
					ackBuf = ackBuf[:i]
				}
				if need != nil {
					break
				}
			}
			// A device that can't open the session refuses every frame
			// of it: the frames from the first refused stay queued, and
			// the session starts again (restartSession).
			restart := false
			for i, a := range ackBuf {
				if a.status == statusRefused && s.sessionBroken(ps, a.reason) {
					ackBuf, restart = ackBuf[:i], true
					break
				}
			}
			if len(ackBuf) > 0 {
				if err := s.applyAcks(ps, flight[:len(ackBuf)], ackBuf); err != nil {
					return progressed, err
				}
				progressed = true
			}
			if need != nil {
				return progressed, need
			}
			if restart {
				return progressed, errSessionRefused
			}
			unmarked = removeIDs(unmarked, flight[:len(ackBuf)])
			flight = flight[len(ackBuf):]
			ackBuf = ackBuf[:0]
			ackTimer.Reset(ackTimeout)
		}

		// Fill the window with the next frames in order.
		s.mu.Lock()
		var next []string
		if n := len(flight); n < len(ps.pending) && n < window {
			next = append(next, ps.pending[n:min(len(ps.pending), n+maxBatch, window)]...)
		}
		s.mu.Unlock()
		if len(next) > 0 {
			frames, sent, err := s.seal(ps, next)
			if err != nil {
				return progressed, err
			}
			st.SetWriteDeadline(time.Now().Add(ackTimeout))
			for _, f := range frames {
				b := f.frame
				if stamp != nil {
					b = withStamp(b, stamp)
				}
				if err := p2p.WriteFrame(bw, b); err != nil {
					return progressed, err
				}
				flight = append(flight, inflight{id: f.id, receipt: f.receipt})
			}
			if err := bw.Flush(); err != nil {
				return progressed, fmt.Errorf("write: %w", err)
			}
			s.emitSent(ps, sent)
			if len(unmarked) == 0 && len(sent) > 0 {
				sentTimer.Reset(sentDelay)
			}
			unmarked = append(unmarked, sent...)
			if len(flight) == len(frames) {
				ackTimer.Reset(ackTimeout)
			}
			continue
		}
		if len(flight) == 0 {
			idle.Reset(idleStream)
		}
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case err := <-readErr:
			if err == nil {
				err = errors.New("stream closed by the recipient")
			}
			return progressed, fmt.Errorf("read ack: %w", err)
		case <-ps.wake:
			// New messages queued: loop to fill the window.
		case <-ps.kick:
		case a := <-acks:
			ackBuf = append(ackBuf, a)
		case <-sentTimer.C:
			if len(unmarked) > 0 {
				s.markSent(ps, unmarked)
				unmarked = nil
			}
		case <-idle.C:
			if len(flight) == 0 {
				s.mu.Lock()
				empty := len(ps.pending) == 0
				s.mu.Unlock()
				if empty {
					s.closeStream(st, readErr)
					return progressed, nil
				}
			}
		case <-ackTimer.C:
			if len(flight) > 0 {
				return progressed, errors.New("no ack within the timeout")
			}
		}
	}
}

// readAcks reads st's Ack frames of version v into acks until the stream
// fails or ends, or ctx does, and then sends the error to readErr.
func readAcks(ctx context.Context, st network.Stream, v version, acks chan<- ackFrame, readErr chan<- error) {
	br := bufio.NewReader(st)
	for {
		b, err := p2p.ReadFrame(br, ackMax11)
		if err == nil {
			var a ackFrame
			if a, err = unmarshalAck(b, v); err == nil {
				select {
				case acks <- a:
					continue
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
		}
		readErr <- err
		return
	}
}

// reach looks ps's account up and makes sure this device has an active
// session with ps's device, starting one from a bundle fetched from the
// device (or the published one) for a first contact. A lane whose device
// the record no longer names (or the zero device's) gets errLaneMoved:
// the look-up handed its messages on to the record's devices.
func (s *Service) reach(ctx context.Context, ps *peerState) (Recipient, peer.ID, error) {
	rec, err := s.lookup(ctx, ps.id)
	if err != nil {
		return Recipient{}, "", err
	}
	for _, cert := range rec.Devices {
		if cert.DeviceID() != ps.dev {
			continue
		}
		pid, err := peer.IDFromBytes(cert.PeerID)
		if err != nil {
			return Recipient{}, "", fmt.Errorf("look up %s: device peer id: %w", ps.id, err)
		}
		if err := s.ensureSession(ctx, ps, rec, cert, pid); err != nil {
			return Recipient{}, "", err
		}
		return rec, pid, nil
	}
	ps.mu.Lock()
	err = s.handOnLocked(ps)
	ps.mu.Unlock()
	if err != nil {
		return Recipient{}, "", err
	}
	return Recipient{}, "", errLaneMoved
}

// removeIDs returns ids without those in fl.
func removeIDs(ids []string, fl []inflight) []string {
	if len(ids) == 0 {
		return ids
	}
	gone := make(map[string]bool, len(fl))
	for _, f := range fl {
		gone[f.id] = true
	}
	out := ids[:0]
	for _, id := range ids {
		if !gone[id] {
			out = append(out, id)
		}
	}
	return out
}

// closeStream half-closes st, waits briefly for the recipient to close its
// side, and closes st; a recipient that does not answer gets a reset.
func (s *Service) closeStream(st network.Stream, readErr <-chan error) {
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-readErr:
		st.Close()
	case <-t.C:
		st.Reset()
	case <-s.ctx.Done():
		st.Reset()
	}
}

// lookup resolves acct through the Directory and checks the answer: the
// devices whose certificates are the account's and valid now, at most
// maxTargets, become the account's view (setView), and what the service
// knows of how to reach them is updated.
func (s *Service) lookup(ctx context.Context, acct identity.AccountID) (Recipient, error) {
	rec, err := s.cfg.Directory.Lookup(ctx, acct)
	if err != nil {
		return Recipient{}, fmt.Errorf("look up %s: %w", acct, err)
	}
	if rec.Account.ID() != acct {
		return Recipient{}, fmt.Errorf("look up %s: directory returned another account", acct)
	}
	// Only the devices that can be reached count.
	var devs []identity.DeviceCert
	var bundles [][]byte
	var ids []identity.DeviceID
	var pids []peer.ID
	for _, dev := range rec.Devices {
		if len(devs) == maxTargets || !dev.Account.Equal(rec.Account) || dev.Verify(s.cfg.Now()) != nil || slices.Contains(ids, dev.DeviceID()) {
			continue
		}
		pid, err := peer.IDFromBytes(dev.PeerID)
		if err != nil {
			continue
		}
		devs, ids, pids = append(devs, dev), append(ids, dev.DeviceID()), append(pids, pid)
		bundles = append(bundles, rec.bundleOf(dev))
	}
	if len(devs) == 0 {
		return Recipient{}, fmt.Errorf("look up %s: no device with a valid certificate", acct)
	}
	rec.Devices, rec.Bundles = devs, bundles
	// This device is not a peer to reach.
	pids = slices.DeleteFunc(pids, func(p peer.ID) bool { return p == s.cfg.Host.ID() })
	s.mu.Lock()
	for _, pid := range pids {
		s.byPeerID[pid] = acct
	}
	a := s.acctLocked(acct)
	a.revoked = slices.Clone(rec.Revoked)
	s.mu.Unlock()
	if acct == s.selfID && slices.Contains(rec.Revoked, s.selfDev) {
		s.markRevoked()
	}
	s.mbox.remember(acct, rec)
	// The relays' circuit addresses let a stream reach a device that is
	// not directly reachable.
	ps := s.cfg.Host.Peerstore()
	for _, r := range rec.Relays {
		if r.ID == s.cfg.Host.ID() || slices.Contains(pids, r.ID) {
			continue
		}
		ps.AddAddrs(r.ID, r.Addrs, peerstore.TempAddrTTL)
		circuit, err := ma.NewMultiaddr("/p2p/" + r.ID.String() + "/p2p-circuit")
		if err != nil {
			continue
		}
		var addrs []ma.Multiaddr
		for _, a := range r.Addrs {
			addrs = append(addrs, a.Encapsulate(circuit))
		}
		for _, pid := range pids {
			ps.AddAddrs(pid, addrs, peerstore.TempAddrTTL)
		}
	}
	s.setView(a, ids)
	if acct == s.selfID {
		s.copyEarly()
	}
	return rec, nil
}

// ensureSession makes sure ps has an active session with its device,
// cert, starting one from a bundle fetched from the device (or the
// published one).
func (s *Service) ensureSession(ctx context.Context, ps *peerState, rec Recipient, cert identity.DeviceCert, pid peer.ID) error {
	ps.mu.Lock()
	err := s.loadSetLocked(ps)
	ready := err == nil && ps.set.Active() != nil
	ps.mu.Unlock()
	if err != nil || ready {
		return err
	}
	b, err := s.fetchBundle(ctx, rec, cert, pid)
	if err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := s.loadSetLocked(ps); err != nil || ps.set.Active() != nil {
		return err
	}
	// Persisted with the first message it encrypts (seal).
	if err := ps.set.Initiate(s.self, rec.Account.Bytes(), b, nil); err != nil {
		return fmt.Errorf("start session with %s: %w", ps.id, err)
	}
	return nil
}

type sealedFrame struct {
	id      string
	frame   []byte
	env     []byte // envSealed || frame, when sealed here (frame aliases it)
	receipt bool
	mail    bool   // a control frame that goes to mailboxes too: a group carrier
	seq     uint64 // text messages sealed when queued: the Seq sealed in
	file    []byte // a group carrier's attachment (OutboxEntry.File)
}

// seal returns the Deliver frames for ids, encrypting those not yet sealed
// in one transaction with the session state they advanced. sent lists the
// text messages whose state moves to StateSent.
func (s *Service) seal(ps *peerState, ids []string) (frames []sealedFrame, sent []string, err error) {
	type item struct {
		id      string
		entry   OutboxEntry // a control message's outbox entry
		queued  bool        // a text message queued in its index entry
		text    *Message
		pending []byte // unsealed content
		group   bool   // a group carrier
		direct  bool   // one that goes to no mailbox (QueueGroupDirect)
		missing bool
		cached  *sealedFrame
	}
	items := make([]item, len(ids))
	var uncached []int
	s.mu.Lock()
	for i, id := range ids {
		items[i].id = id
		if f, ok := ps.frames[id]; ok {
			items[i].cached = &f
		} else {
			uncached = append(uncached, i)
		}
	}
	s.mu.Unlock()
	if len(uncached) == 0 {
		// Sealed when queued: nothing to read or write.
		for _, it := range items {
			frames = append(frames, *it.cached)
			if !it.cached.receipt {
				sent = append(sent, it.id)
			}
		}
		return frames, sent, nil
	}
	peerID := string(ps.id)
	dev := ps.dev
	if dev.IsZero() {
		// Not looked up since the start: nothing is sealed for no device.
		return nil, nil, fmt.Errorf("seal: %s's devices are not known yet", ps.id)
	}
	err = s.cfg.DB.View(func(tx *store.Tx) error {
		data := s.data(tx)
		for _, i := range uncached {
			it := item{id: ids[i]}
			id := it.id
			// A text message is queued in a copy for the peer's device; a
			// control message has an outbox entry.
			env, err := data.QueuedEnvelope(peerID, dev, id)
			if err == nil {
				it.queued = true
				switch {
				case len(env) == 0:
					m, err := data.Message(peerID, id)
					if err != nil {
						return err
					}
					it.text = &m
				case env[0] == envSealed:
					it.entry.Envelope = env
				default:
					return fmt.Errorf("queued message %s: unknown envelope encoding %d", id, env[0])
				}
				items[i] = it
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			e, err := data.DeviceOutbox(id, ps.dev)
			if errors.Is(err, store.ErrNotFound) {
				// Deleted, or handed on to the account's other devices
				// (lanes.go): nothing left for this one.
				it.missing = true
				items[i] = it
				continue
			}
			if err != nil {
				return err
			}
			it.entry = e
			switch {
			case len(e.Envelope) == 0:
				m, err := data.Message(e.Peer, id)
				if errors.Is(err, store.ErrNotFound) {
					it.missing = true // the conversation was deleted
				} else if err != nil {
					return err
				} else {
					it.text = &m
				}
			case e.Envelope[0] == envPending:
				it.pending = e.Envelope[1:]
			case e.Envelope[0] == envGroup:
				it.pending, it.group = e.Envelope[1:], true
			case e.Envelope[0] == envGroupDirect:
				it.pending, it.group, it.direct = e.Envelope[1:], true, true
			case e.Envelope[0] == envSealed:
			case e.Envelope[0] == envGroupSealed:
				it.group = true
			case e.Envelope[0] == envGroupDirectSealed:
				it.group, it.direct = true, true
			default:
				return fmt.Errorf("outbox entry %s: unknown envelope encoding %d", id, e.Envelope[0])
			}
			items[i] = it
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("seal: %w", err)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var writes []OutboxEntry         // control messages' entries
	queuedEnv := map[string][]byte{} // text messages' envelopes
	var drop []string
	advanced := false
	for _, it := range items {
		if it.cached != nil {
			frames = append(frames, *it.cached)
			if !it.cached.receipt {
				sent = append(sent, it.id)
			}
			continue
		}
		if it.missing {
			drop = append(drop, it.id)
			continue
		}
		if it.text == nil && it.pending == nil {
			f := it.entry.Envelope[1:]
			d, err := unmarshalDeliver(f, s.maxCT, v10) // stored frames have no additions
			if err != nil {
				return nil, nil, fmt.Errorf("seal: stored envelope %s: %w", it.id, err)
			}
			frames = append(frames, sealedFrame{id: it.id, frame: f, receipt: d.kind == kindReceipt, mail: it.group && !it.direct, file: it.entry.File})
			if it.text == nil && d.kind != kindReceipt {
				sent = append(sent, it.id)
			}
			continue
		}
		if err := s.loadSetLocked(ps); err != nil {
			return nil, nil, err
		}
		a := ps.set.Active()
		if a == nil {
			return nil, nil, errors.New("seal: no session")
		}
		id, err := parseMsgID(it.id)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: %w", err)
		}
		kind := uint64(kindRatchet)
		var pt, keep []byte
		if it.text != nil {
			if a.Initiator() && !a.Confirmed() {
				kind = kindInitial
			}
			pt = s.textPlain(ps, it.text)
			sent = append(sent, it.id)
		} else {
			kind = kindReceipt
			pt = it.pending
			if it.group {
				keep = slices.Clone(pt)
			}
		}
		ct, err := ps.set.Encrypt(pt, messageAD(id, kind))
		clear(pt)
		if err != nil {
			s.releaseSetLocked(ps, true)
			return nil, nil, fmt.Errorf("seal %s: %w", it.id, err)
		}
		advanced = true
		f := deliverFrame{id: id, sender: s.cfg.Account.Public().Bytes(), cert: s.certBytes, kind: kind, ciphertext: ct}
		env, fb := f.sealedEnvelope()
		switch {
		case it.direct:
			env[0] = envGroupDirectSealed
		case it.group:
			env[0] = envGroupSealed
		}
		if it.queued {
			queuedEnv[it.id] = env
		} else {
			e := it.entry
			e.Envelope, e.Content = env, keep
			writes = append(writes, e)
		}
		frames = append(frames, sealedFrame{id: it.id, frame: fb, receipt: kind == kindReceipt, mail: it.group && !it.direct, file: it.entry.File})
	}
	if advanced || len(drop) > 0 {
		var state []byte
		if advanced {
			if state, err = ps.set.Marshal(); err != nil {
				s.releaseSetLocked(ps, true)
				return nil, nil, fmt.Errorf("seal: %w", err)
			}
		}
		err := s.cfg.DB.Update(func(tx *store.Tx) error {
			data := s.data(tx)
			for _, e := range writes {
				if err := data.PutOutbox(e); err != nil {
					return err
				}
			}
			for id, env := range queuedEnv {
				if err := data.SetQueuedEnvelope(peerID, dev, id, env); err != nil {
					return err
				}
			}
			for _, id := range drop {
				if err := data.DeleteDeviceOutbox(id, ps.dev); err != nil {
					return err
				}
			}
			if state != nil {
				return data.PutSession(string(ps.id), ps.dev, state)
			}
			return nil
		})
		if err != nil {
			// The in-memory ratchet ran ahead of the store: reload it.
			s.releaseSetLocked(ps, true)
			return nil, nil, fmt.Errorf("seal: %w", err)
		}
	}
	if len(drop) > 0 {
		s.removePending(ps, drop)
	}
	// Everything in ids is sealed in the store now.
	s.mu.Lock()
	for _, id := range ids {
		delete(ps.unsealed, id)
	}
	s.mu.Unlock()
	s.releaseSetLocked(ps, false)
	return frames, sent, nil
}

// markSent persists the sent state of text messages still queued in the
// store (the event went out when they were written).
func (s *Service) markSent(ps *peerState, ids []string) {
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		for _, id := range ids {
			_, err := data.UpdateMessageState(string(ps.id), id, func(m Message) (string, bool) {
				return StateSent, m.State == StateQueued
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("mark messages sent", "peer", ps.id, "err", err)
	}
}

// applyAcks takes acknowledged messages out of the outbox and records
// their new states, in one transaction: a text message's index entry is
// rewritten and its copy deleted (Dequeue), a control message's outbox
// entry deleted. ps.mu is held across, as by every transaction that
// queues text messages for ps.
func (s *Service) applyAcks(ps *peerState, fl []inflight, acks []ackFrame) error {
	type change struct{ id, state, reason string }
	var changes []change
	var done []string // messages whose last copy was acknowledged
	peerID := string(ps.id)
	ps.mu.Lock()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		data := s.data(tx)
		changes, done = changes[:0], done[:0]
		for i, a := range acks {
			id := fl[i].id
			if fl[i].receipt {
				if err := data.DeleteDeviceOutbox(id, ps.dev); err != nil {
					return err
				}
				continue
			}
			// The message's state is the best of its devices': delivered
			// once one has it; failed only when the last copy waiting is
			// refused and none was delivered.
			refused := a.status == statusRefused
			if refused && a.reason == reasonRevoked {
				s.CheckRevoked()
			}
			var state string
			m, err := data.Dequeue(peerID, ps.dev, id, func(m Message, last bool) (string, bool) {
				if last {
					done = append(done, id)
				}
				switch {
				case m.State == StateRead || m.State == StateDelivered:
					state = ""
				case !refused:
					state = StateDelivered
				case last:
					state = StateFailed
				default:
					state = ""
				}
				return state, state != ""
			})
			if errors.Is(err, store.ErrNotFound) {
				// Deleted meanwhile; or a text message whose outbox entry
				// predates schema 6 and had lost its message: delete that.
				if err := data.DeleteOutbox(id); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if state != "" {
				changes = append(changes, change{m.ID, state, a.reason})
			}
		}
		return nil
	})
	ps.mu.Unlock()
	if err != nil {
		return fmt.Errorf("apply acks: %w", err)
	}
	ids := make([]string, len(acks))
	for i := range acks {
		ids[i] = fl[i].id
		if acks[i].status == statusRefused {
			s.log.Info("message refused by the recipient", "peer", ps.id, "id", fl[i].id, "reason", acks[i].reason)

		}
	}
	s.removePending(ps, ids)
	s.mu.Lock()
	for _, c := range changes {
		ps.acct.shown[c.id] = c.state
	}
	for _, id := range done {
		delete(ps.acct.shown, id)
	}
	s.mu.Unlock()
	for _, c := range changes {
		s.emit(Event{Kind: EventState, Peer: ps.id, ID: c.id, State: c.state, Reason: c.reason})
	}
	return nil
}

// emitSent reports the text messages ps's lane wrote as sent, unless
// another device's lane wrote or delivered them first: a message's state
// is its devices' best, and each state is reported once. A message the
// service has reported nothing of since it started has its state read
// from the store.
func (s *Service) emitSent(ps *peerState, ids []string) {
	a := ps.acct
	var emit, unknown []string
	s.mu.Lock()
	for _, id := range ids {
		switch st, ok := a.shown[id]; {
		case !ok:
			unknown = append(unknown, id)
		case st == StateQueued:
			a.shown[id] = StateSent
			emit = append(emit, id)
		}
	}
	s.mu.Unlock()
	if len(unknown) > 0 {
		states := map[string]string{}
		err := s.cfg.DB.View(func(tx *store.Tx) error {
			data := s.data(tx)
			for _, id := range unknown {
				if ix, err := data.index(string(ps.id), id); err == nil {
					states[id] = ix.state
				}
			}
			return nil
		})
		if err == nil {
			s.mu.Lock()
			for _, id := range unknown {
				if st := states[id]; st == StateQueued || st == StateSent {
					if _, ok := a.shown[id]; !ok {
						a.shown[id] = StateSent
						emit = append(emit, id)
					}
				}
			}
			s.mu.Unlock()
		}
	}
	for _, id := range emit {
		s.emit(Event{Kind: EventState, Peer: ps.id, ID: id, State: StateSent})
	}
}

// removePending drops ids from ps's in-memory queue.
func (s *Service) removePending(ps *peerState, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		for _, id := range ids {
			delete(ps.frames, id)
			delete(ps.unsealed, id)
		}
		close(ps.progress)
		ps.progress = make(chan struct{})
	}()
	// Acks come in queue order: the common case is the head of the queue,
	// cut off without a pass over a long backlog.
	if len(ids) <= len(ps.pending) && slices.Equal(ps.pending[:len(ids)], ids) {
		clear(ps.pending[:len(ids)])
		ps.pending = ps.pending[len(ids):]
		return
	}
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	out := ps.pending[:0]
	for _, id := range ps.pending {
		if !gone[id] {
			out = append(out, id)
		}
	}
	clear(ps.pending[len(out):])
	ps.pending = out
}
