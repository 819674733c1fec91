package e2e

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"time"
)

// Prekey schedule and limits.
const (
	// PrekeyRotation is how long a signed prekey and a PQ prekey stay
	// current before Rotate replaces them.
	PrekeyRotation = 7 * 24 * time.Hour

	// PrekeyGrace is how long a replaced signed or PQ prekey is still
	// accepted, so handshakes started from a cached bundle (the DHT record
	// lives up to 7 days, a mailbox holds messages for a while) still work.
	PrekeyGrace = 14 * 24 * time.Hour

	// PQPrekeyKeep is how long a replaced ML-KEM-768 signed prekey is
	// kept, longer than PrekeyGrace: it is also the KEM key mailbox boxes
	// are sealed to (DecapsulatePQ), and a box may wait at a mailbox for
	// 30 days after a sender read a record up to 7 days old. A handshake
	// still needs the signed X25519 prekey of the same age, which is kept
	// only PrekeyGrace, so PQXDH's window does not grow.
	PQPrekeyKeep = 45 * 24 * time.Hour

	// MaxOneTimePrekeys caps each kind of one-time prekey a PrekeyState
	// holds; generating more evicts the oldest. It leaves room for the
	// ones handed to requesters directly and a batch at each mailbox.
	MaxOneTimePrekeys = 300

	// maxRetiredPrekeys caps the replaced signed X25519 prekeys kept for
	// the grace period, maxRetiredPQ the replaced PQ prekeys kept for
	// PQPrekeyKeep (a clock that jumps could otherwise pile them up).
	maxRetiredPrekeys = 4
	maxRetiredPQ      = 8
)

// prekeyMeta is what both kinds of prekey hold besides their secret.
type prekeyMeta struct {
	id      uint32
	sig     []byte
	created int64 // unix seconds
	retired int64 // unix seconds; 0 while current or unused
	issued  bool  // one-time: handed out in a bundle
}

// dhPrekey and pqPrekey keep the raw private key and build the crypto
// objects (a scalar multiplication, an ML-KEM key expansion) on first use, so
// loading a state with many one-time prekeys stays cheap.
type dhPrekey struct {
	prekeyMeta
	raw [keySize]byte
	key *ecdh.PrivateKey
}

func (k *dhPrekey) private() *ecdh.PrivateKey {
	if k.key == nil {
		key, err := ecdh.X25519().NewPrivateKey(k.raw[:])
		if err != nil {
			panic("bug: x25519 private key: " + err.Error())
		}
		k.key = key
	}
	return k.key
}

func (k *dhPrekey) public() []byte { return k.private().PublicKey().Bytes() }

type pqPrekey struct {
	prekeyMeta
	seed [mlkem.SeedSize]byte
	dk   *mlkem.DecapsulationKey768
	pub  []byte
}

func (k *pqPrekey) decapsulationKey() *mlkem.DecapsulationKey768 {
	if k.dk == nil {
		dk, err := mlkem.NewDecapsulationKey768(k.seed[:])
		if err != nil {
			panic("bug: ml-kem seed: " + err.Error())
		}
		k.dk = dk
	}
	return k.dk
}

func (k *pqPrekey) public() []byte {
	if k.pub == nil {
		k.pub = k.decapsulationKey().EncapsulationKey().Bytes()
	}
	return k.pub
}

// PrekeyState is the private side of a party's prekeys: the current signed
// X25519 prekey and ML-KEM-768 prekey, the ones they replaced (still accepted
// for PrekeyGrace), and the one-time prekeys not yet consumed. It is plain
// state: the caller persists it with Marshal after every change and
// serialises access (it is not safe for concurrent use).
type PrekeyState struct {
	identityDH  []byte
	identitySig []byte
	signed      []dhPrekey // [0] is current
	pq          []pqPrekey // [0] is current
	oneTime     []dhPrekey // oldest first
	oneTimePQ   []pqPrekey // oldest first
	nextID      uint32
}

