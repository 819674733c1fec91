package devices

// The link protocol, /callsign/link/1.0.0 (docs/DEVICES.md §1): E is the
// device that shows the code (Linker, PendingLink), N the new one that
// types it (Join). One stream, opened by N, carries every step; the frames
// are in linkframe.go, the key agreement in linkcrypto.go.
//
//	1  N→E  Hello    proof, commit      E checks the proof; the code is spent
//	2  E→N  Offer    eE
//	3  N→E  Reveal   eN, nN             E checks the commit; both derive k, SAS
//	4  both Confirm  mac                once the person confirmed the SAS
//	5  E→N  Account  sealed payload     LinkOffer.Account's bytes
//	6  N→E  Linked   payload            JoinConfig.Linked's bytes, checked by LinkOffer.Linked
//	7  E→N  History  sealed chunk       0 or more (LinkOffer.History), then
//	   E→N  Done     chunks             the link is complete
//
// Either side may send a Refusal instead of its next frame, then ends the
// stream; any other unexpected frame, a malformed one, one over its cap, a
// bad MAC or a passed deadline resets the stream with a p2p reset code
// (bad-request, too-large, timeout: linkwire.go).

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/p2p"
)

// LinkProtocol is the link protocol's stream protocol id.
const LinkProtocol protocol.ID = "/callsign/link/1.0.0"

// Errors of a link, besides RefusedError (a Refusal from the other side,
// which errors.Is matches to ErrLinkSpent, ErrLinkWrongCode or
// ErrLinkDeclined) and the code's ErrLinkCode and ErrLinkExpired.
var (
	// ErrLinkBusy: Offer while another link waits or runs.
	ErrLinkBusy = errors.New("a link is already waiting: finish or cancel it first")
	// ErrLinkSpent: E has no pending link for this code.
	ErrLinkSpent = errors.New("code expired or used: run devices link again")
	// ErrLinkWrongCode: the proof did not match E's pending link.
	ErrLinkWrongCode = errors.New("wrong link code")
	// ErrLinkDeclined: a person declined the SAS, on this device or the other.
	ErrLinkDeclined = errors.New("link declined: the numbers did not match or were refused")
	// ErrLinkCanceled: PendingLink.Cancel or Linker.Close ended the link.
	ErrLinkCanceled = errors.New("link canceled")
	// ErrLinkMismatch: the other side's commitment or Confirm MAC was
	// wrong: a man in the middle, or a broken peer.
	ErrLinkMismatch = errors.New("link key mismatch")
)

// linkDialTimeout bounds N's dial of E: E is up and shows the code, or
// the person should hear so soon.
const linkDialTimeout = 20 * time.Second

// maxWrongProofs is how many wrong proofs spend a pending link.
const maxWrongProofs = 3

// LinkConfig holds the link's timeouts, for both sides. Zero values mean
// the defaults in the comments.
type LinkConfig struct {
	StepTimeout time.Duration    // each step but the SAS; 0 = 60 s
	SASTimeout  time.Duration    // step 4, while the person compares; 0 = 2 min
	Timeout     time.Duration    // the whole link from the first frame; 0 = 10 min
	Now         func() time.Time // the clock codes are checked against; nil = time.Now
	Logger      *slog.Logger     // nil discards
}

