package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// GeneratePeerKey returns a new Ed25519 libp2p private key (a device key).
func GeneratePeerKey() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	return k, err
}

// MarshalPeerKey encodes a private key for storage (libp2p's protobuf key
// encoding). The bytes are secret.
func MarshalPeerKey(k crypto.PrivKey) ([]byte, error) {
	if k == nil {
		return nil, errors.New("marshal peer key: nil key")
	}
	return crypto.MarshalPrivateKey(k)
}

// PeerKeyFromBytes decodes a key produced by MarshalPeerKey. Only Ed25519
// keys are accepted.
func PeerKeyFromBytes(b []byte) (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("decode peer key: %w", err)
	}
	if k.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("decode peer key: type %v, want Ed25519", k.Type())
	}
	return k, nil
}
