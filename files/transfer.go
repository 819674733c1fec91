package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/p2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// Protocol is the file transfer protocol: the fetcher sends one request
// frame, the holder answers with one response frame and, when it has the
// file, the sealed bytes from the offset asked for to the end.
//
//	Request
//	field 1  hash    bytes   32, the sealed file's SHA-256
//	field 2  offset  varint  where to start (resuming a download); absent: 0
//
//	Response
//	field 1  status  varint  1 ok, 2 not found (or not for this peer), 3 bad offset
//	field 2  size    varint  the whole sealed size, with ok
//
// Frames are p2p frames (uvarint length, payload in the canonical protobuf
// form of internal/wire).
const Protocol = "/callsign/file/1.0.0"

const (
	statusOK       = 1
	statusNotFound = 2
	statusBadRange = 3

	maxRequest  = 64
	maxResponse = 32
)

// copyBuffer is the buffer a transfer copies through: larger than
// io.Copy's 32 KiB, for fewer writes to the stream and the disk.
const copyBuffer = 256 << 10

// IdleTimeout is how long a transfer may go without a byte moving before
// either side gives up (the fetcher keeps what arrived and resumes later).
const IdleTimeout = 30 * time.Second

// Config configures a Service.
type Config struct {
	Host  host.Host
	Store *Store
	// Allow reports whether a peer may fetch a file; nil allows anyone who
	// names it (its hash is a 256-bit capability only the recipients of
	// the message that names it learn).
	Allow func(peer.ID, Hash) bool
	// AllowLimited lets fetches use relayed (limited) connections, whose
	// relays cut bulk transfers short; by default a fetch needs a direct
	// connection.
	AllowLimited bool
	// Protocol is the protocol id files are served on; "" = Protocol. A
	// mailbox serves the files parked for its members on its own.
	Protocol protocol.ID
	Logger   *slog.Logger
}

// Service serves the store's files to peers and fetches files from them.
type Service struct {
	cfg Config
	srv *p2p.Server
	log *slog.Logger

	mu       sync.Mutex
	fetching map[Hash]*fetchLock // one download per file at a time
}

type fetchLock struct {
	sync.Mutex
	users int // guarded by Service.mu
}

