package identity

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PoWParams are the costs of a handle proof of work: find a nonce such that
//
//	argon2id(password = LabelHandlePoW || 0x00 || len(name) as uvarint || name || owner[32] || nonce as 8 bytes big-endian,
//	         salt = LabelHandlePoW, time = Passes, memory = MemoryKiB, threads = 1, keyLen = 32)
//
// starts with Bits(name) zero bits. Solving takes about 2^Bits evaluations; verifying takes
// one. Zero fields mean the defaults; a negative BaseBits or ShortExtra means zero.
// Every node of one network must use the same parameters.
type PoWParams struct {
	MemoryKiB  uint32 // argon2id memory per attempt; 0 = default 16384 (16 MiB)
	Passes     uint32 // argon2id time parameter; 0 = default 1
	BaseBits   int    // leading zero bits for a name of 8+ runes; 0 = default 6 (~1 s on a laptop)
	ShortExtra int    // extra bits per rune under 8; 0 = default 1 (shorter names cost more)
}

// Default PoW parameters; see PoWParams.
const (
	DefaultPoWMemoryKiB  = 16 * 1024
	DefaultPoWPasses     = 1
	DefaultPoWBaseBits   = 6
	DefaultPoWShortExtra = 1
	// powShortLen is the name length (in runes) from which no extra bits are charged.
	powShortLen = 8
	maxPoWBits  = 64
)

// TestPoW is cheap parameters for tests and simulations: 64 KiB, one pass, 1 base bit, one
// extra bit per rune under 8. Never use it on a real network.
var TestPoW = PoWParams{MemoryKiB: 64, Passes: 1, BaseBits: 1, ShortExtra: 1}

func (p PoWParams) withDefaults() PoWParams {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultPoWMemoryKiB
	}
	if p.MemoryKiB < 8 {
		p.MemoryKiB = 8 // argon2 with one lane needs at least 8 KiB
	}
	if p.Passes == 0 {
		p.Passes = DefaultPoWPasses
	}
	switch {
	case p.BaseBits == 0:
		p.BaseBits = DefaultPoWBaseBits
	case p.BaseBits < 0:
		p.BaseBits = 0
	}
	switch {
	case p.ShortExtra == 0:
		p.ShortExtra = DefaultPoWShortExtra
	case p.ShortExtra < 0:
		p.ShortExtra = 0
	}
	return p
}

// Bits returns the number of leading zero bits the proof of work for the normalised name
// norm needs: BaseBits, plus ShortExtra for each rune the name is shorter than 8, capped at 64.
func (p PoWParams) Bits(norm string) int {
	p = p.withDefaults()
	n := p.BaseBits
	if short := powShortLen - utf8.RuneCountInString(norm); short > 0 {
		n += short * p.ShortExtra
	}
	return min(n, maxPoWBits)
}

// powHash evaluates argon2id for one nonce; prefix is the password without the nonce and has
// room for 8 more bytes.
func (p PoWParams) powHash(prefix []byte, nonce uint64) []byte {
	pw := binary.BigEndian.AppendUint64(prefix, nonce)
	return argon2.IDKey(pw, []byte(LabelHandlePoW), p.Passes, p.MemoryKiB, 1, 32)
}

func powPrefix(norm string, owner AccountPub) []byte {
	b := make([]byte, 0, len(LabelHandlePoW)+1+binary.MaxVarintLen64+len(norm)+AccountPubSize+8)
	b = append(b, LabelHandlePoW...)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(norm)))
	b = append(b, norm...)
	return append(b, owner.b[:]...)
}

func leadingZeroBits(h []byte) int {
	n := 0
	for _, x := range h {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// SolveHandlePoW searches nonces 0, 1, 2, ... for a proof of work for the normalised name norm
// owned by owner, on the calling goroutine (about 2^Bits(norm) argon2id evaluations of
// MemoryKiB each). It returns ctx's error if ctx ends first; it checks ctx before every
// attempt.
func SolveHandlePoW(ctx context.Context, p PoWParams, norm string, owner AccountPub) (nonce uint64, err error) {
	p = p.withDefaults()
	want := p.Bits(norm)
	prefix := powPrefix(norm, owner)
	for nonce = 0; ; nonce++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("solve handle proof of work for %q: %w", norm, err)
		}
		if leadingZeroBits(p.powHash(prefix, nonce)) >= want {
			return nonce, nil
		}
	}
}

// VerifyHandlePoW reports whether nonce is a proof of work for the normalised name norm owned
// by owner. It costs one argon2id evaluation.
func VerifyHandlePoW(p PoWParams, norm string, owner AccountPub, nonce uint64) bool {
	p = p.withDefaults()
	return leadingZeroBits(p.powHash(powPrefix(norm, owner), nonce)) >= p.Bits(norm)
}