func (c LinkConfig) withDefaults() LinkConfig {
	if c.StepTimeout <= 0 {
		c.StepTimeout = 60 * time.Second
	}
	if c.SASTimeout <= 0 {
		c.SASTimeout = 2 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// linkStream runs the steps of one link on its stream.
type linkStream struct {
	s   network.Stream
	cfg LinkConfig
	end time.Time // the whole link's deadline
}

func newLinkStream(s network.Stream, cfg LinkConfig) *linkStream {
	return &linkStream{s: s, cfg: cfg, end: time.Now().Add(cfg.Timeout)}
}

// step sets the deadline of the next step: d from now, within the link's.
func (ls *linkStream) step(d time.Duration) {
	t := time.Now().Add(d)
	if t.After(ls.end) {
		t = ls.end
	}
	ls.s.SetDeadline(t)
}

func (ls *linkStream) write(f linkFrame) error {
	if err := p2p.WriteFrame(ls.s, f.marshal()); err != nil {
		return fmt.Errorf("send %v: %w", f.typ, err)
	}
	return nil
}

// read reads the next frame, which must be one of want or a Refusal (then
// returned as a *RefusedError). Errors carry the reset code the peer sees.
func (ls *linkStream) read(max int, want ...frameType) (linkFrame, error) {
	b, err := p2p.ReadFrame(ls.s, max)
	if err != nil {
		err = fmt.Errorf("read %v: %w", want[0], err)
		switch {
		case errors.Is(err, p2p.ErrFrameTooLarge):
			return linkFrame{}, p2p.WithCode(p2p.CodeTooLarge, err)
		case isTimeout(err):
			return linkFrame{}, p2p.WithCode(p2p.CodeTimeout, err)
		}
		return linkFrame{}, p2p.WithCode(p2p.CodeBadRequest, err) // EOF, a bad length, a reset
	}
	f, err := unmarshalLinkFrame(b)
	if err != nil {
		return linkFrame{}, p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("read %v: %w", want[0], err))
	}
	if f.typ == frameRefusal {
		return linkFrame{}, &RefusedError{Reason: RefusalReason(f.n), Text: f.text}
	}
	for _, w := range want {
		if f.typ == w {
			return f, nil
		}
	}
	return linkFrame{}, p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("%w: got %v, want %v", ErrLinkFrame, f.typ, want[0]))
}

// sentRefusal is an error this side told the other with a Refusal frame:
// the stream then ends with a close, not a reset.
type sentRefusal struct{ err error }

func (e *sentRefusal) Error() string { return e.err.Error() }
func (e *sentRefusal) Unwrap() error { return e.err }

// refuse sends a Refusal and half-closes; it returns err, marked as told.
func (ls *linkStream) refuse(r RefusalReason, text string, err error) error {
	ls.step(ls.cfg.StepTimeout)
	ls.write(linkFrame{typ: frameRefusal, n: uint64(r), text: text})
	ls.s.CloseWrite()
	return &sentRefusal{err}
}

// finish ends the stream as err says: closed after success, a Refusal
// either way, else reset with err's code.
func (ls *linkStream) finish(err error) {
	var ce *p2p.CodeError
	var re *RefusedError
	var sr *sentRefusal
	switch {
	case err == nil, errors.As(err, &re), errors.As(err, &sr):
		ls.s.Close()
	case errors.As(err, &ce):
		ls.s.ResetWithError(ce.Code)
	default:
		ls.s.ResetWithError(p2p.CodeBadRequest)
	}
}

// confirmSAS is step 4 on either side: it asks the person (confirm) while
// reading the other side's Confirm, sends its own once the person said
// yes, and checks the other's MAC. A Refusal or error from the other side
// cancels the question's context.
func (ls *linkStream) confirmSAS(ctx context.Context, confirm func(context.Context, string) (bool, error), k *linkKey, me, them byte) error {
	ls.step(ls.cfg.SASTimeout)
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		f   linkFrame
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := ls.read(MaxLinkFrame, frameConfirm)
		if err != nil {
			cancel()
		}
		ch <- result{f, err}
	}()
	ok, err := confirm(qctx, k.sas())
	if err == nil && !ok {
		err = ErrLinkDeclined
	}
	if err != nil {
		select {
		case r := <-ch:
			if r.err != nil {
				return r.err // the other side ended first: its reason
			}
			// The other side's Confirm came; this side still declines.
		default:
			ls.s.SetReadDeadline(time.Now()) // unblock the reader: nothing more is read
			<-ch
		}
		if !errors.Is(err, ErrLinkDeclined) {
			err = fmt.Errorf("confirm the SAS: %w", err)
		}
		return ls.refuse(RefusedDeclined, "", err)
	}
	werr := ls.write(linkFrame{typ: frameConfirm, a: k.confirm(me)})
	r := <-ch
	if r.err != nil {
		return r.err
	}
	if werr != nil {
		return werr
	}
	if !hmac.Equal(r.f.a, k.confirm(them)) {
		return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("%w: the other side's Confirm does not match", ErrLinkMismatch))
	}
	return nil
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// LinkState is where a PendingLink is.
type LinkState int

