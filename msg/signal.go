package msg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// MaxSignal is the largest call signal payload SendSignal carries.
const MaxSignal = 32 << 10

// SignalLife is the longest a signal is tried for: SendSignal gives up at
// ctx's deadline or after SignalLife, whichever comes first. An invite
// rings for 30 s at most (call.DefaultRingTimeout), so no signal is worth
// delivering later than that.
const SignalLife = 30 * time.Second

// Errors SendSignal returns (wrapped).
var (
	// ErrSignalTooLarge is returned for a payload that is empty or over
	// MaxSignal.
	ErrSignalTooLarge = errors.New("signal too large")
	// ErrSignalUndelivered means the recipient's device did not
	// acknowledge the signal within its life: it could not be looked up,
	// reached or given a session, it refused the signal (the error says
	// why), or it did not answer in time. The signal is not tried again.
	ErrSignalUndelivered = errors.New("signal not delivered")
)

// Signal lane limits.
const (
	// maxSignalAhead is how many of this peer's sealed frames still
	// waiting for an ack a signal may overtake: the recipient skips (and
	// keeps) that many message keys to open it, and e2e refuses a message
	// that skips more than e2e.MaxSkip. Past it a signal waits for acks.
	maxSignalAhead = e2e.MaxSkip - maxBatch
	// presealMax is how many sealed, unacknowledged frames the queue of a
	// peer in a call (signalled within SignalLife) may hold before Send
	// stops sealing text messages when it queues them (the sender
	// goroutine seals the rest as it writes them, at most a window ahead),
	// so that texts sent during a call stay below maxSignalAhead and the
	// call's signals never wait behind them. Other peers' texts are sealed
	// when queued however many wait: sealing them later costs bulk sends
	// a quarter more CPU per message (docs/BENCHMARKS.md).
	presealMax = window
	// laneAttempts is how many streams a signal is written to: a second
	// one when the first breaks before the ack (the recipient drops the
	// duplicate by id).
	laneAttempts = 2
)

// sigReq is one SendSignal on its way through the peer's signal lane.
type sigReq struct {
	payload  []byte
	deadline time.Time // end of the signal's life
	id       msgID
	frame    []byte // the sealed Deliver frame, once sealed
	attempts int    // streams it was written to
	stamped  int    // the bits of the first-contact stamp it was last written with; 0: none

	once   sync.Once
	over   atomic.Bool  // finished: by the lane, or by a caller that stopped waiting
	done   chan error   // buffered; receives the outcome once
	notify chan<- error // when set, also receives the outcome (buffered by the sender for all its requests)
}

func (r *sigReq) finish(err error) {
	r.once.Do(func() {
		r.over.Store(true)
		r.done <- err
		if r.notify != nil {
			r.notify <- err
		}
	})
}

// SendSignal seals a call signal for every device of the account to (as
// its record named them when last looked up) and sends it on each
// device's signal lane, a stream of its own (ProtocolSignal) beside the
// one that carries text messages, so it never waits behind queued texts,
// and returns once at least one device has acknowledged it: decrypted
// it, committed its id as seen and handed it to its Config.OnSignal; it
// waits for the others meanwhile, up to the signal's life. The payload is
// opaque, carried inside the E2E session like a read receipt (a control
// frame), and never stored as a message. SendSignalTo sends to one device.
//
// Nothing of the signal is queued durably: only the ratchet state it
// advanced, committed before the frame leaves this process, so a crash
// never reuses a message key. A signal the recipient has not acknowledged
// by ctx's deadline (at most SignalLife) fails with ErrSignalUndelivered
// and is not tried again: an invite that can't ring now must not ring
// minutes later. Signals to one device travel in the order they were
// sent. A peer that does not serve ProtocolSignal (an older version) gets
// them on a msg stream of its own.
func (s *Service) SendSignal(ctx context.Context, to identity.AccountID, payload []byte) error {
	return s.SendSignalTo(ctx, to, identity.DeviceID{}, payload)
}

