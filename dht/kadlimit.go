package dht

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/callsign/callsign/p2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// kad-dht reads every kad message with msgio, which allocates a buffer of
// the length a message announces (up to network.MessageSizeMax, 4 MiB)
// before it reads a byte of the message, outside the resource manager, and
// keeps an inbound stream for a minute without a message. A peer announcing
// 4 MiB on every stream it may open and sending nothing more pinned 4 MiB
// per stream, and held every kad stream slot of the protocol. kadHost stands
// between kad-dht and the host and bounds each kad message before msgio
// sees its length:
//
//   - A length above the cap (maxKadRequest for the requests kad-dht
//     serves, maxResponseSize for the answers its own client reads: routing
//     table refresh, FindPeer, Ping) resets the stream with p2p.CodeTooLarge,
//     so msgio never allocates for it.
//   - A length within the cap is reserved in the stream's resource scope
//     (so it counts against the stream's, protocol's, peer's and system's
//     memory limits) before msgio allocates; a refused reservation resets
//     the stream with p2p.CodeOverloaded. The reservation is released when
//     the next message begins, and with the stream's scope.
//   - On a stream kad-dht serves, each message must arrive in full within
//     kadFrameTimeout of the reader asking for it (the idle time between
//     requests included), and each write of an answer must complete within
//     kadFrameTimeout, else the stream is reset with p2p.CodeTimeout.
//
// How many kad streams a peer may hold at once is the resource manager's
// per-peer protocol limit (p2p.NewHost).
const (
	// maxKadRequest caps a request kad-dht serves. The largest is a
	// PUT_VALUE carrying an identity record: the record (at most
	// MaxIdentityRecordSize, 16 KiB), its key twice (message and record,
	// under 100 bytes each for a valid key) and the record's receive time,
	// with their tags, under 16.5 KiB. GET_VALUE, FIND_NODE and PING are
	// a key and a few bytes; requests carry no peers and no provider
	// records (providers are disabled).
	maxKadRequest = MaxIdentityRecordSize + 4<<10
	// kadFrameTimeout bounds the wait for one request on a served kad
	// stream and one write of its answer. kad-dht's client reuses a stream
	// for later requests and opens a new one when the old one was reset.
	kadFrameTimeout = 10 * time.Second
	// maxVarintBytes is the longest length prefix msgio accepts.
	maxVarintBytes = 9
)

var (
	errKadTooLarge  = errors.New("kad message too large")
	errKadBadLength = errors.New("malformed kad message length")
	errKadNoMemory  = errors.New("kad message refused by the resource manager")
)

// kadHost is the host kad-dht runs on: the real host, with kad-dht's
// streams bounded as described above. kad-dht registers its handlers with
// SetStreamHandler (again whenever it switches to server mode) and opens
// its client streams with NewStream; everything else passes through.
type kadHost struct {
	host.Host
	stats *kadStats // the requests served (stats.go)
}

// SetStreamHandler registers handler for pid with its streams bounded.
func (h kadHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) {
		handler(h.served(s))
	})
}

// SetStreamHandlerMatch is SetStreamHandler for protocols matching match.
func (h kadHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) {
		handler(h.served(s))
	})
}

// served bounds a stream kad-dht serves, counting its requests.
func (h kadHost) served(s network.Stream) *kadStream {
	ks := newKadStream(s, maxKadRequest, network.ReservationPriorityMedium, kadFrameTimeout)
	ks.stats = h.stats
	return ks
}

// NewStream opens a kad-dht client stream with the answers read on it
// capped at maxResponseSize. kad-dht bounds the wait for an answer with its
// request's context.
func (h kadHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return newKadStream(s, maxResponseSize, network.ReservationPriorityHigh, 0), nil
}