// The states of a PendingLink.
const (
	LinkWaiting LinkState = iota // the code is shown; no device has proved it yet
	LinkSAS                      // a device proved the code; the code is spent; steps 2..7 run
	LinkLinked                   // step 7 done: the new device is linked
	LinkFailed                   // ended without a link (Wait says why)
)

func (s LinkState) String() string {
	return [...]string{"waiting", "sas", "linked", "failed"}[s]
}

// LinkOffer is what E's caller supplies for one link. ConfirmSAS, Account
// and Linked are required. Each callback must return when its ctx ends.
type LinkOffer struct {
	// Addrs are the addresses the code carries; nil = the host's.
	Addrs []ma.Multiaddr
	// TTL is how long the code is valid; 0 = DefaultLinkCodeTTL.
	TTL time.Duration
	// ConfirmSAS shows sas ("482 913") and reports whether the person
	// confirmed it matches the new device's.
	ConfirmSAS func(ctx context.Context, sas string) (bool, error)
	// Account returns step 5's payload (at most MaxLinkPayload bytes: the
	// seed and the snapshot) for the new device n; an error refuses the
	// link before anything leaves E.
	Account func(ctx context.Context, n peer.ID) ([]byte, error)
	// Linked checks step 6's payload from n (its cert, bundle, seq); an
	// error refuses it and the link fails.
	Linked func(ctx context.Context, n peer.ID, payload []byte) error
	// History, if set, sends the history chunks of step 7 (each at most
	// MaxLinkHistoryChunk bytes) with send, after Linked accepted n. nil:
	// no history is sent (Done says 0 chunks).
	History func(ctx context.Context, n peer.ID, send func(chunk []byte) error) error
}

// Linker is E's side of /callsign/link/1.0.0: it holds E's one pending
// link and serves the link streams N opens. The node registers ServeStream
// for LinkProtocol (p2p.HandleStream with LinkConfig.Timeout as the stream
// deadline, which adds the per-peer rate and the concurrency cap). It is
// safe for concurrent use.
type Linker struct {
	h   host.Host
	cfg LinkConfig

	mu      sync.Mutex
	pending *PendingLink // guarded by mu; nil when no link waits or runs
	closed  bool         // guarded by mu
}

// NewLinker returns the Linker of h, whose peer id and addresses its codes
// carry.
func NewLinker(h host.Host, cfg LinkConfig) *Linker {
	return &Linker{h: h, cfg: cfg.withDefaults()}
}

// Close ends the pending link (its Wait returns ErrLinkCanceled; a stream
// in flight is reset) and refuses new offers. Closing the handler
// registered for ServeStream waits for the stream's handler to return. It
// is idempotent.
func (l *Linker) Close() error {
	l.mu.Lock()
	l.closed = true
	p := l.pending
	l.mu.Unlock()
	if p != nil {
		p.Cancel()
	}
	return nil
}

// PendingLink is E's one link: the code it shows and, once a device proved
// the code, the link in progress. A stream cut before E checked a proof
// leaves the link waiting and its code usable; a good proof spends the
// code, so from then on a cut, a refusal or a decline fails the link
// (Wait says why), E keeps nothing of it, and Offer may start the next.
// Only LinkOffer.Linked, which accepted the new device at step 6, may
// have changed anything on E; a cut after it (before N closed the stream
// after Done) still fails the link.
type PendingLink struct {
	l      *Linker
	offer  LinkOffer
	code   LinkCode
	ctx    context.Context // canceled by Cancel
	cancel context.CancelFunc
	timer  *time.Timer // ends the wait at expiry
	done   chan struct{}

	// Guarded by l.mu.
	state LinkState
	wrong int
	err   error
	n     peer.ID
}

// Offer starts a link: it makes a fresh secret and the code for it, which
// the caller shows. It fails with ErrLinkBusy while another link waits or
// runs (one at a time), and wrapping ErrLinkCode when the host has no
// address a code may carry.
func (l *Linker) Offer(o LinkOffer) (*PendingLink, error) {
	if o.ConfirmSAS == nil || o.Account == nil || o.Linked == nil {
		panic("bug: devices: LinkOffer without ConfirmSAS, Account or Linked")
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = DefaultLinkCodeTTL
	}
	addrs := o.Addrs
	if addrs == nil {
		addrs = l.h.Addrs()
	}
	code, err := NewLinkCode(l.h.ID(), addrs, NewLinkSecret(), l.cfg.Now().Add(ttl))
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrLinkCanceled
	}
	if l.pending != nil {
		return nil, ErrLinkBusy
	}
	p := &PendingLink{l: l, offer: o, code: code, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.timer = time.AfterFunc(ttl, func() { p.expire() })
	l.pending = p
	return p, nil
}

