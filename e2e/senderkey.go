package e2e

import (
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/callsign/callsign/internal/wire"
)

// Sender keys: a group message is encrypted once, under a key from its
// sender's chain, whatever the group's size (docs/GROUPS.md §1.2, Signal's
// sender-key construction). Each member device keeps a SenderKey per group
// and epoch and hands its share (the chain key where it stands, and the
// public half of a signing key) to every other member device over their
// pairwise Double Ratchet session; those devices read the sender's later
// messages with a ReceiverChain. The chain is forward secure (a message's
// key is deleted once used) but heals only when the sender starts a new
// chain, which the node does on every removal and on a schedule.

// labelGroupMessage labels what a group message's signature covers.
const labelGroupMessage = "callsign/v1/group-message"

// MaxGroupSkip bounds how far ahead of the last message read a group
// message may be, and how many skipped keys a ReceiverChain keeps.
const MaxGroupSkip = 2000

// MaxGroupMessage bounds a group message's ciphertext (the node's own
// limits on texts are far below it).
const MaxGroupMessage = 256 << 10

const (
	chainIDSize        = 16
	senderKeyVersion   = 1
	receiverKeyVersion = 1
)

// SenderKey is one device's sending chain in one group epoch. It holds
// secret keys: store its Marshal encrypted at rest.
type SenderKey struct {
	id   [chainIDSize]byte
	ck   chainKey
	n    uint32 // the next message's iteration
	sign ed25519.PrivateKey
}

// SenderKeyShare is what a SenderKey's device sends each member device so
// it can read the chain from Iteration on.
type SenderKeyShare struct {
	ID        [chainIDSize]byte
	Chain     [keySize]byte
	Iteration uint32
	Signer    ed25519.PublicKey
}

// NewSenderKey starts a chain: a random chain key, chain id and signing
// key. A nil rand means crypto/rand.
func NewSenderKey(rand io.Reader) (*SenderKey, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	s := &SenderKey{}
	if _, err := io.ReadFull(rand, s.id[:]); err != nil {
		return nil, fmt.Errorf("new sender key: %w", err)
	}
	if _, err := io.ReadFull(rand, s.ck.b[:]); err != nil {
		return nil, fmt.Errorf("new sender key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("new sender key: %w", err)
	}
	s.sign = priv
	return s, nil
}

// ID is the chain's id, which every message of the chain names.
func (s *SenderKey) ID() [chainIDSize]byte { return s.id }

// Iteration is the next message's place in the chain.
func (s *SenderKey) Iteration() uint32 { return s.n }

// Share is the chain as it stands: a member device given it reads every
// message sealed from now on, and none sealed before.
func (s *SenderKey) Share() SenderKeyShare {
	return SenderKeyShare{ID: s.id, Chain: s.ck.b, Iteration: s.n, Signer: s.sign.Public().(ed25519.PublicKey)}
}

// Seal encrypts plaintext as the chain's next message, bound to ad (the
// group, the epoch and the sender, which the caller knows) and signed, and
// steps the chain: the message key is gone once Seal returns.
func (s *SenderKey) Seal(ad, plaintext []byte) ([]byte, error) {
	if s.n == math.MaxUint32 {
		return nil, fmt.Errorf("%w: the sender chain is used up", ErrMalformed)
	}
	if len(plaintext) > MaxGroupMessage-chacha20poly1305Overhead {
		return nil, fmt.Errorf("%w: a group message of %d bytes", ErrMalformed, len(plaintext))
	}
	next, mk := kdfCK(&s.ck)
	defer mk.clear()
	header := groupHeader(s.id, s.n)
	a, nonce := mk.aead()
	ct := a.Seal(nil, nonce, plaintext, groupAD(ad, header))
	e := wire.Encoder{B: header}
	e.Bytes(3, ct)
	e.Bytes(4, ed25519.Sign(s.sign, groupAD(ad, e.B)))
	s.ck.clear()
	s.ck, s.n = next, s.n+1
	return e.B, nil
}

const chacha20poly1305Overhead = 16

// groupHeader is a group message's fields 1 and 2: its chain and
// iteration.
func groupHeader(id [chainIDSize]byte, n uint32) []byte {
	var h wire.Encoder
	h.Bytes(1, id[:])
	h.Varint(2, uint64(n))
	return h.B
}

// groupAD is what a group message's AEAD authenticates (with header: its
// chain and iteration) and its signature covers (with body: fields 1–3):
// label || 0x00 || len(ad) || ad || the fields.
func groupAD(ad, fields []byte) []byte {
	return slices.Concat([]byte(labelGroupMessage), []byte{0}, binary.BigEndian.AppendUint32(nil, uint32(len(ad))), ad, fields)
}

// GroupMessageChain reads which chain, and where in it, a group message
// is, so the caller can find the ReceiverChain to open it with.
func GroupMessageChain(msg []byte) (id [chainIDSize]byte, iteration uint32, err error) {
	gm, err := parseGroupMessage(msg)
	return gm.id, gm.n, err
}

type groupMessage struct {
	id     [chainIDSize]byte
	n      uint32
	ct     []byte
	sig    []byte
	signed []byte // fields 1–3 (the strict decoder makes the re-encoding the bytes sent)
	header []byte // fields 1–2
}

func parseGroupMessage(msg []byte) (groupMessage, error) {
	var gm groupMessage
	d := wire.NewDecoder(msg, ErrMalformed)
	copy(gm.id[:], d.Fixed(1, chainIDSize))
	n, ok := d.Varint(2)
	if !ok || n > math.MaxUint32 {
		d.Fail("no iteration")
	}
	gm.n = uint32(n)
	gm.ct = d.Bytes(3, chacha20poly1305Overhead, MaxGroupMessage)
	gm.sig = d.Fixed(4, sigSize)
	if err := d.End(); err != nil {
		return groupMessage{}, err
	}
	if gm.ct == nil {
		return groupMessage{}, fmt.Errorf("%w: no ciphertext", ErrMalformed)
	}
	gm.header = groupHeader(gm.id, gm.n)
	e := wire.Encoder{B: slices.Clone(gm.header)}
	e.Bytes(3, gm.ct)
	gm.signed = e.B
	return gm, nil
}

// ReceiverChain reads one member device's chain from a share. It holds
// secret keys: store its Marshal encrypted at rest.
type ReceiverChain struct {
	id      [chainIDSize]byte
	ck      chainKey
	n       uint32 // the next iteration the chain key stands at
	signer  ed25519.PublicKey
	skipped []skippedGroupKey // oldest first, at most MaxGroupSkip
}

type skippedGroupKey struct {
	n  uint32
	mk messageKey
}

// NewReceiverChain starts reading a chain from its share.
func NewReceiverChain(sh SenderKeyShare) (*ReceiverChain, error) {
	if len(sh.Signer) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: a signing key of %d bytes", ErrMalformed, len(sh.Signer))
	}
	r := &ReceiverChain{id: sh.ID, n: sh.Iteration, signer: slices.Clone(sh.Signer)}
	r.ck.b = sh.Chain
	return r, nil
}

