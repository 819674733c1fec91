package e2e

import (
	"bytes"
	"crypto/mlkem"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Wire constants; the layouts are in the package doc.
const (
	// Version is the first byte of every message this package emits.
	Version byte = 1

	typeMessage byte = 1
	typeInitial byte = 2

	// MaxPlaintext is the largest plaintext Encrypt accepts (64 KiB).
	MaxPlaintext = 64 << 10

	headerSize = 2 + keySize + 4 + 4
	tagSize    = chacha20poly1305.Overhead

	// MaxMessageSize is the largest ratchet message: header, MaxPlaintext
	// and the 16-byte tag.
	MaxMessageSize = headerSize + MaxPlaintext + tagSize

	initialPrefixSize = 2 + keySize + sigSize + keySize + 4 + 1 + 4 + 4 + mlkem.CiphertextSize768

	// MaxInitialMessageSize is the largest initial message: the handshake
	// prefix and a ratchet message.
	MaxInitialMessageSize = initialPrefixSize + MaxMessageSize
)

type header struct {
	dh     [keySize]byte
	pn, n  uint32
	encode []byte // the headerSize bytes as sent, part of the AEAD data
}

func appendHeader(b []byte, dh []byte, pn, n uint32) []byte {
	b = append(b, Version, typeMessage)
	b = append(b, dh...)
	b = binary.BigEndian.AppendUint32(b, pn)
	return binary.BigEndian.AppendUint32(b, n)
}

// parseMessage splits a ratchet message into its header and ciphertext.
func parseMessage(b []byte) (header, []byte, error) {
	var h header
	if len(b) < headerSize+tagSize {
		return h, nil, fmt.Errorf("%w: message of %d bytes is too short", ErrMalformed, len(b))
	}
	if len(b) > MaxMessageSize {
		return h, nil, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrMalformed, len(b), MaxMessageSize)
	}
	if b[0] != Version {
		return h, nil, fmt.Errorf("%w: unsupported version %d", ErrMalformed, b[0])
	}
	if b[1] != typeMessage {
		return h, nil, fmt.Errorf("%w: message type %d, want %d", ErrMalformed, b[1], typeMessage)
	}
	copy(h.dh[:], b[2:2+keySize])
	h.pn = binary.BigEndian.Uint32(b[2+keySize:])
	h.n = binary.BigEndian.Uint32(b[2+keySize+4:])
	h.encode = b[:headerSize]
	return h, b[headerSize:], nil
}

// initialMessage is the parsed handshake prefix of an initial message.
type initialMessage struct {
	ik     []byte // initiator's X25519 identity key
	ikSig  []byte // initiator's account signature over ik
	ek     []byte // ephemeral key
	spkID  uint32
	pqKind byte // kindPQPrekey or kindOneTimePQ
	pqID   uint32
	otID   uint32 // 0: no one-time prekey used
	ct     []byte // ML-KEM-768 ciphertext
	prefix []byte // the initialPrefixSize bytes
	msg    []byte // the ratchet message that follows
}

func (m *initialMessage) appendPrefix(b []byte) []byte {
	b = append(b, Version, typeInitial)
	b = append(b, m.ik...)
	b = append(b, m.ikSig...)
	b = append(b, m.ek...)
	b = binary.BigEndian.AppendUint32(b, m.spkID)
	b = append(b, m.pqKind)
	b = binary.BigEndian.AppendUint32(b, m.pqID)
	b = binary.BigEndian.AppendUint32(b, m.otID)
	return append(b, m.ct...)
}

func parseInitial(b []byte) (*initialMessage, error) {
	if len(b) < initialPrefixSize+headerSize+tagSize {
		return nil, fmt.Errorf("%w: initial message of %d bytes is too short", ErrMalformed, len(b))
	}
	if len(b) > MaxInitialMessageSize {
		return nil, fmt.Errorf("%w: initial message of %d bytes exceeds %d", ErrMalformed, len(b), MaxInitialMessageSize)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrMalformed, b[0])
	}
	if b[1] != typeInitial {
		return nil, fmt.Errorf("%w: message type %d, want %d", ErrMalformed, b[1], typeInitial)
	}
	m := &initialMessage{prefix: b[:initialPrefixSize], msg: b[initialPrefixSize:]}
	p := b[2:initialPrefixSize]
	take := func(n int) []byte { v := p[:n:n]; p = p[n:]; return v }
	m.ik = take(keySize)
	m.ikSig = take(sigSize)
	m.ek = take(keySize)
	m.spkID = binary.BigEndian.Uint32(take(4))
	m.pqKind = take(1)[0]
	m.pqID = binary.BigEndian.Uint32(take(4))
	m.otID = binary.BigEndian.Uint32(take(4))
	m.ct = take(mlkem.CiphertextSize768)
	if m.spkID == 0 || m.pqID == 0 {
		return nil, fmt.Errorf("%w: initial message: zero prekey id", ErrMalformed)
	}
	if m.pqKind != kindPQPrekey && m.pqKind != kindOneTimePQ {
		return nil, fmt.Errorf("%w: initial message: pq prekey kind %d", ErrMalformed, m.pqKind)
	}
	if _, _, err := parseMessage(m.msg); err != nil {
		return nil, fmt.Errorf("initial message: %w", err)
	}
	return m, nil
}

// messageType returns the type byte of a message, or an error.
func messageType(b []byte) (byte, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: message of %d bytes is too short", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return 0, fmt.Errorf("%w: unsupported version %d", ErrMalformed, b[0])
	}
	if b[1] != typeMessage && b[1] != typeInitial {
		return 0, fmt.Errorf("%w: unknown message type %d", ErrMalformed, b[1])
	}
	return b[1], nil
}

// IsInitial reports whether msg is shaped like an initial message (a first
// contact that starts a session) rather than a ratchet message, without
// decrypting it: the node can route first contacts to message requests.
func IsInitial(msg []byte) bool {
	typ, err := messageType(msg)
	return err == nil && typ == typeInitial
}

// InitialPrekeys names the recipient's prekeys an initial message used.
type InitialPrekeys struct {
	SignedPrekey uint32 // id of SPK_B
	PQPrekey     uint32 // id of the PQ prekey
	PQOneTime    bool   // the PQ prekey is a one-time one (PQOPK), not PQSPK
	OneTime      uint32 // id of OPK_B, 0 if none
}

// ParseInitialPrekeys reports which of the recipient's prekeys an initial
// message (see the package doc) used; a message that is not a well-formed
// initial message is ErrMalformed. It checks no signature or key.
func ParseInitialPrekeys(msg []byte) (InitialPrekeys, error) {
	m, err := parseInitial(msg)
	if err != nil {
		return InitialPrekeys{}, err
	}
	return InitialPrekeys{SignedPrekey: m.spkID, PQPrekey: m.pqID, PQOneTime: m.pqKind == kindOneTimePQ, OneTime: m.otID}, nil
}

// InitiatorKey returns the X25519 identity key (IK_A) the sender of an initial message
// started its session with, so that the receiver can check it is the key of the device
// that sent it; a message that is not a well-formed initial message is ErrMalformed. It
// checks no signature: AcceptSession does.
func InitiatorKey(msg []byte) ([]byte, error) {
	m, err := parseInitial(msg)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(m.ik), nil
}
