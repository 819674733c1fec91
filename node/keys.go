package node

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// keys are the node's long-term secrets: the account key, the device's
// libp2p key and its X25519 E2E identity key. (The msg service keeps the
// prekeys.)
type keys struct {
	account *identity.AccountKey
	device  crypto.PrivKey
	x25519  *ecdh.PrivateKey
}

// loadKeys reads the secrets from the store, creating any that are missing
// (the first run creates the identity) in one transaction.
func loadKeys(db *store.DB, log *slog.Logger) (*keys, error) {
	var k keys
	err := db.Update(func(tx *store.Tx) error {
		s, err := tx.Secrets()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		created := false
		if s.AccountSeed == nil {
			ak, err := identity.GenerateAccountKey(nil)
			if err != nil {
				return err
			}
			s.AccountSeed, created = ak.Seed(), true
		}
		if k.account, err = identity.AccountKeyFromSeed(s.AccountSeed); err != nil {
			return fmt.Errorf("account key: %w", err)
		}
		if s.DeviceKey == nil {
			dk, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				return err
			}
			if s.DeviceKey, err = crypto.MarshalPrivateKey(dk); err != nil {
				return err
			}
			created = true
		}
		if k.device, err = crypto.UnmarshalPrivateKey(s.DeviceKey); err != nil {
			return fmt.Errorf("device key: %w", err)
		}
		if s.X25519 == nil {
			xk, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			s.X25519, created = xk.Bytes(), true
		}
		if k.x25519, err = ecdh.X25519().NewPrivateKey(s.X25519); err != nil {
			return fmt.Errorf("x25519 key: %w", err)
		}
		if created {
			log.Info("created identity", "account", k.account.Public().ID())
			return tx.PutSecrets(s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	return &k, nil
}
