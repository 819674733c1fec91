package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// Stream reset codes a handler sends; see the package doc.
const (
	CodeBadRequest  network.StreamErrorCode = 0x100
	CodeTooLarge    network.StreamErrorCode = 0x101
	CodeRateLimited network.StreamErrorCode = 0x102
	CodeOverloaded  network.StreamErrorCode = 0x103
	CodeTimeout     network.StreamErrorCode = 0x104
	CodeInternal    network.StreamErrorCode = 0x105
	CodeClosing     network.StreamErrorCode = 0x106
	CodeRefused     network.StreamErrorCode = 0x107 // the handler's policy refuses this peer or sender
)

var codeNames = map[network.StreamErrorCode]string{
	CodeBadRequest:  "bad-request",
	CodeTooLarge:    "too-large",
	CodeRateLimited: "rate-limited",
	CodeOverloaded:  "overloaded",
	CodeTimeout:     "timeout",
	CodeInternal:    "internal",
	CodeClosing:     "closing",
	CodeRefused:     "refused",
}

// CodeName returns the short name of a reset code ("code 0x..." if unknown).
func CodeName(c network.StreamErrorCode) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %#x", uint32(c))
}

// CodeOf returns the reset code the remote side sent, if err is a stream
// reset by the remote with a code.
func CodeOf(err error) (network.StreamErrorCode, bool) {
	var se *network.StreamError
	if errors.As(err, &se) && se.Remote {
		return se.ErrorCode, true
	}
	return 0, false
}

// CodeError carries the reset code a handler wants the peer to see.
type CodeError struct {
	Code network.StreamErrorCode
	Err  error
}

func (e *CodeError) Error() string { return CodeName(e.Code) + ": " + e.Err.Error() }
func (e *CodeError) Unwrap() error { return e.Err }

// WithCode wraps err so a handler resets the stream with code.
func WithCode(code network.StreamErrorCode, err error) error {
	return &CodeError{Code: code, Err: err}
}

// DefaultTimeout bounds a stream exchange whose context has no deadline,
// and a handled stream whose HandlerConfig.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Dial opens a stream to p for proto. With allowLimited the stream may run
// over a limited (relayed) connection; without it libp2p opens or waits
// for a direct one.
func Dial(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, allowLimited bool) (network.Stream, error) {
	if allowLimited {
		ctx = network.WithAllowLimitedConn(ctx, string(proto))
	}
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", proto, p, err)
	}
	return s, nil
}