// ID is the chain's id.
func (r *ReceiverChain) ID() [chainIDSize]byte { return r.id }

// Open checks a group message's signature and decrypts it. Each message
// opens once: a replay fails with ErrReplay, a message more than
// MaxGroupSkip ahead with ErrTooManySkipped, a forged one with
// ErrBadSignature and a tampered one with ErrDecrypt; on any error the
// chain is unchanged.
func (r *ReceiverChain) Open(ad, msg []byte) ([]byte, error) {
	gm, err := parseGroupMessage(msg)
	if err != nil {
		return nil, err
	}
	if gm.id != r.id {
		return nil, fmt.Errorf("%w: a message of another chain", ErrMalformed)
	}
	if !ed25519.Verify(r.signer, groupAD(ad, gm.signed), gm.sig) {
		return nil, ErrBadSignature
	}
	if gm.n < r.n {
		i := slices.IndexFunc(r.skipped, func(k skippedGroupKey) bool { return k.n == gm.n })
		if i < 0 {
			return nil, ErrReplay
		}
		pt, err := openWith(&r.skipped[i].mk, ad, gm)
		if err != nil {
			return nil, err
		}
		r.skipped[i].mk.clear()
		r.skipped = slices.Delete(r.skipped, i, i+1)
		return pt, nil
	}
	if gm.n-r.n > MaxGroupSkip {
		return nil, fmt.Errorf("%w: %d ahead", ErrTooManySkipped, gm.n-r.n)
	}
	ck := r.ck
	var skipped []skippedGroupKey
	for i := r.n; i < gm.n; i++ {
		next, mk := kdfCK(&ck)
		skipped = append(skipped, skippedGroupKey{n: i, mk: mk})
		ck = next
	}
	next, mk := kdfCK(&ck)
	defer mk.clear()
	pt, err := openWith(&mk, ad, gm)
	if err != nil {
		for i := range skipped {
			skipped[i].mk.clear()
		}
		return nil, err
	}
	r.ck.clear()
	r.ck, r.n = next, gm.n+1
	r.skipped = append(r.skipped, skipped...)
	if over := len(r.skipped) - MaxGroupSkip; over > 0 {
		for i := range over {
			r.skipped[i].mk.clear()
		}
		r.skipped = slices.Delete(r.skipped, 0, over)
	}
	return pt, nil
}

