package msg

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/argon2"
)

// First-contact stamps (see the package doc): a proof of work bound to the
// sender's and the recipient's accounts.
const (
	// DefaultStampBits is the work a recipient asks of a first contact
	// unless Config.StampBits says otherwise: 8 bits, 256 argon2id
	// evaluations on average, about 0.3 s of one core.
	DefaultStampBits = 8
	// MaxStampBits is the most work a sender does for one recipient, and
	// the most Config.StampBits may ask: 16 times the default.
	MaxStampBits = 12

	// labelStamp labels the argon2id input of a stamp.
	labelStamp = "callsign/v1/msg-stamp"
	// stampSize is a stamp's size on the wire: the nonce.
	stampSize = 8
	// stampMemoryKiB and stampPasses are the argon2id costs of one
	// evaluation: 1 MiB, one pass (about 1.2 ms).
	stampMemoryKiB = 1 << 10
	stampPasses    = 1
	// maxWorkBits caps stamp_bits on the wire.
	maxWorkBits = 64
)

// stampHash is argon2id(password = labelStamp || 0x00 || sender[32] ||
// recipient[32] || nonce[8], salt = labelStamp, time = 1, memory = 1 MiB,
// threads = 1, keyLen = 32).
func stampHash(sender, recipient, nonce []byte) []byte {
	pw := make([]byte, 0, len(labelStamp)+1+len(sender)+len(recipient)+len(nonce))
	pw = append(pw, labelStamp...)
	pw = append(pw, 0)
	pw = append(pw, sender...)
	pw = append(pw, recipient...)
	pw = append(pw, nonce...)
	return argon2.IDKey(pw, []byte(labelStamp), stampPasses, stampMemoryKiB, 1, 32)
}

// leadingZeros counts the leading zero bits of h.
func leadingZeros(h []byte) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// checkStamp reports whether nonce is a stamp of at least want bits from
// sender to recipient (32-byte account keys).
func checkStamp(sender, recipient, nonce []byte, want int) bool {
	return len(nonce) == stampSize && leadingZeros(stampHash(sender, recipient, nonce)) >= want
}

// solveStamp finds a stamp of want bits from sender to recipient, from a
// random start; it stops when ctx ends.
func solveStamp(ctx context.Context, sender, recipient []byte, want int) ([]byte, error) {
	if want > MaxStampBits {
		return nil, fmt.Errorf("stamp: %d bits asked, at most %d", want, MaxStampBits)
	}
	var start [8]byte
	rand.Read(start[:])
	n := binary.BigEndian.Uint64(start[:])
	nonce := make([]byte, stampSize)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("stamp: %w", err)
		}
		binary.BigEndian.PutUint64(nonce, n)
		if leadingZeros(stampHash(sender, recipient, nonce)) >= want {
			return nonce, nil
		}
		n++
	}
}