// SendSignalTo is SendSignal to the device dev of to only (the device a
// call is with); the zero dev means every device, as SendSignal.
func (s *Service) SendSignalTo(ctx context.Context, to identity.AccountID, dev identity.DeviceID, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send signal: %w", err)
	}
	if len(payload) == 0 || len(payload) > MaxSignal {
		return fmt.Errorf("send signal: %w: %d bytes, limit %d", ErrSignalTooLarge, len(payload), MaxSignal)
	}
	if to == s.selfID {
		return fmt.Errorf("send signal: %w: cannot signal this account itself", ErrBadRecipient)
	}
	if s.revoked.Load() {
		return fmt.Errorf("send signal: %w", ErrDeviceRevoked)
	}
	if _, err := identity.ParseAccountID(string(to)); err != nil {
		return fmt.Errorf("send signal: %w: %v", ErrBadRecipient, err)
	}
	deadline := time.Now().Add(SignalLife)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Which devices: know them first.
	s.mu.Lock()
	known := s.acctLocked(to).view != nil
	s.mu.Unlock()
	if !known && dev.IsZero() {
		lctx, cancel := context.WithDeadline(ctx, deadline)
		_, err := s.lookup(lctx, to)
		cancel()
		if err != nil {
			return fmt.Errorf("send signal: %w: %w", ErrSignalUndelivered, err)
		}
	}
	s.mu.Lock()
	if s.state != 1 {
		s.mu.Unlock()
		return fmt.Errorf("send signal: %w", ErrClosed)
	}
	a := s.acctLocked(to)
	var lanes []*peerState
	if dev.IsZero() {
		for _, d := range a.view {
			lanes = append(lanes, s.laneLocked(a, d))
		}
		if len(lanes) == 0 {
			lanes = append(lanes, s.primaryLocked(a))
		}
	} else {
		lanes = append(lanes, s.laneLocked(a, dev))
	}
	reqs := make([]*sigReq, len(lanes))
	outcomes := make(chan error, len(lanes))
	for i, ps := range lanes {
		r := &sigReq{payload: append([]byte(nil), payload...), deadline: deadline, id: newMsgID(), done: make(chan error, 1), notify: outcomes}
		reqs[i] = r
		ps.sigQ = append(ps.sigQ, r)
		ps.inCall = deadline
		if !ps.sigRunning {
			ps.sigRunning = true
			s.wg.Go(func() { s.runLane(ps) })
		}
	}
	s.mu.Unlock()
	for _, ps := range lanes {
		select {
		case ps.sigWake <- struct{}{}:
		default:
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	// The first device to acknowledge makes it a success; the others go
	// on in their lanes until they acknowledge or the signal's life ends
	// (an offline device must not hold up a call), and their failure is
	// not the caller's.
	var first error
	for range reqs {
		var err error
		select {
		case err = <-outcomes:
		case <-ctx.Done():
			err = fmt.Errorf("%w: %w", ErrSignalUndelivered, ctx.Err())
		case <-t.C:
			err = fmt.Errorf("%w: no ack within its life", ErrSignalUndelivered)
		}
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			// Whatever the lanes do with them from now on, nobody waits:
			// finish makes a lane drop one not written yet.
			for _, r := range reqs {
				r.finish(first)
			}
			break
		}
	}
	return fmt.Errorf("send signal: %w", first)
}

// laneStream is the signal lane's open stream to the peer's device.
type laneStream struct {
	st        network.Stream
	v         version
	stamp     []byte // the first-contact stamp sent with every frame (1.1.0)
	stampBits int    // its bits
	recipient []byte // the recipient's account key
	acks      chan ackFrame
	readErr   chan error
	readDone  chan struct{}
	cancel    context.CancelFunc
	flight    []*sigReq // written, not yet acknowledged, in order
}

// shut resets the stream and waits for its reader.
func (l *laneStream) shut() {
	l.cancel()
	l.st.Reset()
	<-l.readDone
}

