package store

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// Every value the store writes since schema 7 is sealed: encrypted and
// authenticated with XChaCha20-Poly1305 under a key of its own, with the
// entry's key as associated data. badger's encryption at rest (AES-CTR)
// hides the data but does not authenticate it, and badger verifies no
// checksum when it reads a value by default: one flipped bit on disk used
// to change a message's text with no error. A sealed value that was
// changed, truncated, or moved under another key fails to open, and the
// accessors return a *CorruptError naming the entry instead of its bytes.
//
// Sealed value layout:
//
//	offset size field
//	0      1    format, sealV1 (1)
//	1      24   nonce: a random 16-byte prefix drawn when the DB opens,
//	            then a 64-bit big-endian counter (never repeats under one key)
//	25     n    ciphertext of the n-byte value
//	25+n   16   Poly1305 tag over the ciphertext and the entry's key
//
// The value key is HKDF-SHA256-Expand(store key, "callsign/v1/store-value"),
// the store key being badger's master key (key.go).

const (
	labelStoreValue = "callsign/v1/store-value"

	sealV1       = 1
	sealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// errAuth is wrapped by the error for a value that fails authentication.
var errAuth = &corruptCause{"value failed authentication (changed on disk, or written under another key)"}

// sealer seals and opens values. It is safe for concurrent use.
type sealer struct {
	aead   cipher.AEAD
	prefix [16]byte      // random per open
	ctr    atomic.Uint64 // nonces used so far
}

// newSealer derives the value key from the store key.
func newSealer(storeKey []byte) (*sealer, error) {
	k, err := hkdf.Expand(sha256.New, storeKey, labelStoreValue, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	rand.Read(s.prefix[:])
	return s, nil
}

// seal returns v sealed under entry key k, in a new slice.
func (s *sealer) seal(k, v []byte) []byte {
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, sealOverhead+len(v))
	out[0] = sealV1
	copy(out[1:], s.prefix[:])
	binary.BigEndian.PutUint64(out[1+len(s.prefix):], s.ctr.Add(1))
	return s.aead.Seal(out, out[1:1+chacha20poly1305.NonceSizeX], v, k)
}

// open authenticates the sealed value b stored under k and appends the
// plaintext to dst. The error wraps ErrCorrupt.
func (s *sealer) open(dst, k, b []byte) ([]byte, error) {
	if len(b) < sealOverhead {
		return nil, &corruptCause{fmt.Sprintf("sealed value of %d bytes is shorter than %d", len(b), sealOverhead)}
	}
	if b[0] != sealV1 {
		return nil, &corruptCause{fmt.Sprintf("unknown sealed value format %d", b[0])}
	}
	out, err := s.aead.Open(dst, b[1:1+chacha20poly1305.NonceSizeX], b[1+chacha20poly1305.NonceSizeX:], k)
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}

// ErrCorrupt is wrapped by every error about stored data that is damaged:
// a value that fails authentication, one badger cannot read back (a
// checksum mismatch, a value log entry that is gone), or one that is
// malformed. Such errors from the accessors are a *CorruptError naming
// the entry. Use IsCorrupt or errors.Is to test for it.
var ErrCorrupt = errors.New("damaged data in the store")

// IsCorrupt reports whether err is about damaged stored data.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// CorruptError is a damaged entry (Key), or damage in one of the
// database's files (File) found when the store opens, and what is wrong.
type CorruptError struct {
	Key  []byte // the entry's key; nil for damage in a file
	File string // the damaged file's name in Dir/store, when known
	Err  error  // what is wrong; wraps ErrCorrupt

	files []fileDamage // all the damage found in files, when Open found it
}

func (e *CorruptError) Error() string {
	switch {
	case e.Key != nil:
		return fmt.Sprintf("damaged %s: %v", describeKey(e.Key), e.Err)
	case e.File != "":
		msg := e.Err.Error()
		if !strings.HasPrefix(msg, e.File) {
			msg = e.File + ": " + msg
		}
		return "damaged store file " + msg
	}
	return fmt.Sprintf("damaged store: %v", e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// corruptCause is a reason a stored value is damaged; it wraps ErrCorrupt.
type corruptCause struct{ msg string }

func (c *corruptCause) Error() string { return c.msg }
func (c *corruptCause) Unwrap() error { return ErrCorrupt }

// corrupt returns err as a *CorruptError for key k, unless it already is one.
func corrupt(k []byte, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	if !errors.Is(err, ErrCorrupt) {
		err = &wrappedCause{err}
	}
	return &CorruptError{Key: k, Err: err}
}

// wrappedCause marks an error from badger reading a value (a checksum
// mismatch, a truncated or missing value log) as damage.
type wrappedCause struct{ err error }

func (w *wrappedCause) Error() string   { return "cannot read the value: " + w.err.Error() }
func (w *wrappedCause) Unwrap() []error { return []error{ErrCorrupt, w.err} }