// NewPrekeyState creates prekeys for self at time now, drawing keys from
// rand (crypto/rand.Reader if nil).
func NewPrekeyState(self Identity, now time.Time, rand io.Reader) (*PrekeyState, error) {
	if err := self.check(); err != nil {
		return nil, fmt.Errorf("new prekey state: %w", err)
	}
	ik := self.DH.PublicKey().Bytes()
	s := &PrekeyState{
		identityDH:  ik,
		identitySig: signKey(self.Signer, kindIdentity, 0, ik),
		nextID:      1,
	}
	spk, err := s.newDH(self, kindSignedPrekey, now, rand)
	if err != nil {
		return nil, fmt.Errorf("new prekey state: %w", err)
	}
	pq, err := s.newPQ(self, kindPQPrekey, now, rand)
	if err != nil {
		return nil, fmt.Errorf("new prekey state: %w", err)
	}
	s.signed = []dhPrekey{spk}
	s.pq = []pqPrekey{pq}
	return s, nil
}

func (s *PrekeyState) takeID() (uint32, error) {
	if s.nextID == 0 || s.nextID == math.MaxUint32 {
		return 0, fmt.Errorf("%w: prekey ids exhausted", ErrMalformed)
	}
	id := s.nextID
	s.nextID++
	return id, nil
}

func (s *PrekeyState) newDH(self Identity, kind byte, now time.Time, r io.Reader) (dhPrekey, error) {
	id, err := s.takeID()
	if err != nil {
		return dhPrekey{}, err
	}
	priv, err := newX25519(r)
	if err != nil {
		return dhPrekey{}, err
	}
	k := dhPrekey{
		prekeyMeta: prekeyMeta{id: id, sig: signKey(self.Signer, kind, id, priv.PublicKey().Bytes()), created: now.Unix()},
		key:        priv,
	}
	copy(k.raw[:], priv.Bytes())
	return k, nil
}

func (s *PrekeyState) newPQ(self Identity, kind byte, now time.Time, r io.Reader) (pqPrekey, error) {
	id, err := s.takeID()
	if err != nil {
		return pqPrekey{}, err
	}
	if r == nil {
		r = rand.Reader
	}
	seed := make([]byte, mlkem.SeedSize)
	defer clear(seed)
	if _, err := io.ReadFull(r, seed); err != nil {
		return pqPrekey{}, fmt.Errorf("e2e: read random: %w", err)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return pqPrekey{}, err
	}
	pub := dk.EncapsulationKey().Bytes()
	k := pqPrekey{
		prekeyMeta: prekeyMeta{id: id, sig: signKey(self.Signer, kind, id, pub), created: now.Unix()},
		dk:         dk,
		pub:        pub,
	}
	copy(k.seed[:], seed)
	return k, nil
}

// Rotate brings the state up to date at time now: a signed or PQ prekey
// that has been current for PrekeyRotation is replaced by a new one, and
// replaced prekeys older than PrekeyGrace are deleted. The result depends
// only on the state, now and the bytes read from rand. It reports whether
// anything changed (the caller then publishes a new bundle and persists the
// state). On error the state is unchanged.
func (s *PrekeyState) Rotate(self Identity, now time.Time, rand io.Reader) (bool, error) {
	if err := self.check(); err != nil {
		return false, fmt.Errorf("rotate prekeys: %w", err)
	}
	t := now.Unix()
	grace := int64(PrekeyGrace / time.Second)
	pqKeep := int64(PQPrekeyKeep / time.Second)
	rotation := int64(PrekeyRotation / time.Second)
	next := *s
	changed := false

	// Drop expired previous keys first, then rotate.
	keepDH := []dhPrekey{next.signed[0]}
	for _, k := range next.signed[1:] {
		if t-k.retired < grace && len(keepDH) < maxRetiredPrekeys+1 {
			keepDH = append(keepDH, k)
		} else {
			changed = true
		}
	}
	keepPQ := []pqPrekey{next.pq[0]}
	for _, k := range next.pq[1:] {
		if t-k.retired < pqKeep && len(keepPQ) < maxRetiredPQ+1 {
			keepPQ = append(keepPQ, k)
		} else {
			changed = true
		}
	}
	if t-keepDH[0].created >= rotation {
		k, err := next.newDH(self, kindSignedPrekey, now, rand)
		if err != nil {
			return false, fmt.Errorf("rotate prekeys: %w", err)
		}
		keepDH[0].retired = t
		keepDH = append([]dhPrekey{k}, keepDH[:min(len(keepDH), maxRetiredPrekeys)]...)
		changed = true
	}
	if t-keepPQ[0].created >= rotation {
		k, err := next.newPQ(self, kindPQPrekey, now, rand)
		if err != nil {
			return false, fmt.Errorf("rotate prekeys: %w", err)
		}
		keepPQ[0].retired = t
		keepPQ = append([]pqPrekey{k}, keepPQ[:min(len(keepPQ), maxRetiredPQ)]...)
		changed = true
	}
	if !changed {
		return false, nil
	}
	next.signed, next.pq = keepDH, keepPQ
	*s = next
	return true, nil
}

