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
)

var codeNames = map[network.StreamErrorCode]string{
	CodeBadRequest:  "bad-request",
	CodeTooLarge:    "too-large",
	CodeRateLimited: "rate-limited",
	CodeOverloaded:  "overloaded",
	CodeTimeout:     "timeout",
	CodeInternal:    "internal",
	CodeClosing:     "closing",
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
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
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
	// MaxConcurrent caps the streams handled at once across all peers;
	// 0 = 64. Streams beyond it are reset with CodeOverloaded.
	MaxConcurrent int
	// Logger receives one Debug line per refused stream; nil discards.
	Logger *slog.Logger
}

// StreamHandler serves one stream. ctx ends when the stream's deadline
// passes or the Server closes (the stream is then reset). Returning nil
// closes the stream; returning an error resets it with the error's
// CodeError code, or CodeBadRequest.
type StreamHandler func(ctx context.Context, s network.Stream) error

// RequestHandler answers one request from peer with a response payload;
// an error resets the stream as for StreamHandler.
type RequestHandler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// Server is a registered stream handler. Close unregisters it.
type Server struct {
	h       host.Host
	proto   protocol.ID
	cfg     HandlerConfig
	log     *slog.Logger
	fn      StreamHandler
	limiter *peerLimiter
	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup
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

// HandleStream registers fn for proto with a per-stream deadline, the
// per-peer rate limit, the concurrency cap and panic recovery.
func HandleStream(h host.Host, proto protocol.ID, cfg HandlerConfig, fn StreamHandler) *Server {
	cfg.Timeout = or(cfg.Timeout, DefaultTimeout)
	cfg.MaxConcurrent = or(cfg.MaxConcurrent, 64)
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
		h: h, proto: proto, cfg: cfg, fn: fn,
		log:     log.With("proto", string(proto)),
		limiter: newPeerLimiter(cfg.Rate, cfg.Burst),
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		ctx:     ctx, cancel: cancel,
	}
	h.SetStreamHandler(proto, srv.serve)
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
	srv.h.RemoveStreamHandler(srv.proto)
	srv.cancel()
	srv.wg.Wait()
	return nil
}

func (srv *Server) refuse(s network.Stream, code network.StreamErrorCode, why string) {
	s.ResetWithError(code)
	srv.log.Debug("stream refused", "peer", s.Conn().RemotePeer(), "code", CodeName(code), "why", why)
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
	if !srv.limiter.allow(from, time.Now()) {
		srv.refuse(s, CodeRateLimited, "per-peer rate exceeded")
		return
	}
	select {
	case srv.sem <- struct{}{}:
		defer func() { <-srv.sem }()
	default:
		srv.refuse(s, CodeOverloaded, "too many streams in flight")
		return
	}
	deadline := time.Now().Add(srv.cfg.Timeout)
	if err := s.SetDeadline(deadline); err != nil {
		srv.refuse(s, CodeInternal, "set deadline: "+err.Error())
		return
	}
	ctx, cancel := context.WithDeadline(srv.ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		code := CodeTimeout
		if srv.ctx.Err() != nil {
			code = CodeClosing
		}
		s.ResetWithError(code)
	})
	defer stop()

	err := srv.call(ctx, s)
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
