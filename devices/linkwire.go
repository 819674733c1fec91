package devices

// The stream framing and reset codes of package p2p, restated for the
// link protocol. devices can't import p2p: p2p builds the host, which links
// go-libp2p's WebRTC transport and with it pion, and devices must not
// depend on pion (deps_test.go). The forms are p2p's to the byte and the
// codes its numbers (TestLinkWireMatchesP2P), so a link stream is an
// ordinary callsign stream: the node registers Linker.ServeStream with
// p2p.HandleStream, and a peer reads the codes with p2p.CodeOf.

import (
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/network"
)

// The reset codes a link stream ends with (p2p's Code* values).
const (
	codeBadRequest network.StreamErrorCode = 0x100 // p2p.CodeBadRequest
	codeTooLarge   network.StreamErrorCode = 0x101 // p2p.CodeTooLarge
	codeTimeout    network.StreamErrorCode = 0x104 // p2p.CodeTimeout
	codeInternal   network.StreamErrorCode = 0x105 // p2p.CodeInternal
	codeClosing    network.StreamErrorCode = 0x106 // p2p.CodeClosing
)

// errFrameTooLarge: a frame's length is above the reader's cap.
var errFrameTooLarge = errors.New("frame too large")

// codeError is an error that ends the stream with a reset code.
type codeError struct {
	code network.StreamErrorCode
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code network.StreamErrorCode, err error) error { return &codeError{code, err} }

// writeFrame writes b as one frame (p2p.WriteFrame): a minimal LEB128
// length, then b, in one Write.
func writeFrame(w io.Writer, b []byte) error {
	buf := make([]byte, 0, len(b)+10)
	for n := uint64(len(b)); ; n >>= 7 {
		if n < 0x80 {
			buf = append(buf, byte(n))
			break
		}
		buf = append(buf, byte(n)|0x80)
	}
	if _, err := w.Write(append(buf, b...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// readFrame reads one frame of at most max bytes (p2p.ReadFrame): io.EOF
// before its first byte, errFrameTooLarge before allocating for a length
// above max, an error for a non-minimal or overlong length.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var n uint64
	var one [1]byte
	for i := 0; ; i++ {
		if i == 9 {
			return nil, errors.New("malformed frame length: longer than 9 bytes")
		}
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if err == io.EOF && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("read frame length: %w", err)
		}
		n |= uint64(one[0]&0x7f) << (7 * i)
		if one[0] < 0x80 {
			if one[0] == 0 && i > 0 {
				return nil, errors.New("malformed frame length: non-minimal encoding")
			}
			break
		}
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return b, nil
}