// GenerateOneTime adds n X25519 and n ML-KEM-768 one-time prekeys created
// at now. Beyond MaxOneTimePrekeys of a kind the oldest are dropped. On
// error the state is unchanged.
func (s *PrekeyState) GenerateOneTime(self Identity, n int, now time.Time, rand io.Reader) error {
	if err := self.check(); err != nil {
		return fmt.Errorf("generate one-time prekeys: %w", err)
	}
	if n < 0 || n > MaxOneTimePrekeys {
		return fmt.Errorf("generate one-time prekeys: %w: n=%d", ErrMalformed, n)
	}
	next := *s
	ot := append([]dhPrekey(nil), s.oneTime...)
	otpq := append([]pqPrekey(nil), s.oneTimePQ...)
	for range n {
		k, err := next.newDH(self, kindOneTime, now, rand)
		if err != nil {
			return fmt.Errorf("generate one-time prekeys: %w", err)
		}
		pk, err := next.newPQ(self, kindOneTimePQ, now, rand)
		if err != nil {
			return fmt.Errorf("generate one-time prekeys: %w", err)
		}
		ot = append(ot, k)
		otpq = append(otpq, pk)
	}
	if len(ot) > MaxOneTimePrekeys {
		ot = ot[len(ot)-MaxOneTimePrekeys:]
	}
	if len(otpq) > MaxOneTimePrekeys {
		otpq = otpq[len(otpq)-MaxOneTimePrekeys:]
	}
	next.oneTime, next.oneTimePQ = ot, otpq
	*s = next
	return nil
}

// Bundle returns the public bundle without one-time prekeys: the form
// published in the DHT identity record.
func (s *PrekeyState) Bundle() Bundle {
	spk, pq := &s.signed[0], &s.pq[0]
	return Bundle{
		IdentityDH:      clone(s.identityDH),
		IdentityDHSig:   clone(s.identitySig),
		SignedPrekeyID:  spk.id,
		SignedPrekey:    clone(spk.public()),
		SignedPrekeySig: clone(spk.sig),
		PQPrekeyID:      pq.id,
		PQPrekey:        clone(pq.public()),
		PQPrekeySig:     clone(pq.sig),
	}
}

// IssueBundle returns the bundle with the oldest not yet issued one-time
// prekeys of each kind attached (when there are any) and marks them issued,
// so no two requesters get the same one. The caller persists the state. A
// one-time prekey is deleted when a handshake consumes it, or evicted when
// more than MaxOneTimePrekeys exist.
func (s *PrekeyState) IssueBundle() Bundle {
	b := s.Bundle()
	for i := range s.oneTime {
		if k := &s.oneTime[i]; !k.issued {
			k.issued = true
			b.OneTime = &OneTimePrekey{ID: k.id, Public: clone(k.public()), Sig: clone(k.sig)}
			break
		}
	}
	for i := range s.oneTimePQ {
		if k := &s.oneTimePQ[i]; !k.issued {
			k.issued = true
			b.OneTimePQ = &OneTimePrekey{ID: k.id, Public: clone(k.public()), Sig: clone(k.sig)}
			break
		}
	}
	return b
}