// runLane is ps's signal lane: it seals the signals SendSignal queued, in
// order, writes them to one stream and matches the acks, until nothing is
// queued or in flight and the stream has been idle for idleStream.
func (s *Service) runLane(ps *peerState) {
	var (
		ln    *laneStream
		retry []*sigReq // written to a stream that broke: sent again first
	)
	defer func() {
		if ln != nil {
			ln.shut()
			for _, r := range ln.flight {
				r.finish(ErrClosed)
			}
		}
		for _, r := range retry {
			r.finish(ErrClosed)
		}
		s.mu.Lock()
		q := ps.sigQ
		ps.sigQ = nil
		s.mu.Unlock()
		for _, r := range q {
			r.finish(ErrClosed)
		}
	}()
	idle := time.NewTimer(idleStream)
	defer idle.Stop()
	life := time.NewTimer(time.Hour)
	defer life.Stop()
	for {
		s.mu.Lock()
		batch := append(retry, ps.sigQ...)
		retry, ps.sigQ = nil, nil
		if len(batch) == 0 && ln == nil || s.state != 1 {
			ps.sigRunning = false
			s.mu.Unlock()
			for _, r := range batch {
				r.finish(ErrClosed)
			}
			return
		}
		s.mu.Unlock()
		batch = liveSignals(batch)
		if len(batch) > 0 {
			var err error
			if ln == nil {
				if ln, err = s.openLane(ps, batch); err != nil {
					failSignals(batch, err)
					continue
				}
			}
			if err = s.sealSignals(ps, batch); err != nil {
				failSignals(batch, err)
				continue
			}
			if err = s.writeSignals(ln, batch); err != nil {
				retry = s.laneBroke(ln, err)
				ln = nil
				continue
			}
			idle.Reset(idleStream)
		}
		if ln == nil {
			continue
		}
		// The oldest frame in flight bounds how long the stream may stay
		// silent: past its life the recipient is stuck, and the stream is
		// reset so it can't process the frames late.
		var lifeC <-chan time.Time
		if len(ln.flight) > 0 {
			life.Reset(time.Until(ln.flight[0].deadline))
			lifeC = life.C
		}
		select {
		case <-s.ctx.Done():
			return
		case <-ps.sigWake:
		case a := <-ln.acks:
			r, err := s.laneAck(ps, ln, a)
			switch {
			case r != nil:
				retry = append(retry, r)
			case err != nil:
				retry = s.laneBroke(ln, err)
				ln = nil
			case len(ln.flight) == 0:
				idle.Reset(idleStream)
			}
		case err := <-ln.readErr:
			if err == nil {
				err = errors.New("stream closed by the recipient")
			}
			retry = s.laneBroke(ln, fmt.Errorf("read ack: %w", err))
			ln = nil
		case <-lifeC:
			ln.shut()
			failSignals(ln.flight, fmt.Errorf("%w: no ack within its life", ErrSignalUndelivered))
			ln = nil
		case <-idle.C:
			if len(ln.flight) == 0 {
				s.closeStream(ln.st, ln.readErr)
				ln.cancel()
				<-ln.readDone
				ln = nil
			}
		}
	}
}

// liveSignals returns the requests still worth sending: a request whose
// caller stopped waiting or whose life ended is dropped.
func liveSignals(batch []*sigReq) []*sigReq {
	now := time.Now()
	out := batch[:0]
	for _, r := range batch {
		if r.over.Load() {
			continue // the caller stopped waiting
		}
		if !now.Before(r.deadline) {
			r.finish(fmt.Errorf("%w: its life ended before it could be sent", ErrSignalUndelivered))
			continue
		}
		out = append(out, r)
	}
	return out
}

func failSignals(rs []*sigReq, err error) {
	if !errors.Is(err, ErrSignalUndelivered) && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", ErrSignalUndelivered, err)
	}
	for _, r := range rs {
		r.finish(err)
	}
}