// Code is the code to show.
func (p *PendingLink) Code() LinkCode { return p.code }

// State is where the link is now.
func (p *PendingLink) State() LinkState {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	return p.state
}

// Wait waits for the link to end and returns the new device's peer id, or
// why it failed: ErrLinkExpired, ErrLinkWrongCode (three wrong proofs),
// ErrLinkDeclined, ErrLinkCanceled, a RefusedError, or the error that cut
// the stream. Whatever the error, the link is over and Offer may start the
// next one.
func (p *PendingLink) Wait(ctx context.Context) (peer.ID, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	return p.n, p.err
}

// Cancel ends the link: the code stops working and a link in progress is
// cut. It is idempotent.
func (p *PendingLink) Cancel() {
	p.cancel()
	p.end(ErrLinkCanceled, false)
}

func (p *PendingLink) expire() { p.end(ErrLinkExpired, true) }

// end ends the link with err (nil: linked). onlyWaiting ends it only if no
// device has proved the code yet.
func (p *PendingLink) end(err error, onlyWaiting bool) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	p.endLocked(err, onlyWaiting)
}

func (p *PendingLink) endLocked(err error, onlyWaiting bool) {
	if p.state == LinkLinked || p.state == LinkFailed || onlyWaiting && p.state != LinkWaiting {
		return
	}
	p.timer.Stop()
	p.state, p.err = LinkLinked, err
	if err != nil {
		p.state = LinkFailed
	}
	if p.l.pending == p {
		p.l.pending = nil
	}
	close(p.done)
}

// admit checks a Hello from n against the pending link: it returns the
// link, now spent, or the refusal to send.
func (l *Linker) admit(n peer.ID, proof []byte) (*PendingLink, RefusalReason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending
	if p == nil || p.state != LinkWaiting {
		return nil, RefusedSpent
	}
	if !l.cfg.Now().Before(p.code.Expires) {
		p.endLocked(ErrLinkExpired, true)
		return nil, RefusedSpent
	}
	if !hmac.Equal(proof, helloProof(p.code.Secret, l.h.ID(), n)) {
		p.wrong++
		if p.wrong >= maxWrongProofs {
			p.endLocked(fmt.Errorf("%w: %d wrong proofs spent the code", ErrLinkWrongCode, p.wrong), true)
		}
		return nil, RefusedWrong
	}
	p.timer.Stop()
	p.state, p.n = LinkSAS, n
	return p, 0
}

// ServeStream is E's side of one link stream, a p2p.StreamHandler. It
// resets the stream itself, with p2p's codes, when it returns an error.
func (l *Linker) ServeStream(ctx context.Context, s network.Stream) error {
	ls := newLinkStream(s, l.cfg)
	err := l.serve(ctx, ls)
	var sr *sentRefusal
	var re *RefusedError
	if errors.As(err, &sr) || errors.As(err, &re) {
		err = nil // told, or was told: the stream closes
	}
	if err != nil {
		ls.finish(err)
	}
	return err
}