// IssueOneTime returns up to n (at most MaxOneTimePrekeys) of the oldest
// not yet issued one-time prekeys of each kind and marks them issued, so
// neither IssueBundle nor another call hands them out again: the batch a
// member uploads to a mailbox (the caller generates enough first and
// persists the state before the keys leave). A key is deleted when a
// handshake consumes it, or evicted as IssueBundle's are.
func (s *PrekeyState) IssueOneTime(n int) (x25519, pq []OneTimePrekey) {
	n = min(max(n, 0), MaxOneTimePrekeys)
	for i := range s.oneTime {
		if k := &s.oneTime[i]; !k.issued && len(x25519) < n {
			k.issued = true
			x25519 = append(x25519, OneTimePrekey{ID: k.id, Public: clone(k.public()), Sig: clone(k.sig)})
		}
	}
	for i := range s.oneTimePQ {
		if k := &s.oneTimePQ[i]; !k.issued && len(pq) < n {
			k.issued = true
			pq = append(pq, OneTimePrekey{ID: k.id, Public: clone(k.public()), Sig: clone(k.sig)})
		}
	}
	return x25519, pq
}

// DecapsulatePQ decapsulates ciphertext with the signed ML-KEM-768 prekey
// (kind 2, current or replaced within PQPrekeyKeep) whose id is id: the
// KEM half of a mailbox's sealed box, which is sealed to the PQ prekey of
// the recipient's published bundle. One-time PQ prekeys are not used here
// (they serve one handshake). An id st does not hold is ErrUnknownPrekey.
func (s *PrekeyState) DecapsulatePQ(id uint32, ciphertext []byte) ([]byte, error) {
	k := s.findPQ(kindPQPrekey, id)
	if k == nil {
		return nil, fmt.Errorf("decapsulate: pq prekey %d: %w", id, ErrUnknownPrekey)
	}
	ss, err := k.decapsulationKey().Decapsulate(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decapsulate: %w: %v", ErrMalformed, err)
	}
	return ss, nil
}

// OneTimeAvailable reports how many one-time prekeys of each kind have not
// been issued yet, so the caller knows when to generate more.
func (s *PrekeyState) OneTimeAvailable() (x25519, pq int) {
	for _, k := range s.oneTime {
		if !k.issued {
			x25519++
		}
	}
	for _, k := range s.oneTimePQ {
		if !k.issued {
			pq++
		}
	}
	return x25519, pq
}

func (s *PrekeyState) findSigned(id uint32) *dhPrekey {
	for i := range s.signed {
		if s.signed[i].id == id {
			return &s.signed[i]
		}
	}
	return nil
}

func (s *PrekeyState) findPQ(kind byte, id uint32) *pqPrekey {
	list := s.pq
	if kind == kindOneTimePQ {
		list = s.oneTimePQ
	}
	for i := range list {
		if list[i].id == id {
			return &list[i]
		}
	}
	return nil
}

func (s *PrekeyState) findOneTime(id uint32) *dhPrekey {
	for i := range s.oneTime {
		if s.oneTime[i].id == id {
			return &s.oneTime[i]
		}
	}
	return nil
}

// consume deletes the one-time prekeys a completed handshake used.
func (s *PrekeyState) consume(oneTimeID uint32, pqKind byte, pqID uint32) {
	if oneTimeID != 0 {
		s.oneTime = deleteFunc(s.oneTime, func(k dhPrekey) bool { return k.id == oneTimeID })
	}
	if pqKind == kindOneTimePQ {
		s.oneTimePQ = deleteFunc(s.oneTimePQ, func(k pqPrekey) bool { return k.id == pqID })
	}
}

// deleteFunc returns a new slice without the matching elements (it never
// writes to the input's backing array, which a copied state may share).
func deleteFunc[T any](list []T, match func(T) bool) []T {
	out := make([]T, 0, len(list))
	for _, v := range list {
		if !match(v) {
			out = append(out, v)
		}
	}
	return out
}