// kadStream checks the length prefix of every message read from a kad
// stream (a uvarint and that many bytes of protobuf, as p2p frames) as the
// bytes pass through Read, before the reader sees the prefix's last byte.
// Read must not be called concurrently (msgio serialises its reads); the
// other methods may be.
type kadStream struct {
	network.Stream
	max     uint64
	prio    uint8
	timeout time.Duration // per message and per write; 0 = none

	// Read state.
	body     uint64 // bytes of the current message still to come
	hdr      uint64 // the length prefix read so far
	hdrLen   int    // its bytes; 0 between messages
	reserved int    // bytes reserved in the stream's scope for the current message

	// Served streams only (stats.go): the requests counted, and the state
	// of the one in progress: stateIdle, stateDecoded, or its kind + 1.
	stats *kadStats
	state atomic.Int32
}

func newKadStream(s network.Stream, max int, prio uint8, timeout time.Duration) *kadStream {
	return &kadStream{Stream: s, max: uint64(max), prio: prio, timeout: timeout}
}

// Read reads from the stream. A message length above the cap, a
// malformed one or a refused memory reservation resets the stream and
// fails the read without returning any of its bytes.
func (s *kadStream) Read(b []byte) (int, error) {
	if s.body == 0 && s.hdrLen == 0 && s.timeout > 0 {
		// A new message: msgio reads the prefix a byte at a time and
		// then exactly the message, so this is the wait for one request.
		_ = s.SetReadDeadline(time.Now().Add(s.timeout))
	}
	n, err := s.Stream.Read(b)
	if cerr := s.scan(b[:n]); cerr != nil {
		return 0, cerr
	}
	if err != nil && s.timeout > 0 && kadTimedOut(err) {
		_ = s.ResetWithError(p2p.CodeTimeout)
	}
	return n, err
}

// Write writes to the stream, within kadFrameTimeout on a served stream.
func (s *kadStream) Write(b []byte) (int, error) {
	if s.timeout > 0 {
		_ = s.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	n, err := s.Stream.Write(b)
	if n > 0 {
		s.answered()
	}
	if err != nil && s.timeout > 0 && kadTimedOut(err) {
		_ = s.ResetWithError(p2p.CodeTimeout)
	}
	return n, err
}

// scan advances the read state over b, the bytes just read, and checks
// each length prefix completed in them.
func (s *kadStream) scan(b []byte) error {
	for len(b) > 0 {
		if s.body > 0 {
			k := min(uint64(len(b)), s.body)
			s.body -= k
			b = b[k:]
			if s.body == 0 {
				s.decoded()
			}
			continue
		}
		c := b[0]
		b = b[1:]
		if s.hdrLen == 0 {
			s.release() // the previous message has been read
		}
		s.hdr |= uint64(c&0x7f) << (7 * s.hdrLen)
		s.hdrLen++
		switch {
		case s.hdr > s.max:
			// The bytes so far are the low bits: the length only grows.
			return s.refuse(p2p.CodeTooLarge, fmt.Errorf("%w: more than %d bytes", errKadTooLarge, s.max))
		case c >= 0x80 && s.hdrLen == maxVarintBytes:
			return s.refuse(p2p.CodeBadRequest, fmt.Errorf("%w: longer than %d bytes", errKadBadLength, maxVarintBytes))
		case c >= 0x80:
			continue
		case c == 0 && s.hdrLen > 1:
			return s.refuse(p2p.CodeBadRequest, fmt.Errorf("%w: non-minimal encoding", errKadBadLength))
		}
		n := s.hdr
		s.hdr, s.hdrLen = 0, 0
		if n > 0 {
			if err := s.Scope().ReserveMemory(int(n), s.prio); err != nil {
				return s.refuse(p2p.CodeOverloaded, fmt.Errorf("%w: %w", errKadNoMemory, err))
			}
			s.reserved = int(n)
		}
		s.body = n
		if n == 0 {
			s.decoded()
		}
	}
	return nil
}

// release returns the current message's reservation.
func (s *kadStream) release() {
	if s.reserved > 0 {
		s.Scope().ReleaseMemory(s.reserved)
		s.reserved = 0
	}
}

// refuse resets the stream with code and returns err.
func (s *kadStream) refuse(code network.StreamErrorCode, err error) error {
	s.release()
	if s.stats != nil {
		s.stats.refused[kindUnknown].Add(1)
	}
	_ = s.ResetWithError(code)
	return err
}

// kadTimedOut reports whether err is a passed deadline.
func kadTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