func (l *Linker) serve(ctx context.Context, ls *linkStream) error {
	s := ls.s
	n := s.Conn().RemotePeer()
	ls.step(l.cfg.StepTimeout)
	hello, err := ls.read(MaxLinkFrame, frameHello)
	if err != nil {
		return err
	}
	p, reason := l.admit(n, hello.a)
	if p == nil {
		l.cfg.Logger.Debug("link refused", "peer", n, "reason", uint64(reason))
		return ls.refuse(reason, "", fmt.Errorf("refused a link from %s (reason %d)", n, uint64(reason)))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	stopReset := context.AfterFunc(ctx, func() { s.ResetWithError(p2p.CodeClosing) })
	defer stopReset()

	err = l.run(ctx, ls, p, n, hello.b)
	if err != nil && p.ctx.Err() != nil {
		err = ErrLinkCanceled
	}
	p.end(err, false)
	if err != nil {
		l.cfg.Logger.Debug("link failed", "peer", n, "err", err)
	}
	return err
}

// run is steps 2..7 on E, after n's proof spent the code.
func (l *Linker) run(ctx context.Context, ls *linkStream, p *PendingLink, n peer.ID, commit []byte) error {
	eE, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ls.step(l.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameOffer, a: eE.PublicKey().Bytes()}); err != nil {
		return err
	}
	rev, err := ls.read(MaxLinkFrame, frameReveal)
	if err != nil {
		return err
	}
	if !hmac.Equal(linkCommit(rev.a, rev.b), commit) {
		return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("%w: the Reveal does not match the Hello's commitment", ErrLinkMismatch))
	}
	k, err := linkKeys(eE, rev.a, p.code.Secret, l.h.ID(), n, commit, eE.PublicKey().Bytes(), rev.a, rev.b)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	if err := ls.confirmSAS(ctx, p.offer.ConfirmSAS, &k, roleE, roleN); err != nil {
		return err
	}

	ls.step(l.cfg.StepTimeout)
	acct, err := p.offer.Account(ctx, n)
	if err == nil && (len(acct) == 0 || len(acct) > MaxLinkPayload) {
		err = fmt.Errorf("bug: account payload of %d bytes, want 1..%d", len(acct), MaxLinkPayload)
	}
	if err != nil {
		return ls.refuse(RefusedAccount, refusalText(err), fmt.Errorf("hand the account over: %w", err))
	}
	ls.step(l.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameAccount, a: k.seal(0, adLinkAccount, acct)}); err != nil {
		return err
	}
	linked, err := ls.read(MaxLinkFrame, frameLinked)
	if err != nil {
		return err
	}
	if err := p.offer.Linked(ctx, n, linked.a); err != nil {
		return ls.refuse(RefusedLinked, refusalText(err), fmt.Errorf("check the new device: %w", err))
	}

	var chunks uint64
	if p.offer.History != nil {
		send := func(chunk []byte) error {
			if len(chunk) == 0 || len(chunk) > MaxLinkHistoryChunk || chunks == maxLinkChunks {
				return fmt.Errorf("bug: history chunk %d of %d bytes, want 1..%d", chunks+1, len(chunk), MaxLinkHistoryChunk)
			}
			chunks++
			ls.step(l.cfg.StepTimeout)
			return ls.write(linkFrame{typ: frameHistory, a: k.seal(chunks, adLinkHistory, chunk)})
		}
		if err := p.offer.History(ctx, n, send); err != nil {
			return fmt.Errorf("send history: %w", err)
		}
	}
	ls.step(l.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameDone, n: chunks}); err != nil {
		return err
	}
	// Wait for N to close, so a cut Done is not taken for a link.
	if _, err := ls.s.Read(make([]byte, 1)); err != io.EOF {
		return fmt.Errorf("after Done: %w", errOr(err, errors.New("unexpected bytes")))
	}
	return nil
}

func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// JoinConfig is N's side of a link. ConfirmSAS and Linked are required;
// each callback must return when its ctx ends.
type JoinConfig struct {
	LinkConfig
	// ConfirmSAS shows sas and reports whether the person confirmed it
	// matches the one E shows.
	ConfirmSAS func(ctx context.Context, sas string) (bool, error)
	// Linked takes step 5's account payload, makes this device part of the
	// account (one store transaction, its cert, its prekeys, the record)
	// and returns step 6's payload for E (at most MaxLinkPayload bytes)
	// within StepTimeout, for E waits that long for it. An error refuses
	// the link; E hands nothing more over.
	Linked func(ctx context.Context, account []byte) ([]byte, error)
	// History receives each history chunk of step 7, in order; nil
	// discards them.
	History func(ctx context.Context, chunk []byte) error
}

