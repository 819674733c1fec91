package files

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// The sealed form of a file: the plaintext cut into chunks of ChunkSize
// bytes (the last one shorter, possibly empty), each sealed with
// ChaCha20-Poly1305 under the file's own random key, the nonce being the
// chunk's index (11 bytes, big endian) and a last-chunk flag (1 byte) —
// the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015)
// as age uses it. A chunk moved, dropped, or a file cut at a chunk boundary
// fails to open. The file's Hash is the SHA-256 of its sealed bytes, so a
// node can check a download before it holds the key, and the message that
// hands out the key names the hash.

// ChunkSize is the plaintext in each sealed chunk.
const ChunkSize = 64 << 10

const (
	tagSize       = chacha20poly1305.Overhead
	sealedChunk   = ChunkSize + tagSize
	KeySize       = chacha20poly1305.KeySize
	lastChunkFlag = 1
)

// Errors of this package; every error it returns for a bad file or a bad
// peer wraps one of them.
var (
	// ErrCorrupt: sealed bytes failed to open (tampered, truncated, or
	// another file's key).
	ErrCorrupt = errors.New("file is corrupt or was tampered with")
	// ErrHashMismatch: a downloaded file is not the one its message names.
	// Nothing of it is kept.
	ErrHashMismatch = errors.New("file does not match its hash")
	// ErrTooLarge: the file is over the size limit.
	ErrTooLarge = errors.New("file is too large")
	// ErrNotFound: the node holds no file with that hash.
	ErrNotFound = errors.New("no such file")
)

// SealedSize is the size of a plaintext of n bytes once sealed: a tag per
// chunk, and one chunk for an empty file.
func SealedSize(n int64) int64 {
	return n + max(1, (n+ChunkSize-1)/ChunkSize)*tagSize
}

// PlainSize is the plaintext size of a sealed file of n bytes, or -1 if no
// plaintext seals to n bytes.
func PlainSize(n int64) int64 {
	p := n - max(1, (n+sealedChunk-1)/sealedChunk)*tagSize
	if p < 0 || SealedSize(p) != n {
		return -1
	}
	return p
}

func nonce(i uint64, last bool) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = lastChunkFlag
	}
	return n[:]
}

// Seal reads src to its end, writes it sealed under key to dst and returns
// the sealed size and Hash. It fails with ErrTooLarge, having written part,
// if src holds more than limit bytes (limit < 0: no limit).
func Seal(dst io.Writer, src io.Reader, key *[KeySize]byte, limit int64) (int64, Hash, error) {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		return 0, Hash{}, err
	}
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	buf := make([]byte, ChunkSize+1) // one byte more tells whether a chunk is the last
	out := make([]byte, 0, sealedChunk)
	var total, sealed int64
	n, err := io.ReadFull(src, buf)
	for i := uint64(0); ; i++ {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return sealed, Hash{}, fmt.Errorf("seal: read: %w", err)
		}
		last := n <= ChunkSize
		chunk := buf[:min(n, ChunkSize)]
		total += int64(len(chunk))
		if limit >= 0 && total > limit {
			return sealed, Hash{}, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
		}
		out = a.Seal(out[:0], nonce(i, last), chunk, nil)
		if _, err := w.Write(out); err != nil {
			return sealed, Hash{}, fmt.Errorf("seal: write: %w", err)
		}
		sealed += int64(len(out))
		if last {
			return sealed, Hash(h.Sum(nil)), nil
		}
		// The byte read past the chunk starts the next one.
		buf[0] = buf[ChunkSize]
		var m int
		m, err = io.ReadFull(src, buf[1:])
		n = 1 + m
	}
}

// Open reads a sealed file from src and writes its plaintext to dst,
// chunk by chunk: a chunk reaches dst only once it authenticated, and a
// file cut short fails with ErrCorrupt after its whole chunks were
// written.
func Open(dst io.Writer, src io.Reader, key *[KeySize]byte) (int64, error) {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		return 0, err
	}
	return openChunks(dst, src, a, 0)
}

func openChunks(dst io.Writer, src io.Reader, a cipher.AEAD, first uint64) (int64, error) {
	buf := make([]byte, sealedChunk+1)
	var written int64
	n, err := io.ReadFull(src, buf)
	for i := first; ; i++ {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return written, fmt.Errorf("open: read: %w", err)
		}
		last := n <= sealedChunk
		chunk := buf[:min(n, sealedChunk)]
		if len(chunk) < tagSize {
			return written, fmt.Errorf("%w: cut short in chunk %d", ErrCorrupt, i)
		}
		pt, oerr := a.Open(chunk[:0], nonce(i, last), chunk, nil)
		if oerr != nil {
			return written, fmt.Errorf("%w: chunk %d", ErrCorrupt, i)
		}
		if _, err := dst.Write(pt); err != nil {
			return written, fmt.Errorf("open: write: %w", err)
		}
		written += int64(len(pt))
		if last {
			return written, nil
		}
		buf[0] = buf[sealedChunk]
		var m int
		m, err = io.ReadFull(src, buf[1:])
		n = 1 + m
	}
}

// Hash is a sealed file's SHA-256.
type Hash [sha256.Size]byte

// String is the hash in hex, the name of the file on disk.
func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// ParseHash reads a hash written by String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: a file hash is %d hex digits", ErrNotFound, 2*len(h))
	}
	if _, err := fmt.Sscanf(s, "%x", &h); err != nil {
		return Hash{}, fmt.Errorf("%w: %q is not a file hash", ErrNotFound, s)
	}
	if h.String() != s {
		return Hash{}, fmt.Errorf("%w: %q is not a file hash", ErrNotFound, s)
	}
	return h, nil
}

func hashOf(r io.Reader) (Hash, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return Hash{}, err
	}
	return sum(h), nil
}

func sum(h hash.Hash) Hash { return Hash(h.Sum(nil)) }