// laneBroke handles a stream that failed: it is reset, and what was in
// flight is returned to be sent again on a new stream, once. When the
// recipient reset it itself (a refusal), the oldest frame in flight is the
// one it refused, and fails at once; the frames behind it may have been
// written after the refusal, unread: they go again and are judged on
// their own (the recipient's call policy may have changed in between).
func (s *Service) laneBroke(ln *laneStream, err error) (retry []*sigReq) {
	ln.shut()
	_, refused := p2p.CodeOf(err)
	for i, r := range ln.flight {
		if refused && i == 0 || r.attempts >= laneAttempts {
			r.finish(fmt.Errorf("%w: %w", ErrSignalUndelivered, err))
			continue
		}
		retry = append(retry, r)
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Debug("signal stream failed", "err", err, "resend", len(retry))
	}
	return retry
}

// laneDeadline is the latest life among batch: the lane's set-up may take
// until then.
func laneDeadline(batch []*sigReq) time.Time {
	var d time.Time
	for _, r := range batch {
		if r.deadline.After(d) {
			d = r.deadline
		}
	}
	return d
}

// openLane looks the peer up, makes sure a session exists (fetching a
// bundle for a first contact) and opens the lane's stream: ProtocolSignal,
// or a msg stream to a peer that does not serve it.
func (s *Service) openLane(ps *peerState, batch []*sigReq) (*laneStream, error) {
	ctx, cancel := context.WithDeadline(s.ctx, laneDeadline(batch))
	defer cancel()
	rec, pid, err := s.reach(ctx, ps)
	if err != nil {
		return nil, err
	}
	dctx := network.WithAllowLimitedConn(ctx, string(ProtocolSignal))
	st, err := s.cfg.Host.NewStream(dctx, pid, ProtocolSignal, ProtocolMsg, ProtocolMsg10)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", ProtocolSignal, pid, err)
	}
	v := v11
	if st.Protocol() == ProtocolMsg10 {
		v = v10
	}
	sctx, scancel := context.WithCancel(s.ctx)
	ln := &laneStream{st: st, v: v, recipient: rec.Account.Bytes(), acks: make(chan ackFrame, window), readErr: make(chan error, 1),
		readDone: make(chan struct{}), cancel: scancel}
	s.mu.Lock()
	if v == v11 {
		ln.stamp, ln.stampBits = ps.acct.stamp, ps.acct.stampBits
	}
	s.mu.Unlock()
	stop := context.AfterFunc(sctx, func() { st.Reset() })
	go func() {
		defer close(ln.readDone)
		defer stop()
		readAcks(sctx, st, v, ln.acks, ln.readErr)
	}()
	return ln, nil
}