// Join links this device (h) to E's account with code, as of
// cfg.Now. A garbled code (ErrLinkCode) or an expired one (ErrLinkExpired)
// is refused before anything is dialled. It returns nil once E sent Done.
// Linked is called only once the account is received (step 5); an error
// after it returned means E may not have seen or accepted this device:
// errors.As(err, *RefusedError) with RefusedLinked says E refused it.
func Join(ctx context.Context, h host.Host, code string, cfg JoinConfig) error {
	if cfg.ConfirmSAS == nil || cfg.Linked == nil {
		panic("bug: devices: JoinConfig without ConfirmSAS or Linked")
	}
	lc := cfg.LinkConfig.withDefaults()
	c, err := ParseLinkCode(code, lc.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lc.Timeout)
	defer cancel()
	h.Peerstore().AddAddrs(c.Peer, c.Addrs, lc.Timeout)
	dctx, dcancel := context.WithTimeout(ctx, min(lc.StepTimeout, linkDialTimeout))
	s, err := h.NewStream(network.WithAllowLimitedConn(dctx, string(LinkProtocol)), c.Peer, LinkProtocol)
	dcancel()
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	ls := newLinkStream(s, lc)
	stop := context.AfterFunc(ctx, func() { s.ResetWithError(p2p.CodeClosing) })
	defer stop()
	err = join(ctx, ls, c, h.ID(), cfg)
	if err == nil {
		// E takes the link once it reads this side's close: wait for its
		// own, so a caller that closes the host at once cuts nothing.
		ls.s.CloseWrite()
		ls.step(ls.cfg.StepTimeout)
		if _, rerr := ls.s.Read(make([]byte, 1)); rerr != io.EOF {
			err = fmt.Errorf("after Done: %w", errOr(rerr, errors.New("unexpected bytes")))
		}
	}
	ls.finish(err)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

func join(ctx context.Context, ls *linkStream, c LinkCode, self peer.ID, cfg JoinConfig) error {
	eN, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	nN := make([]byte, linkNonceSize)
	rand.Read(nN)
	pub := eN.PublicKey().Bytes()
	commit := linkCommit(pub, nN)

	ls.step(ls.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameHello, a: helloProof(c.Secret, c.Peer, self), b: commit}); err != nil {
		return err
	}
	offer, err := ls.read(MaxLinkFrame, frameOffer)
	if err != nil {
		return err
	}
	ls.step(ls.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameReveal, a: pub, b: nN}); err != nil {
		return err
	}
	k, err := linkKeys(eN, offer.a, c.Secret, c.Peer, self, commit, offer.a, pub, nN)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	if err := ls.confirmSAS(ctx, cfg.ConfirmSAS, &k, roleN, roleE); err != nil {
		return err
	}

	ls.step(ls.cfg.StepTimeout)
	f, err := ls.read(MaxLinkFrame, frameAccount)
	if err != nil {
		return err
	}
	acct, err := k.open(0, adLinkAccount, f.a)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("account: %w", err))
	}
	payload, err := cfg.Linked(ctx, acct)
	if err == nil && (len(payload) == 0 || len(payload) > MaxLinkPayload) {
		err = fmt.Errorf("bug: linked payload of %d bytes, want 1..%d", len(payload), MaxLinkPayload)
	}
	if err != nil {
		return ls.refuse(RefusedFailed, refusalText(err), fmt.Errorf("store the account: %w", err))
	}
	ls.step(ls.cfg.StepTimeout)
	if err := ls.write(linkFrame{typ: frameLinked, a: payload}); err != nil {
		return err
	}

	var chunks uint64
	for {
		ls.step(ls.cfg.StepTimeout)
		f, err := ls.read(MaxLinkHistoryFrame, frameHistory, frameDone)
		if err != nil {
			return err
		}
		if f.typ == frameDone {
			if f.n != chunks {
				return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("%w: Done says %d history chunks, %d came", ErrLinkFrame, f.n, chunks))
			}
			return nil
		}
		if chunks == maxLinkChunks {
			return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("%w: more than %d history chunks", ErrLinkFrame, maxLinkChunks))
		}
		chunks++
		chunk, err := k.open(chunks, adLinkHistory, f.a)
		if err != nil {
			return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("history chunk %d: %w", chunks, err))
		}
		if cfg.History != nil {
			if err := cfg.History(ctx, chunk); err != nil {
				return p2p.WithCode(p2p.CodeInternal, fmt.Errorf("history chunk %d: %w", chunks, err))
			}
		}
	}
}