// NewService starts serving cfg.Store on cfg.Host. Close stops it.
func NewService(cfg Config) *Service {
	s := &Service{cfg: cfg, fetching: map[Hash]*fetchLock{}, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Protocol == "" {
		s.cfg.Protocol = Protocol
	}
	s.srv = p2p.HandleStream(cfg.Host, s.cfg.Protocol, p2p.HandlerConfig{
		// The whole transfer's deadline: 100 MiB at 1 Mbit/s is 14
		// minutes; IdleTimeout catches a stalled one much sooner.
		Timeout:       time.Hour,
		MaxRequest:    maxRequest,
		Rate:          rate.Limit(4),
		Burst:         8,
		MaxConcurrent: 16,
		Logger:        cfg.Logger,
	}, s.serve)
	return s
}

// Close stops serving and waits for the transfers in progress to end.
func (s *Service) Close() error { return s.srv.Close() }

func marshalRequest(h Hash, offset int64) []byte {
	var e wire.Encoder
	e.Bytes(1, h[:])
	e.Uint(2, uint64(offset))
	return e.B
}

func unmarshalRequest(b []byte) (Hash, int64, error) {
	var h Hash
	d := wire.NewDecoder(b, errBadRequest)
	copy(h[:], d.Fixed(1, len(h)))
	off := int64(d.Uint(2, MaxLimit*2))
	return h, off, d.End()
}

var errBadRequest = errors.New("bad file request")

func marshalResponse(status int, size int64) []byte {
	var e wire.Encoder
	e.Uint(1, uint64(status))
	e.Uint(2, uint64(size))
	return e.B
}

func unmarshalResponse(b []byte) (int, int64, error) {
	d := wire.NewDecoder(b, ErrCorrupt)
	st := int(d.Uint(1, statusBadRange))
	size := int64(d.Uint(2, uint64(SealedSize(MaxLimit))))
	if err := d.End(); err != nil {
		return 0, 0, err
	}
	if st == 0 || (st == statusOK) != (size > 0) {
		return 0, 0, fmt.Errorf("%w: response status %d with size %d", ErrCorrupt, st, size)
	}
	return st, size, nil
}

func (s *Service) serve(ctx context.Context, st network.Stream) error {
	st.SetReadDeadline(time.Now().Add(IdleTimeout))
	req, err := p2p.ReadFrame(st, maxRequest)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	h, off, err := unmarshalRequest(req)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	w := p2p.IdleWriter(st, IdleTimeout)
	if s.cfg.Allow != nil && !s.cfg.Allow(st.Conn().RemotePeer(), h) {
		return p2p.WriteFrame(w, marshalResponse(statusNotFound, 0))
	}
	f, size, err := s.cfg.Store.sealedFile(h)
	if errors.Is(err, ErrNotFound) {
		return p2p.WriteFrame(w, marshalResponse(statusNotFound, 0))
	}
	if err != nil {
		return p2p.WithCode(p2p.CodeInternal, err)
	}
	defer f.Close()
	if off > size {
		return p2p.WriteFrame(w, marshalResponse(statusBadRange, 0))
	}
	if err := p2p.WriteFrame(w, marshalResponse(statusOK, size)); err != nil {
		return err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return p2p.WithCode(p2p.CodeInternal, err)
	}
	if _, err := io.CopyBuffer(w, io.LimitReader(p2p.ContextReader(ctx, f), size-off), make([]byte, copyBuffer)); err != nil {
		return p2p.WithCode(p2p.CodeTimeout, err)
	}
	return nil
}

// Fetch downloads the file ref names from peer p into the store, resuming
// a download an earlier Fetch left off. The file appears in the store only
// whole and matching ref.Hash; a file that does not match is deleted and
// Fetch fails with ErrHashMismatch, one over the store's limit with
// ErrTooLarge before a byte is fetched. Any other failure keeps what
// arrived for the next Fetch. progress, when not nil, is called as bytes
// arrive with the sealed bytes held and the whole.
func (s *Service) Fetch(ctx context.Context, p peer.ID, ref Ref, progress func(have, total int64)) error {
	return s.FetchFrom(ctx, p, Protocol, ref, progress)
}

// FetchFrom is Fetch from a peer that serves files on another protocol
// id, as a mailbox serves the files parked for its members.
func (s *Service) FetchFrom(ctx context.Context, p peer.ID, proto protocol.ID, ref Ref, progress func(have, total int64)) error {
	store := s.cfg.Store
	if ref.Size > store.limit {
		return fmt.Errorf("%w: %d bytes, this node takes at most %d", ErrTooLarge, ref.Size, store.limit)
	}
	defer s.lock(ref.Hash)()
	if store.Has(ref.Hash) {
		return nil
	}
	total := SealedSize(ref.Size)
	in, err := store.Begin(ref.Hash, total)
	if err != nil {
		return err
	}
	defer in.Close()
	mismatch := func(why string) error {
		in.Discard()
		return fmt.Errorf("%w: %s", ErrHashMismatch, why)
	}
	if in.Have() < total {
		st, err := p2p.Dial(ctx, s.cfg.Host, p, proto, s.cfg.AllowLimited)
		if err != nil {
			return fmt.Errorf("fetch %v: %w", ref.Hash, err)
		}
		defer st.Reset()
		stop := context.AfterFunc(ctx, func() { st.Reset() })
		defer stop()
		w := p2p.IdleWriter(st, IdleTimeout)
		if err := p2p.WriteFrame(w, marshalRequest(ref.Hash, in.Have())); err != nil {
			return fmt.Errorf("fetch %v: %w", ref.Hash, err)
		}
		r := p2p.IdleReader(st, IdleTimeout)
		resp, err := p2p.ReadFrame(r, maxResponse)
		if err != nil {
			return fmt.Errorf("fetch %v: %w", ref.Hash, err)
		}
		status, size, err := unmarshalResponse(resp)
		switch {
		case err != nil:
			return fmt.Errorf("fetch %v: %w", ref.Hash, err)
		case status == statusNotFound:
			return fmt.Errorf("fetch %v from %v: %w", ref.Hash, p, ErrNotFound)
		case status == statusBadRange:
			return mismatch(fmt.Sprintf("the holder has fewer than the %d bytes held here", in.Have()))
		case size != total:
			return mismatch(fmt.Sprintf("the holder's file is %d sealed bytes, the message says %d", size, total))
		}
		dst := io.Writer(in)
		if progress != nil {
			dst = progressWriter{in: in, fn: progress}
		}
		_, err = io.CopyBuffer(dst, io.LimitReader(r, total-in.Have()), make([]byte, copyBuffer))
		if err == nil && in.Have() < total {
			err = io.ErrUnexpectedEOF // the holder closed early
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("fetch %v: %d of %d bytes: %w", ref.Hash, in.Have(), total, err)
		}
		st.Close()
	}
	return in.Finish()
}

// progressWriter writes to an Incoming and reports its progress.
type progressWriter struct {
	in *Incoming
	fn func(have, total int64)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.in.Write(b)
	p.fn(p.in.Have(), p.in.Total())
	return n, err
}

// lock takes the file's download lock and returns its release.
func (s *Service) lock(h Hash) func() {
	s.mu.Lock()
	l := s.fetching[h]
	if l == nil {
		l = &fetchLock{}
		s.fetching[h] = l
	}
	l.users++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.fetching, h)
		}
		s.mu.Unlock()
	}
}
