package p2p

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

var (
	// ErrFrameTooLarge means a frame's length exceeds the reader's maximum.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadVarint means a frame's length prefix is not a minimal varint of at most 9 bytes.
	ErrBadVarint = errors.New("malformed frame length")
)

// maxVarintLen is the longest length prefix accepted: 9 bytes carry 63
// bits, far above any cap.
const maxVarintLen = 9

// AppendFrame appends the frame for payload b to dst.
func AppendFrame(dst, b []byte) []byte {
	return append(appendLength(dst, len(b)), b...)
}

func appendLength(dst []byte, l int) []byte {
	n := uint64(l)
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}

// WriteFrame writes b as one frame (length prefix and payload) in a single
// Write call; into a *bufio.Writer, which gathers writes anyway, it copies
// the prefix and the payload into the buffer without allocating.
func WriteFrame(w io.Writer, b []byte) error {
	var err error
	if bw, ok := w.(*bufio.Writer); ok {
		var hdr [maxVarintLen]byte
		if _, err = bw.Write(appendLength(hdr[:0], len(b))); err == nil {
			_, err = bw.Write(b)
		}
	} else {
		_, err = w.Write(AppendFrame(make([]byte, 0, len(b)+maxVarintLen), b))
	}
	if err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of at most max payload bytes. It returns io.EOF
// if r ends before the first byte, io.ErrUnexpectedEOF if it ends inside a
// frame, ErrFrameTooLarge (before allocating) for a length above max, and
// ErrBadVarint for a non-minimal or overlong length prefix. If r is an
// io.ByteReader the prefix is read with ReadByte.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	n, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if max < 0 || n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
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

func readLength(r io.Reader) (uint64, error) {
	br, ok := r.(io.ByteReader)
	var one [1]byte
	var n uint64
	for i := 0; i < maxVarintLen; i++ {
		var c byte
		var err error
		if ok {
			c, err = br.ReadByte()
		} else {
			_, err = io.ReadFull(r, one[:])
			c = one[0]
		}
		if err != nil {
			if err == io.EOF && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("read frame length: %w", err)
		}
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, fmt.Errorf("%w: non-minimal encoding", ErrBadVarint)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: longer than %d bytes", ErrBadVarint, maxVarintLen)
}
