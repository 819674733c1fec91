package identity

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// AccountID is the typed, checksummed text form of an account, shown to users as the
// unambiguous fallback to handles. Layout (42 characters, printed lowercase):
//
//	"csa1" || base32(H)[32 chars] || checksum[6 chars]
//
// H is the first 20 bytes of SHA-256(LabelAccountID || 0x00 || pubkey); base32 is RFC 4648
// lowercase without padding ("abcdefghijklmnopqrstuvwxyz234567"), so each character is a 5-bit
// value. The checksum is the Bech32m BCH code (BIP-173 generator, BIP-350 constant) over the
// human-readable part "csa" and the 32 data values, written in the same base32 alphabet. It
// detects every error touching up to 4 characters, so any single typo and any swap of two
// characters is caught. Input is case-insensitive. The zero AccountID ("") means "none".
type AccountID string

// ErrInvalidAccountID is returned (wrapped, with the reason) by ParseAccountID.
var ErrInvalidAccountID = errors.New("invalid account id")

const (
	accountIDPrefix    = "csa1"
	accountIDHRP       = "csa"
	accountIDHashSize  = 20
	accountIDDataChars = accountIDHashSize * 8 / 5 // 32
	accountIDSumChars  = 6
	// AccountIDLen is the length of every AccountID in characters.
	AccountIDLen = len(accountIDPrefix) + accountIDDataChars + accountIDSumChars // 42
)

const base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

var b32 = base32.NewEncoding(base32Alphabet).WithPadding(base32.NoPadding)

// ParseAccountID parses s (any case, surrounding spaces ignored) and returns it in canonical
// lowercase form. Errors wrap ErrInvalidAccountID and say what is wrong, such as a checksum
// mismatch from a typo.
func ParseAccountID(s string) (AccountID, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2*AccountIDLen {
		return "", fmt.Errorf("%w: too long (%d characters, want %d)", ErrInvalidAccountID, len(s), AccountIDLen)
	}
	for i := range len(s) {
		if s[i] >= 0x80 || s[i] < 0x20 {
			return "", fmt.Errorf("%w: character at position %d is not allowed (only a-z and 2-7)", ErrInvalidAccountID, i+1)
		}
	}
	ls := strings.ToLower(s)
	if !strings.HasPrefix(ls, accountIDPrefix) {
		return "", fmt.Errorf("%w: must start with %q", ErrInvalidAccountID, accountIDPrefix)
	}
	if len(ls) != AccountIDLen {
		return "", fmt.Errorf("%w: %d characters, want %d", ErrInvalidAccountID, len(ls), AccountIDLen)
	}
	vals := make([]byte, 0, accountIDDataChars+accountIDSumChars)
	for i := len(accountIDPrefix); i < len(ls); i++ {
		v := strings.IndexByte(base32Alphabet, ls[i])
		if v < 0 {
			return "", fmt.Errorf("%w: character %q at position %d is not allowed (only a-z and 2-7)", ErrInvalidAccountID, string(ls[i]), i+1)
		}
		vals = append(vals, byte(v))
	}
	if bech32Polymod(accountIDHRP, vals) != bech32mConst {
		return "", fmt.Errorf("%w: checksum mismatch (check for a typo)", ErrInvalidAccountID)
	}
	return AccountID(ls), nil
}

// AccountIDHashSize is the size of an account id's binary form, the hash
// H of its layout.
const AccountIDHashSize = accountIDHashSize

// Hash returns the binary form of id: the 20 bytes of H, or nil when id is
// not a valid account id. AccountIDFromHash reverses it.
func (id AccountID) Hash() []byte {
	canon, err := ParseAccountID(string(id))
	if err != nil {
		return nil
	}
	h, err := b32.DecodeString(string(canon[len(accountIDPrefix) : len(accountIDPrefix)+accountIDDataChars]))
	if err != nil {
		return nil
	}
	return h
}

// AccountIDFromHash returns the account id whose binary form is h.
func AccountIDFromHash(h []byte) (AccountID, error) {
	if len(h) != accountIDHashSize {
		return "", fmt.Errorf("%w: binary form of %d bytes, want %d", ErrInvalidAccountID, len(h), accountIDHashSize)
	}
	return encodeAccountID(h), nil
}

// String returns the id as printed to users (lowercase).
func (id AccountID) String() string { return string(id) }

// Matches reports whether id (in any case) is the id of key p.
func (id AccountID) Matches(p AccountPub) bool {
	return !p.IsZero() && strings.ToLower(string(id)) == string(p.ID())
}

func encodeAccountID(h []byte) AccountID {
	data := b32.EncodeToString(h)
	vals := make([]byte, len(data), len(data)+accountIDSumChars)
	for i := range len(data) {
		vals[i] = byte(strings.IndexByte(base32Alphabet, data[i]))
	}
	pm := bech32Polymod(accountIDHRP, append(vals, make([]byte, accountIDSumChars)...)) ^ bech32mConst
	var sb strings.Builder
	sb.Grow(AccountIDLen)
	sb.WriteString(accountIDPrefix)
	sb.WriteString(data)
	for i := range accountIDSumChars {
		sb.WriteByte(base32Alphabet[(pm>>(5*(5-i)))&31])
	}
	return AccountID(sb.String())
}

// bech32mConst is the Bech32m checksum constant (BIP-350).
const bech32mConst = 0x2bc830a3

// bech32Polymod computes the BIP-173 checksum polynomial over the expanded human-readable
// part followed by the 5-bit values vals.
func bech32Polymod(hrp string, vals []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	step := func(v byte) {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	for i := range len(hrp) {
		step(hrp[i] >> 5)
	}
	step(0)
	for i := range len(hrp) {
		step(hrp[i] & 31)
	}
	for _, v := range vals {
		step(v)
	}
	return chk
}
