package identity

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"strings"
)

// safetyIterations is how many times each key's fingerprint is hashed.
const safetyIterations = 5200

// SafetyNumber returns the number two parties compare to check they hold each other's real
// keys: 60 decimal digits in 12 groups of 5, separated by single spaces. It is symmetric:
// SafetyNumber(a, b) == SafetyNumber(b, a).
//
// Each key k gives 30 digits: h = SHA-512(LabelSafetyNumber || 0x00 || k), then 5200 times
// h = SHA-512(h || k); the first 30 bytes of h, in six 5-byte big-endian chunks, each taken
// mod 100000, make six 5-digit groups. The key whose bytes sort first contributes the first
// 30 digits.
func SafetyNumber(a, b AccountPub) string {
	x, y := a.b[:], b.b[:]
	if bytes.Compare(x, y) > 0 {
		x, y = y, x
	}
	var sb strings.Builder
	sb.Grow(71)
	writeSafetyHalf(&sb, x)
	sb.WriteByte(' ')
	writeSafetyHalf(&sb, y)
	return sb.String()
}

func writeSafetyHalf(sb *strings.Builder, key []byte) {
	h := sha512.New()
	h.Write([]byte(LabelSafetyNumber))
	h.Write([]byte{0})
	h.Write(key)
	sum := h.Sum(nil)
	for range safetyIterations {
		h.Reset()
		h.Write(sum)
		h.Write(key)
		sum = h.Sum(sum[:0])
	}
	for i := range 6 {
		var c [8]byte
		copy(c[3:], sum[i*5:i*5+5])
		v := binary.BigEndian.Uint64(c[:]) % 100000
		if i > 0 {
			sb.WriteByte(' ')
		}
		d := []byte{'0', '0', '0', '0', '0'}
		for j := 4; j >= 0; j-- {
			d[j] = byte('0' + v%10)
			v /= 10
		}
		sb.Write(d)
	}
}