// Exchange sends req as one frame on s, half-closes, reads one response
// frame of at most max bytes and closes s. The stream's deadline is ctx's
// deadline or DefaultTimeout from now, whichever is sooner; when ctx ends
// the stream is reset, aborting blocked I/O. On error s is reset; a passed
// deadline satisfies errors.Is(err, context.DeadlineExceeded). A reset
// from the remote is returned as is: CodeOf reports its code.
func Exchange(ctx context.Context, s network.Stream, req []byte, max int) ([]byte, error) {
	deadline := time.Now().Add(DefaultTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.SetDeadline(deadline); err != nil {
		s.Reset()
		return nil, fmt.Errorf("exchange: set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	resp, err := exchange(s, req, max)
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exchange %s: %w", s.Protocol(), ctx.Err())
		}
		if isTimeout(err) && !errors.Is(err, context.DeadlineExceeded) {
			// The stream deadline (ctx's or DefaultTimeout) fired first.
			return nil, fmt.Errorf("exchange %s: %w: %w", s.Protocol(), context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("exchange %s: %w", s.Protocol(), err)
	}
	return resp, nil
}

func exchange(s network.Stream, req []byte, max int) ([]byte, error) {
	if err := WriteFrame(s, req); err != nil {
		return nil, err
	}
	// A handler that has read its whole request may close its side before
	// our FIN reaches it (QUIC then cancels our send side), so a failed
	// half-close is no failure: the response, or the reason there is none
	// (a reset code, a deadline), comes from the read.
	_ = s.CloseWrite()
	resp, err := ReadFrame(s, max)
	if err == io.EOF {
		return nil, errors.New("stream closed without a response")
	}
	if err != nil {
		return nil, err
	}
	return resp, s.Close()
}

// Request opens a stream to p for proto (see Dial) and runs Exchange.
func Request(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, allowLimited bool, req []byte, max int) ([]byte, error) {
	s, err := Dial(ctx, h, p, proto, allowLimited)
	if err != nil {
		return nil, err
	}
	return Exchange(ctx, s, req, max)
}

// HandlerConfig configures Handle and HandleStream. Zero values mean the
// default in each field's comment.
type HandlerConfig struct {
	// Timeout is the deadline of each stream from its arrival; 0 = 30 s.
	Timeout time.Duration
	// MaxRequest caps the request frame Handle reads; 0 = 64 KiB.
	// (HandleStream passes it to the handler's own reads.)
	MaxRequest int
	// Rate is each peer's sustained streams per second; 0 = 10, rate.Inf
	// disables the limit. Burst is the bucket size; 0 = 2×Rate (at least 1).
	Rate  rate.Limit
	Burst int
	// MaxConcurrent caps the streams handled at once across all peers
	// (with Known set: across known peers); 0 = 64. Streams beyond it are
	// reset with CodeOverloaded.
	MaxConcurrent int
	// Versions lists further protocol ids (other versions of proto) served
	// by the same handler, sharing its pools and limits; the handler tells
	// them apart with Stream.Protocol.
	Versions []protocol.ID
	// Known, when set, sorts each stream by its remote peer on arrival: a
	// known peer's stream takes one of MaxConcurrent slots, any other
	// peer's one of MaxUnknown, a separate pool, so unknown peers never
	// hold a slot a known peer needs. nil: one pool of MaxConcurrent for
	// all. Known must be fast and safe for concurrent use.
	Known func(peer.ID) bool
	// MaxUnknown caps unknown peers' streams at once (with Known set);
	// 0 = MaxConcurrent/4 (at least 1). When it is full, a new unknown
	// stream takes the place of the one whose peer has sent nothing for
	// the longest, which is reset with CodeOverloaded: idle streams can't
	// lock others out.
	MaxUnknown int
	// UnknownTimeout is an unknown peer's stream deadline from its arrival
	// (with Known set); 0 = Timeout. Promote lifts it to Timeout.
	UnknownTimeout time.Duration
	// Logger receives one Debug line per refused stream; nil discards.
	Logger *slog.Logger
}

// StreamHandler serves one stream. ctx ends when the stream's deadline
// passes, the Server closes or (an unknown peer's stream) the stream gives
// way to a newer one; the stream is then reset. Returning nil closes the
// stream; returning an error resets it with the error's CodeError code, or
// CodeBadRequest.
type StreamHandler func(ctx context.Context, s network.Stream) error

// RequestHandler answers one request from peer with a response payload;
// an error resets the stream as for StreamHandler.
type RequestHandler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// Server is a registered stream handler. Close unregisters it.
type Server struct {
	h       host.Host
	protos  []protocol.ID
	cfg     HandlerConfig
	log     *slog.Logger
	fn      StreamHandler
	limiter *peerLimiter
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup

	// Lock order: mu and slotMu are never held together.
	slotMu  sync.Mutex
	known   int            // streams in the known (or only) pool; guarded by slotMu
	unknown map[*slot]bool // streams in the unknown pool; guarded by slotMu
}

// slot is a handled stream's place in one of the Server's pools.
type slot struct {
	srv     *Server
	s       network.Stream
	arrived time.Time
	cancel  context.CancelCauseFunc
	timer   *time.Timer  // an unknown stream's deadline; nil for a known one
	last    atomic.Int64 // unix nanoseconds of the last read that returned data, or the arrival

	// Guarded by Server.slotMu.
	isKnown bool
	gone    bool // evicted: its place is already free
}

// Causes a handler's context ends with besides its deadline.
var (
	errEvicted        = errors.New("gave way to a newer stream from an unknown peer")
	errUnknownTimeout = errors.New("an unknown peer's stream deadline passed")
)

type slotKey struct{}

// trackedStream records when an unknown peer's stream last delivered data,
// for the choice of which stream gives way when the unknown pool is full.
type trackedStream struct {
	network.Stream
	sl *slot
}

func (t trackedStream) Read(p []byte) (int, error) {
	n, err := t.Stream.Read(p)
	if n > 0 {
		t.sl.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// IsKnown reports whether the stream whose handler got ctx is in the known
// pool: its peer was known on arrival, or Promote moved it. Without
// HandlerConfig.Known every stream is known.
func IsKnown(ctx context.Context) bool {
	sl, _ := ctx.Value(slotKey{}).(*slot)
	if sl == nil {
		return false
	}
	srv := sl.srv
	srv.slotMu.Lock()
	defer srv.slotMu.Unlock()
	return sl.isKnown
}

// Promote moves the stream whose handler got ctx from the unknown pool to
// the known one, once the handler has authenticated its peer as one that
// HandlerConfig.Known would accept now: its deadline becomes
// HandlerConfig.Timeout from its arrival, and the stream's read and write
// deadlines are reset to it, so call Promote from the handler between its
// reads and writes. It reports whether the stream is in the known pool; it
// stays where it is when the known pool is full or its deadline has passed.
func Promote(ctx context.Context) bool {
	sl, _ := ctx.Value(slotKey{}).(*slot)
	if sl == nil {
		return false
	}
	srv := sl.srv
	srv.slotMu.Lock()
	if sl.isKnown {
		srv.slotMu.Unlock()
		return true
	}
	if sl.gone || srv.known >= srv.cfg.MaxConcurrent || !sl.timer.Stop() {
		srv.slotMu.Unlock()
		return false
	}
	delete(srv.unknown, sl)
	srv.known++
	sl.isKnown = true
	srv.slotMu.Unlock()
	sl.s.SetDeadline(sl.arrived.Add(srv.cfg.Timeout))
	return true
}

// Handle registers a request/response handler for proto: each stream
// carries one request frame (at most MaxRequest bytes) and gets one
// response frame.
func Handle(h host.Host, proto protocol.ID, cfg HandlerConfig, fn RequestHandler) *Server {
	maxReq := or(cfg.MaxRequest, 64<<10)
	return HandleStream(h, proto, cfg, func(ctx context.Context, s network.Stream) error {
		req, err := ReadFrame(s, maxReq)
		if err != nil {
			return classifyReadErr(err)
		}
		resp, err := fn(ctx, s.Conn().RemotePeer(), req)
		if err != nil {
			return err
		}
		return WriteFrame(s, resp)
	})
}

// classifyReadErr maps a failed frame read to the reset code the peer sees.
func classifyReadErr(err error) error {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return WithCode(CodeTooLarge, err)
	case errors.Is(err, ErrBadVarint), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return WithCode(CodeBadRequest, err)
	case isTimeout(err):
		return WithCode(CodeTimeout, err)
	}
	return err
}

// isTimeout reports whether err is a passed deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// HandleStream registers fn for proto (and cfg.Versions) with a per-stream
// deadline, the per-peer rate limit, the concurrency caps and panic
// recovery.
func HandleStream(h host.Host, proto protocol.ID, cfg HandlerConfig, fn StreamHandler) *Server {
	cfg.Timeout = or(cfg.Timeout, DefaultTimeout)
	cfg.MaxConcurrent = or(cfg.MaxConcurrent, 64)
	cfg.MaxUnknown = or(cfg.MaxUnknown, max(1, cfg.MaxConcurrent/4))
	cfg.UnknownTimeout = min(or(cfg.UnknownTimeout, cfg.Timeout), cfg.Timeout)
	cfg.Rate = or(cfg.Rate, 10)
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(2*cfg.Rate))
		if cfg.Rate == rate.Inf {
			cfg.Burst = 1
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{
		h: h, protos: append([]protocol.ID{proto}, cfg.Versions...), cfg: cfg, fn: fn,
		log:     log.With("proto", string(proto)),
		limiter: newPeerLimiter(cfg.Rate, cfg.Burst),
		unknown: map[*slot]bool{},
		ctx:     ctx, cancel: cancel,
	}
	for _, p := range srv.protos {
		h.SetStreamHandler(p, srv.serve)
	}
	return srv
}

// Close unregisters the handler, resets the streams in flight and waits
// for their handlers to return. It is idempotent.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return nil
	}
	srv.closed = true
	srv.mu.Unlock()
	for _, p := range srv.protos {
		srv.h.RemoveStreamHandler(p)
	}
	srv.cancel()
	srv.wg.Wait()
	return nil
}

func (srv *Server) refuse(s network.Stream, code network.StreamErrorCode, why string) {
	s.ResetWithError(code)
	srv.log.Debug("stream refused", "peer", s.Conn().RemotePeer(), "code", CodeName(code), "why", why)
}

// admit gives sl a place in its pool. A full unknown pool makes room by
// evicting the stream whose peer has sent nothing for the longest.
func (srv *Server) admit(sl *slot) bool {
	srv.slotMu.Lock()
	defer srv.slotMu.Unlock()
	if sl.isKnown {
		if srv.known >= srv.cfg.MaxConcurrent {
			return false
		}
		srv.known++
		return true
	}
	if len(srv.unknown) >= srv.cfg.MaxUnknown {
		var victim *slot
		for o := range srv.unknown {
			if victim == nil || o.last.Load() < victim.last.Load() {
				victim = o
			}
		}
		delete(srv.unknown, victim)
		victim.gone = true
		victim.cancel(errEvicted) // its AfterFunc resets the stream
	}
	srv.unknown[sl] = true
	return true
}

func (srv *Server) release(sl *slot) {
	srv.slotMu.Lock()
	defer srv.slotMu.Unlock()
	switch {
	case sl.gone:
	case sl.isKnown:
		srv.known--
	default:
		delete(srv.unknown, sl)
	}
}

func (srv *Server) serve(s network.Stream) {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		s.ResetWithError(CodeClosing)
		return
	}
	srv.wg.Add(1)
	srv.mu.Unlock()
	defer srv.wg.Done()

	from := s.Conn().RemotePeer()
	now := time.Now()
	if !srv.limiter.allow(from, now) {
		srv.refuse(s, CodeRateLimited, "per-peer rate exceeded")
		return
	}
	sl := &slot{srv: srv, s: s, arrived: now, isKnown: srv.cfg.Known == nil || srv.cfg.Known(from)}
	sl.last.Store(now.UnixNano())
	deadline := now.Add(srv.cfg.Timeout)
	ctx, cancel := context.WithDeadline(srv.ctx, deadline)
	defer cancel()
	ctx, sl.cancel = context.WithCancelCause(ctx)
	defer sl.cancel(nil)
	if !srv.admit(sl) {
		srv.refuse(s, CodeOverloaded, "too many streams in flight")
		return
	}
	defer srv.release(sl)
	var hs network.Stream = s
	if !sl.isKnown {
		deadline = now.Add(srv.cfg.UnknownTimeout)
		sl.timer = time.AfterFunc(srv.cfg.UnknownTimeout, func() { sl.cancel(errUnknownTimeout) })
		defer sl.timer.Stop()
		hs = trackedStream{Stream: s, sl: sl}
	}
	if err := s.SetDeadline(deadline); err != nil {
		srv.refuse(s, CodeInternal, "set deadline: "+err.Error())
		return
	}
	ctx = context.WithValue(ctx, slotKey{}, sl)
	stop := context.AfterFunc(ctx, func() {
		code := CodeTimeout
		switch {
		case srv.ctx.Err() != nil:
			code = CodeClosing
		case context.Cause(ctx) == errEvicted:
			code = CodeOverloaded
		}
		s.ResetWithError(code)
	})
	defer stop()

	err := srv.call(ctx, hs)
	if err == nil {
		if err = s.Close(); err == nil {
			return
		}
	}
	code := CodeBadRequest
	var ce *CodeError
	switch {
	case errors.As(err, &ce):
		code = ce.Code
	case srv.ctx.Err() != nil:
		code = CodeClosing
	case context.Cause(ctx) == errEvicted:
		code = CodeOverloaded
	case isTimeout(err), ctx.Err() != nil:
		code = CodeTimeout
	}
	srv.refuse(s, code, err.Error())
}

// call runs the handler, turning a panic into CodeInternal.
func (srv *Server) call(ctx context.Context, s network.Stream) (err error) {
	defer func() {
		if r := recover(); r != nil {
			srv.log.Error("bug: stream handler panicked", "panic", r)
			err = WithCode(CodeInternal, fmt.Errorf("handler panic"))
		}
	}()
	return srv.fn(ctx, s)
}

// IdleReader reads s, each read with a deadline idle from its start: a
// bulk transfer may take long, but not stall.
func IdleReader(s network.Stream, idle time.Duration) io.Reader { return idleReader{s, idle} }

// IdleWriter writes s, each write with a deadline idle from its start.
func IdleWriter(s network.Stream, idle time.Duration) io.Writer { return idleWriter{s, idle} }

// ContextReader reads r until ctx ends (a server closing).
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type idleReader struct {
	s    network.Stream
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	r.s.SetReadDeadline(time.Now().Add(r.idle))
	return r.s.Read(p)
}

type idleWriter struct {
	s    network.Stream
	idle time.Duration
}

func (w idleWriter) Write(p []byte) (int, error) {
	w.s.SetWriteDeadline(time.Now().Add(w.idle))
	return w.s.Write(p)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
