package devices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

func testLinkConfig() LinkConfig {
	return LinkConfig{StepTimeout: 5 * time.Second, SASTimeout: 5 * time.Second, Timeout: 20 * time.Second}
}

// screens is the person holding both devices: each side's ConfirmSAS
// shows its SAS and waits for the other's, then answers whether they match
// (or what answer says, when set).
type screens struct {
	e, n           chan string
	mu             sync.Mutex
	shownE, shownN string
	answerE        *bool // nil: compare
	answerN        *bool
}

func newScreens() *screens { return &screens{e: make(chan string, 1), n: make(chan string, 1)} }

func (s *screens) confirm(onE bool) func(context.Context, string) (bool, error) {
	return func(ctx context.Context, sas string) (bool, error) {
		mine, theirs, shown, answer := s.e, s.n, &s.shownE, s.answerE
		if !onE {
			mine, theirs, shown, answer = s.n, s.e, &s.shownN, s.answerN
		}
		s.mu.Lock()
		*shown = sas
		s.mu.Unlock()
		mine <- sas
		select {
		case other := <-theirs:
			theirs <- other
			if answer != nil {
				return *answer, nil
			}
			return other == sas, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (s *screens) shown() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shownE, s.shownN
}

// linkE is E: a host, its Linker and what its callbacks saw.
type linkE struct {
	h        host.Host
	l        *Linker
	accounts atomic.Int32 // Account calls: the account left E
	linked   atomic.Int32 // Linked calls that accepted N
	history  [][]byte
	refuseN  error // Linked's answer
}

func newLinkE(t *testing.T, cfg LinkConfig) *linkE {
	e := &linkE{h: p2ptest.NewHost(t, nil)}
	e.l = NewLinker(e.h, cfg)
	srv := p2p.HandleStream(e.h, LinkProtocol, p2p.HandlerConfig{Timeout: cfg.withDefaults().Timeout}, e.l.ServeStream)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() { e.l.Close() })
	return e
}

func (e *linkE) offer(t *testing.T, sc *screens) *PendingLink {
	t.Helper()
	p, err := e.l.Offer(LinkOffer{
		ConfirmSAS: sc.confirm(true),
		Account: func(ctx context.Context, n peer.ID) ([]byte, error) {
			e.accounts.Add(1)
			return []byte("seed and snapshot"), nil
		},
		Linked: func(ctx context.Context, n peer.ID, payload []byte) error {
			if string(payload) != "cert bundle seq" {
				return fmt.Errorf("payload %q", payload)
			}
			if e.refuseN != nil {
				return e.refuseN
			}
			e.linked.Add(1)
			return nil
		},
		History: func(ctx context.Context, n peer.ID, send func([]byte) error) error {
			for _, c := range e.history {
				if err := send(c); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// linkN is N: what its callbacks got.
type linkN struct {
	accounts atomic.Int32 // Linked calls: N got the account
	mu       sync.Mutex
	account  []byte
	history  [][]byte
}

func (n *linkN) config(sc *screens, lc LinkConfig) JoinConfig {
	return JoinConfig{
		LinkConfig: lc,
		ConfirmSAS: sc.confirm(false),
		Linked: func(ctx context.Context, account []byte) ([]byte, error) {
			n.accounts.Add(1)
			n.mu.Lock()
			n.account = account
			n.mu.Unlock()
			return []byte("cert bundle seq"), nil
		},
		History: func(ctx context.Context, chunk []byte) error {
			n.mu.Lock()
			n.history = append(n.history, chunk)
			n.mu.Unlock()
			return nil
		},
	}
}

func wait(t *testing.T, p *PendingLink) (peer.ID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := p.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		t.Fatal("the pending link did not end")
	}
	return id, err
}

// TestLink: the whole link between two real hosts, with history.
func TestLink(t *testing.T) {
	e := newLinkE(t, testLinkConfig())
	e.history = [][]byte{[]byte("chunk one"), bytes.Repeat([]byte{7}, MaxLinkFrame+1)}
	nh := p2ptest.NewHost(t, nil)
	sc := newScreens()
	p := e.offer(t, sc)
	if _, err := e.l.Offer(LinkOffer{ConfirmSAS: sc.confirm(true), Account: func(context.Context, peer.ID) ([]byte, error) { return nil, nil }, Linked: func(context.Context, peer.ID, []byte) error { return nil }}); !errors.Is(err, ErrLinkBusy) {
		t.Fatalf("a second offer: %v", err)
	}
	if p.State() != LinkWaiting {
		t.Fatalf("state %v", p.State())
	}
	var n linkN
	if err := Join(context.Background(), nh, p.Code().String(), n.config(sc, testLinkConfig())); err != nil {
		t.Fatalf("join: %v", err)
	}
	id, err := wait(t, p)
	if err != nil || id != nh.ID() {
		t.Fatalf("wait = %s, %v", id, err)
	}
	if p.State() != LinkLinked {
		t.Fatalf("state %v", p.State())
	}
	sasE, sasN := sc.shown()
	if sasE == "" || sasE != sasN {
		t.Fatalf("SAS on E %q, on N %q", sasE, sasN)
	}
	if string(n.account) != "seed and snapshot" || e.accounts.Load() != 1 || e.linked.Load() != 1 {
		t.Fatalf("account %q; E handed over %d, accepted %d", n.account, e.accounts.Load(), e.linked.Load())
	}
	if len(n.history) != 2 || !bytes.Equal(n.history[1], e.history[1]) {
		t.Fatalf("history: %d chunks", len(n.history))
	}
	// The code is spent: it can't be used again.
	err = Join(context.Background(), nh, p.Code().String(), n.config(newScreens(), testLinkConfig()))
	if !errors.Is(err, ErrLinkSpent) || !strings.Contains(err.Error(), "code expired or used: run devices link again") {
		t.Fatalf("reused code: %v", err)
	}
	// And the next link may start.
	p2 := e.offer(t, newScreens())
	p2.Cancel()
	if _, err := wait(t, p2); !errors.Is(err, ErrLinkCanceled) {
		t.Fatalf("canceled: %v", err)
	}
}

// countingHost counts the streams opened through it.
type countingHost struct {
	host.Host
	dials atomic.Int32
	wrap  func(network.Stream) network.Stream
}

func (h *countingHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	h.dials.Add(1)
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err == nil && h.wrap != nil {
		s = h.wrap(s)
	}
	return s, err
}

// cutStream resets the stream instead of writing a frame of type write,
// or when a frame of type read arrives.
type cutStream struct {
	network.Stream
	write, read frameType
	buf         []byte
}

func frameTypeOf(payload []byte) frameType {
	if len(payload) < 2 || payload[0] != 0x08 {
		return 0
	}
	return frameType(payload[1])
}

func (c *cutStream) Write(b []byte) (int, error) {
	payload, err := p2p.ReadFrame(bytes.NewReader(b), len(b))
	if err == nil && frameTypeOf(payload) == c.write {
		c.Stream.Reset()
		return 0, network.ErrReset
	}
	return c.Stream.Write(b)
}

func (c *cutStream) Read(b []byte) (int, error) {
	if len(c.buf) == 0 {
		payload, err := p2p.ReadFrame(c.Stream, MaxLinkHistoryFrame)
		if err != nil {
			return 0, err
		}
		if frameTypeOf(payload) == c.read {
			c.Stream.Reset()
			return 0, network.ErrReset
		}
		c.buf = p2p.AppendFrame(nil, payload)
	}
	n := copy(b, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func flipChar(s string, i int) string {
	b := []byte(s)
	b[i] = 'a'
	if s[i] == 'a' {
		b[i] = 'b'
	}
	return string(b)
}

// rawLink opens a link stream from a fresh host to E's.
func rawLink(t *testing.T, e *linkE) network.Stream {
	nh := p2ptest.NewHost(t, nil)
	p2ptest.Connect(t, nh, e.h)
	s, err := nh.NewStream(context.Background(), e.h.ID(), LinkProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { s.Reset() })
	return s
}

// resetCode reads s to its end and returns the code the remote reset it with.
func resetCode(s network.Stream) (network.StreamErrorCode, error) {
	_, err := io.ReadAll(s)
	c, _ := p2p.CodeOf(err)
	return c, err
}

// TestLinkHostile: every hostile case of docs/DEVICES.md §1; each ends
// with a clear error, nothing handed over that should not be, and both
// sides able to go on.
func TestLinkHostile(t *testing.T) {
	lc := testLinkConfig()

	t.Run("garbled code refused before any dial", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		nh := &countingHost{Host: p2ptest.NewHost(t, nil)}
		var n linkN
		err := Join(context.Background(), nh, flipChar(p.Code().String(), 30), n.config(newScreens(), lc))
		if !errors.Is(err, ErrLinkCode) || nh.dials.Load() != 0 {
			t.Fatalf("garbled: %v after %d dials", err, nh.dials.Load())
		}
		if p.State() != LinkWaiting {
			t.Fatal("E's link changed")
		}
	})

	t.Run("expired code refused by N without dialling", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		nh := &countingHost{Host: p2ptest.NewHost(t, nil)}
		var n linkN
		cfg := n.config(newScreens(), lc)
		cfg.Now = func() time.Time { return time.Now().Add(DefaultLinkCodeTTL + time.Second) }
		err := Join(context.Background(), nh, p.Code().String(), cfg)
		if !errors.Is(err, ErrLinkExpired) || nh.dials.Load() != 0 {
			t.Fatalf("expired: %v after %d dials", err, nh.dials.Load())
		}
	})

	t.Run("expired code refused by E", func(t *testing.T) {
		var skew atomic.Int64
		cfg := lc
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		e := newLinkE(t, cfg)
		p := e.offer(t, newScreens())
		skew.Store(int64(DefaultLinkCodeTTL + time.Second)) // E's clock passes the expiry; N's does not
		var n linkN
		err := Join(context.Background(), p2ptest.NewHost(t, nil), p.Code().String(), n.config(newScreens(), lc))
		if !errors.Is(err, ErrLinkSpent) {
			t.Fatalf("join: %v", err)
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkExpired) {
			t.Fatalf("wait: %v", err)
		}
		if e.accounts.Load() != 0 || n.accounts.Load() != 0 {
			t.Fatal("something was handed over")
		}
	})

	t.Run("unknown code", func(t *testing.T) {
		e := newLinkE(t, lc)
		c, err := NewLinkCode(e.h.ID(), e.h.Addrs(), NewLinkSecret(), time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var n linkN
		err = Join(context.Background(), p2ptest.NewHost(t, nil), c.String(), n.config(newScreens(), lc))
		if !errors.Is(err, ErrLinkSpent) || !strings.Contains(err.Error(), "code expired or used: run devices link again") {
			t.Fatalf("unknown code: %v", err)
		}
	})

	t.Run("wrong proofs", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		wrong, err := NewLinkCode(e.h.ID(), e.h.Addrs(), NewLinkSecret(), p.Code().Expires)
		if err != nil {
			t.Fatal(err)
		}
		nh := p2ptest.NewHost(t, nil)
		var n linkN
		for i := range maxWrongProofs {
			err := Join(context.Background(), nh, wrong.String(), n.config(newScreens(), lc))
			if !errors.Is(err, ErrLinkWrongCode) {
				t.Fatalf("wrong proof %d: %v", i+1, err)
			}
			if want := map[bool]LinkState{true: LinkFailed, false: LinkWaiting}[i == maxWrongProofs-1]; p.State() != want {
				t.Fatalf("after wrong proof %d: %v, want %v", i+1, p.State(), want)
			}
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkWrongCode) {
			t.Fatalf("wait: %v", err)
		}
		err = Join(context.Background(), nh, p.Code().String(), n.config(newScreens(), lc))
		if !errors.Is(err, ErrLinkSpent) {
			t.Fatalf("the right code after three wrong ones: %v", err)
		}
		// Fewer than three leave the code usable.
		sc := newScreens()
		p = e.offer(t, sc)
		wrong.Secret = NewLinkSecret()
		if err := Join(context.Background(), nh, wrong.String(), n.config(newScreens(), lc)); !errors.Is(err, ErrLinkWrongCode) {
			t.Fatal(err)
		}
		if err := Join(context.Background(), nh, p.Code().String(), n.config(sc, lc)); err != nil {
			t.Fatalf("the right code after one wrong one: %v", err)
		}
	})

	t.Run("a second device while one links", func(t *testing.T) {
		e := newLinkE(t, lc)
		sc := newScreens() // N's screen never shows: E waits at the SAS
		p := e.offer(t, sc)
		s := rawLink(t, e)
		p2p.WriteFrame(s, linkFrame{typ: frameHello, a: helloProof(p.Code().Secret, e.h.ID(), s.Conn().LocalPeer()), b: make([]byte, 32)}.marshal())
		if _, err := p2p.ReadFrame(s, MaxLinkFrame); err != nil {
			t.Fatal(err)
		}
		var n linkN
		err := Join(context.Background(), p2ptest.NewHost(t, nil), p.Code().String(), n.config(newScreens(), lc))
		if !errors.Is(err, ErrLinkSpent) {
			t.Fatalf("second device: %v", err)
		}
		if p.State() != LinkSAS {
			t.Fatalf("the first link: %v", p.State())
		}
	})

	t.Run("MITM relay", func(t *testing.T) {
		e := newLinkE(t, lc)
		sc := newScreens() // the person holds N and E
		p := e.offer(t, sc)
		// M shows N a code of its own (an altered code: M's peer id) and
		// runs N's side against E with E's code (it knows the secret),
		// confirming every SAS it is shown.
		m := newLinkE(t, lc)
		yes := func(context.Context, string) (bool, error) { return true, nil }
		pm, err := m.l.Offer(LinkOffer{ConfirmSAS: yes,
			Account: func(context.Context, peer.ID) ([]byte, error) { return []byte("x"), nil },
			Linked:  func(context.Context, peer.ID, []byte) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		var mn linkN
		mcfg := mn.config(newScreens(), lc)
		mcfg.ConfirmSAS = yes
		mErr := make(chan error, 1)
		go func() { mErr <- Join(context.Background(), m.h, p.Code().String(), mcfg) }()
		var n linkN
		err = Join(context.Background(), p2ptest.NewHost(t, nil), pm.Code().String(), n.config(sc, lc))
		if !errors.Is(err, ErrLinkDeclined) {
			t.Fatalf("N: %v", err)
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkDeclined) {
			t.Fatalf("E: %v", err)
		}
		if err := <-mErr; !errors.Is(err, ErrLinkDeclined) {
			t.Fatalf("M's leg to E: %v", err)
		}
		sasE, sasN := sc.shown()
		if sasE == "" || sasN == "" || sasE == sasN {
			t.Fatalf("SAS on E %q, on N %q", sasE, sasN)
		}
		if e.accounts.Load() != 0 || mn.accounts.Load() != 0 || n.accounts.Load() != 0 {
			t.Fatal("an account was handed over")
		}
	})

	for _, who := range []string{"E", "N"} {
		t.Run("declined on "+who, func(t *testing.T) {
			e := newLinkE(t, lc)
			sc := newScreens()
			no := false
			if who == "E" {
				sc.answerE = &no
			} else {
				sc.answerN = &no
			}
			p := e.offer(t, sc)
			var n linkN
			err := Join(context.Background(), p2ptest.NewHost(t, nil), p.Code().String(), n.config(sc, lc))
			if !errors.Is(err, ErrLinkDeclined) {
				t.Fatalf("N: %v", err)
			}
			if _, err := wait(t, p); !errors.Is(err, ErrLinkDeclined) {
				t.Fatalf("E: %v", err)
			}
			if sasE, sasN := sc.shown(); sasE != sasN {
				t.Fatalf("SAS on E %q, on N %q", sasE, sasN)
			}
			if e.accounts.Load() != 0 || n.accounts.Load() != 0 {
				t.Fatal("an account was handed over")
			}
		})
	}

	t.Run("E refuses N's Linked", func(t *testing.T) {
		e := newLinkE(t, lc)
		e.refuseN = errors.New("cert not by the account")
		sc := newScreens()
		p := e.offer(t, sc)
		var n linkN
		err := Join(context.Background(), p2ptest.NewHost(t, nil), p.Code().String(), n.config(sc, lc))
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != RefusedLinked || !strings.Contains(err.Error(), "cert not by the account") {
			t.Fatalf("N: %v", err)
		}
		if _, err := wait(t, p); err == nil || !strings.Contains(err.Error(), "cert not by the account") {
			t.Fatalf("E: %v", err)
		}
	})

	// A cut at each step: N's stream is reset instead of sending or
	// receiving the step's frame. Before E checked the proof (step 1) E's
	// link still waits and the code works; from step 2 on the code is
	// spent and E's link failed, cleanly: the next Offer works. N got the
	// account only if step 5 completed; E accepted N only if step 6 did.
	for _, cut := range []struct {
		name        string
		write, read frameType
		nGot, eGot  bool
	}{
		{"1 Hello", frameHello, 0, false, false},
		{"2 Offer", 0, frameOffer, false, false},
		{"3 Reveal", frameReveal, 0, false, false},
		{"4 Confirm from N", frameConfirm, 0, false, false},
		{"4 Confirm from E", 0, frameConfirm, false, false},
		{"5 Account", 0, frameAccount, false, false},
		{"6 Linked", frameLinked, 0, true, false},
		{"7 History", 0, frameHistory, true, true},
		{"7 Done", 0, frameDone, true, true},
	} {
		t.Run("cut at "+cut.name, func(t *testing.T) {
			e := newLinkE(t, lc)
			e.history = [][]byte{[]byte("chunk")}
			sc := newScreens()
			p := e.offer(t, sc)
			nh := &countingHost{Host: p2ptest.NewHost(t, nil), wrap: func(s network.Stream) network.Stream {
				return &cutStream{Stream: s, write: cut.write, read: cut.read}
			}}
			var n linkN
			err := Join(context.Background(), nh, p.Code().String(), n.config(sc, lc))
			if err == nil {
				t.Fatal("N linked through a cut")
			}
			if got := n.accounts.Load() == 1; got != cut.nGot {
				t.Fatalf("N got the account: %v, want %v", got, cut.nGot)
			}
			if cut.write == frameHello {
				if p.State() != LinkWaiting {
					t.Fatalf("E's link: %v", p.State())
				}
				if err := Join(context.Background(), nh.Host, p.Code().String(), n.config(sc, lc)); err != nil {
					t.Fatalf("the code after a cut before the proof: %v", err)
				}
				return
			}
			if _, err := wait(t, p); err == nil {
				t.Fatal("E linked through a cut")
			}
			if got := e.linked.Load() == 1; got != cut.eGot {
				t.Fatalf("E accepted N: %v, want %v", got, cut.eGot)
			}
			if err := Join(context.Background(), nh.Host, p.Code().String(), n.config(newScreens(), lc)); !errors.Is(err, ErrLinkSpent) {
				t.Fatalf("the code after the cut: %v", err)
			}
			e.offer(t, newScreens()).Cancel()
		})
	}

	t.Run("oversize frame", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		s := rawLink(t, e)
		s.Write(p2p.AppendFrame(nil, make([]byte, MaxLinkFrame+1)))
		if c, err := resetCode(s); c != p2p.CodeTooLarge {
			t.Fatalf("reset with %v (%v), want too-large", p2p.CodeName(c), err)
		}
		if p.State() != LinkWaiting {
			t.Fatal("E's link changed")
		}
	})

	t.Run("wrong frame type", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		s := rawLink(t, e)
		p2p.WriteFrame(s, linkFrame{typ: frameReveal, a: make([]byte, 32), b: make([]byte, 16)}.marshal())
		if c, err := resetCode(s); c != p2p.CodeBadRequest {
			t.Fatalf("Reveal first: reset with %v (%v), want bad-request", p2p.CodeName(c), err)
		}
		// Mid-link: a second Hello where the Reveal belongs.
		s = rawLink(t, e)
		hello := linkFrame{typ: frameHello, a: helloProof(p.Code().Secret, e.h.ID(), s.Conn().LocalPeer()), b: make([]byte, 32)}
		p2p.WriteFrame(s, hello.marshal())
		if b, err := p2p.ReadFrame(s, MaxLinkFrame); err != nil || frameTypeOf(b) != frameOffer {
			t.Fatalf("offer: %x, %v", b, err)
		}
		p2p.WriteFrame(s, hello.marshal())
		if c, err := resetCode(s); c != p2p.CodeBadRequest {
			t.Fatalf("Hello for Reveal: reset with %v (%v), want bad-request", p2p.CodeName(c), err)
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkFrame) {
			t.Fatalf("E: %v", err)
		}
	})

	t.Run("wrong Confirm", func(t *testing.T) {
		e := newLinkE(t, lc)
		sc := newScreens()
		yes := true
		sc.answerE = &yes
		sc.n <- "the person says yes"
		p := e.offer(t, sc)
		s := rawLink(t, e)
		eN := fixedX25519(t, 9)
		nN := make([]byte, 16)
		p2p.WriteFrame(s, linkFrame{typ: frameHello, a: helloProof(p.Code().Secret, e.h.ID(), s.Conn().LocalPeer()), b: linkCommit(eN.PublicKey().Bytes(), nN)}.marshal())
		if _, err := p2p.ReadFrame(s, MaxLinkFrame); err != nil {
			t.Fatal(err)
		}
		p2p.WriteFrame(s, linkFrame{typ: frameReveal, a: eN.PublicKey().Bytes(), b: nN}.marshal())
		p2p.WriteFrame(s, linkFrame{typ: frameConfirm, a: make([]byte, 32)}.marshal())
		if c, err := resetCode(s); c != p2p.CodeBadRequest { // after E's own Confirm, which the reset may discard
			t.Fatalf("reset with %v (%v), want bad-request", p2p.CodeName(c), err)
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkMismatch) || e.accounts.Load() != 0 {
			t.Fatalf("E: %v, accounts handed over: %d", err, e.accounts.Load())
		}
	})

	t.Run("commitment mismatch", func(t *testing.T) {
		e := newLinkE(t, lc)
		p := e.offer(t, newScreens())
		s := rawLink(t, e)
		p2p.WriteFrame(s, linkFrame{typ: frameHello, a: helloProof(p.Code().Secret, e.h.ID(), s.Conn().LocalPeer()), b: make([]byte, 32)}.marshal())
		if _, err := p2p.ReadFrame(s, MaxLinkFrame); err != nil {
			t.Fatal(err)
		}
		p2p.WriteFrame(s, linkFrame{typ: frameReveal, a: fixedX25519(t, 9).PublicKey().Bytes(), b: make([]byte, 16)}.marshal())
		if c, err := resetCode(s); c != p2p.CodeBadRequest {
			t.Fatalf("reset with %v (%v), want bad-request", p2p.CodeName(c), err)
		}
		if _, err := wait(t, p); !errors.Is(err, ErrLinkMismatch) {
			t.Fatalf("E: %v", err)
		}
	})
}