// sealSignals encrypts the signals of batch not yet sealed, in order, and
// commits the ratchet state they advanced in one transaction before any
// of them is written: a crash after it loses the signals (their life ends
// with the process) but never reuses a message key. The frames are not
// stored. A signal overtakes at most maxSignalAhead of the peer's sealed
// frames waiting for acks; past that it waits for acks, within its life.
func (s *Service) sealSignals(ps *peerState, batch []*sigReq) error {
	var todo []*sigReq
	for _, r := range batch {
		if r.frame == nil {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := s.waitAhead(ps, laneDeadline(todo)); err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := s.loadSetLocked(ps); err != nil {
		return err
	}
	if ps.set.Active() == nil {
		return fmt.Errorf("seal signal: %w", e2e.ErrNoSession)
	}
	frames := make([][]byte, len(todo))
	for i, r := range todo {
		c := content{kind: contentSignal, body: r.payload}
		pt := c.marshal()
		ct, err := ps.set.Encrypt(pt, messageAD(r.id, kindReceipt))
		clear(pt)
		if err != nil {
			s.releaseSetLocked(ps, true)
			return fmt.Errorf("seal signal: %w", err)
		}
		f := deliverFrame{id: r.id, sender: s.cfg.Account.Public().Bytes(), cert: s.certBytes, kind: kindReceipt, ciphertext: ct}
		frames[i] = f.marshal()
	}
	state, err := ps.set.Marshal()
	if err == nil {
		err = s.cfg.DB.Update(func(tx *store.Tx) error { return s.data(tx).PutSession(string(ps.id), ps.dev, state) })
	}
	// On failure the in-memory ratchet ran ahead of the store: reload it.
	s.releaseSetLocked(ps, err != nil)
	if err != nil {
		return fmt.Errorf("seal signal: %w", err)
	}
	for i, r := range todo {
		r.frame = frames[i]
	}
	return nil
}

// waitAhead waits until ps has at most maxSignalAhead sealed frames
// waiting for acks, or deadline.
func (s *Service) waitAhead(ps *peerState, deadline time.Time) error {
	var t *time.Timer
	for {
		s.mu.Lock()
		ahead := len(ps.pending) - len(ps.unsealed)
		progress := ps.progress
		s.mu.Unlock()
		if ahead <= maxSignalAhead {
			return nil
		}
		if t == nil {
			t = time.NewTimer(time.Until(deadline))
			defer t.Stop()
		}
		select {
		case <-progress:
		case <-t.C:
			return fmt.Errorf("%w: %d sealed messages to this peer wait for acks, more than a signal may overtake", ErrSignalUndelivered, ahead)
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// writeSignals writes batch's sealed frames to the lane's stream, in
// order, and puts them in flight.
func (s *Service) writeSignals(ln *laneStream, batch []*sigReq) error {
	ln.st.SetWriteDeadline(laneDeadline(batch))
	bw := bufio.NewWriterSize(ln.st, 16<<10)
	for _, r := range batch {
		b := r.frame
		if ln.stamp != nil {
			b = withStamp(b, ln.stamp)
		}
		if err := p2p.WriteFrame(bw, b); err != nil {
			ln.flight = append(ln.flight, batch...)
			return err
		}
		r.attempts++
		r.stamped = 0
		if ln.stamp != nil {
			r.stamped = ln.stampBits
		}
	}
	ln.flight = append(ln.flight, batch...)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// laneAck applies one ack to the oldest frame in flight. A recipient that
// asks for a first-contact stamp gets one: the frame is returned to be
// sent again, stamped. err ends the stream.
func (s *Service) laneAck(ps *peerState, ln *laneStream, a ackFrame) (resend *sigReq, err error) {
	if len(ln.flight) == 0 {
		return nil, errors.New("recipient acked more frames than were sent")
	}
	r := ln.flight[0]
	if a.id != r.id {
		return nil, fmt.Errorf("ack for %s out of order", a.id)
	}
	ln.flight = ln.flight[1:]
	switch a.status {
	case statusStored, statusDuplicate:
		r.finish(nil)
	case statusRefused:
		s.log.Info("signal refused by the recipient", "peer", ps.id, "reason", a.reason)
		r.finish(fmt.Errorf("%w: refused by the recipient: %s", ErrSignalUndelivered, a.reason))
	case statusStamp:
		// Frames written before the stamp was paid for are asked for it
		// too: they go again, stamped. One that carried a stamp of the
		// bits asked for was not taken.
		switch {
		case a.stampBits > MaxStampBits:
			r.finish(fmt.Errorf("%w: recipient asks for a first-contact stamp of %d bits; the most this sender does is %d", ErrSignalUndelivered, a.stampBits, MaxStampBits))
		case r.stamped != 0 && int(a.stampBits) <= r.stamped:
			r.finish(fmt.Errorf("%w: recipient did not take the first-contact stamp", ErrSignalUndelivered))
		default:
			// solveStampFor uses a stamp already paid for this peer.
			if err := s.solveStampFor(ps, &stampError{bits: int(a.stampBits), recipient: ln.recipient}); err != nil {
				r.finish(fmt.Errorf("%w: first-contact stamp: %w", ErrSignalUndelivered, err))
				return nil, nil
			}
			s.mu.Lock()
			ln.stamp, ln.stampBits = ps.acct.stamp, ps.acct.stampBits
			s.mu.Unlock()
			return r, nil
		}
	}
	return nil, nil
}