func openWith(mk *messageKey, ad []byte, gm groupMessage) ([]byte, error) {
	a, nonce := mk.aead()
	pt, err := a.Open(nil, nonce, gm.ct, groupAD(ad, gm.header))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Marshal encodes the sender key for storage.
func (s *SenderKey) Marshal() []byte {
	var e wire.Encoder
	e.Uint(1, senderKeyVersion)
	e.Bytes(2, s.id[:])
	e.Bytes(3, s.ck.b[:])
	e.Uint(4, uint64(s.n))
	e.Bytes(5, s.sign.Seed())
	return e.B
}

// UnmarshalSenderKey decodes what SenderKey.Marshal wrote.
func UnmarshalSenderKey(b []byte) (*SenderKey, error) {
	d := wire.NewDecoder(b, ErrMalformed)
	if v := d.Uint(1, math.MaxUint32); d.Err() == nil && v != senderKeyVersion {
		return nil, fmt.Errorf("%w: sender key version %d", ErrMalformed, v)
	}
	s := &SenderKey{}
	copy(s.id[:], d.Fixed(2, chainIDSize))
	copy(s.ck.b[:], d.Fixed(3, keySize))
	s.n = uint32(d.Uint(4, math.MaxUint32))
	seed := d.Fixed(5, ed25519.SeedSize)
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	s.sign = ed25519.NewKeyFromSeed(seed)
	return s, nil
}

// MarshalSenderKeyShare encodes a share for sending over a pairwise
// session (it holds the chain key: never send it any other way).
func MarshalSenderKeyShare(sh SenderKeyShare) []byte {
	var e wire.Encoder
	e.Bytes(1, sh.ID[:])
	e.Bytes(2, sh.Chain[:])
	e.Uint(3, uint64(sh.Iteration))
	e.Bytes(4, sh.Signer)
	return e.B
}

// UnmarshalSenderKeyShare decodes a share.
func UnmarshalSenderKeyShare(b []byte) (SenderKeyShare, error) {
	var sh SenderKeyShare
	d := wire.NewDecoder(b, ErrMalformed)
	copy(sh.ID[:], d.Fixed(1, chainIDSize))
	copy(sh.Chain[:], d.Fixed(2, keySize))
	sh.Iteration = uint32(d.Uint(3, math.MaxUint32))
	sh.Signer = slices.Clone(d.Fixed(4, ed25519.PublicKeySize))
	if err := d.End(); err != nil {
		return SenderKeyShare{}, fmt.Errorf("sender key share: %w", err)
	}
	return sh, nil
}

// Marshal encodes the receiver chain for storage.
func (r *ReceiverChain) Marshal() []byte {
	var e wire.Encoder
	e.Uint(1, receiverKeyVersion)
	e.Bytes(2, r.id[:])
	e.Bytes(3, r.ck.b[:])
	e.Uint(4, uint64(r.n))
	e.Bytes(5, r.signer)
	for _, k := range r.skipped {
		var s wire.Encoder
		s.Varint(1, uint64(k.n))
		s.Bytes(2, k.mk.b[:])
		e.Bytes(6, s.B)
	}
	return e.B
}

// UnmarshalReceiverChain decodes what ReceiverChain.Marshal wrote.
func UnmarshalReceiverChain(b []byte) (*ReceiverChain, error) {
	d := wire.NewDecoder(b, ErrMalformed)
	if v := d.Uint(1, math.MaxUint32); d.Err() == nil && v != receiverKeyVersion {
		return nil, fmt.Errorf("%w: receiver chain version %d", ErrMalformed, v)
	}
	r := &ReceiverChain{}
	copy(r.id[:], d.Fixed(2, chainIDSize))
	copy(r.ck.b[:], d.Fixed(3, keySize))
	r.n = uint32(d.Uint(4, math.MaxUint32))
	r.signer = slices.Clone(d.Fixed(5, ed25519.PublicKeySize))
	for _, v := range d.RepeatedBytes(6, MaxGroupSkip, 1, 64) {
		k := wire.NewDecoder(v, ErrMalformed)
		n, ok := k.Varint(1)
		if !ok || n >= uint64(r.n) {
			k.Fail("skipped key at %d, chain at %d", n, r.n)
		}
		sk := skippedGroupKey{n: uint32(n)}
		copy(sk.mk.b[:], k.Fixed(2, keySize))
		if err := k.End(); err != nil {
			d.Fail("%v", err)
			break
		}
		r.skipped = append(r.skipped, sk)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("receiver chain: %w", err)
	}
	return r, nil
}
