package store

import (
	"errors"
	"fmt"

	"github.com/callsign/callsign/internal/wire"
)

// Portable items are what of an account a backup carries to a new device
// (docs/DEVICES.md §5), each in the store's own value form: the account
// key's seed, the handles it holds (with the nonces that keep them without
// a new proof of work), the address book, the call settings, the settings
// and the community nodes it joins through. Not carried: the device's
// keys, sessions, prekeys, group sender keys and the outbox (a restore is
// a new device), nor what belongs to this machine (listen ports, the folder
// calls are recorded to).
const (
	PortableAccountSeed  byte = 1
	PortableClaim        byte = 2
	PortableContact      byte = 3
	PortableCallSettings byte = 4
	PortableSetting      byte = 5
	PortableBootstrap    byte = 6
	// The history, in a backup made with messages: msg's conversations and
	// messages in msg's own stored forms (msg.ExportHistory,
	// msg.ImportHistory); ImportPortable does not take them.
	PortableConversation byte = 7
	PortableMessage      byte = 8
	// The groups the account joined or is invited to: their logs'
	// operations and records, and with messages their messages, in
	// groupchat's stored forms (groupchat.ExportBackup, ImportBackup);
	// ImportPortable does not take them.
	PortableGroupOp      byte = 9
	PortableGroup        byte = 10
	PortableGroupMessage byte = 11
)

// maxPortableSetting caps a setting's value in a backup.
const maxPortableSetting = 1 << 20

// ErrPortableKind means an item of a kind this build does not know: a
// backup made by a newer callsign.
var ErrPortableKind = errors.New("backup item of an unknown kind")

// ExportPortable calls fn with every portable item, the account seed first;
// it is ErrNotFound when the store holds no account.
func (tx *Tx) ExportPortable(fn func(kind byte, body []byte) error) error {
	sec, err := tx.Secrets()
	if err != nil {
		return err
	}
	if len(sec.AccountSeed) == 0 {
		return fmt.Errorf("no account to back up: %w", ErrNotFound)
	}
	if err := fn(PortableAccountSeed, sec.AccountSeed); err != nil {
		return err
	}
	claims, err := tx.Claims()
	if err != nil {
		return err
	}
	for i := range claims {
		if err := export(fn, PortableClaim, &claims[i], marshalClaim); err != nil {
			return err
		}
	}
	contacts, err := tx.Contacts()
	if err != nil {
		return err
	}
	for i := range contacts {
		if err := export(fn, PortableContact, &contacts[i], marshalContact); err != nil {
			return err
		}
	}
	cs, err := tx.CallSettings()
	switch {
	case err == nil:
		cs.RecordDir = "" // a folder on this machine
		if err := export(fn, PortableCallSettings, &cs, marshalCallSettings); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	settings, err := tx.Settings()
	if err != nil {
		return err
	}
	for name, value := range settings {
		var e wire.Encoder
		e.String(1, name)
		e.Bytes(2, value)
		if err := fn(PortableSetting, e.B); err != nil {
			return err
		}
	}
	boots, err := tx.Bootstraps()
	if err != nil {
		return err
	}
	for _, b := range boots {
		if err := fn(PortableBootstrap, []byte(b)); err != nil {
			return err
		}
	}
	return nil
}

func export[T any](fn func(byte, []byte) error, kind byte, v *T, enc func(*T) ([]byte, error)) error {
	b, err := enc(v)
	if err != nil {
		return err
	}
	return fn(kind, b)
}

// ImportPortable stores one item ExportPortable gave, checked as strictly
// as the store reads its own values: a malformed item is ErrInvalid, one
// of a kind this build does not know ErrPortableKind, and nothing is
// written for either. An account seed is taken only into a store that
// holds none.
func (tx *Tx) ImportPortable(kind byte, body []byte) error {
	bad := func(what string, err error) error { return fmt.Errorf("%w: backup %s: %v", ErrInvalid, what, err) }
	switch kind {
	case PortableAccountSeed:
		if len(body) != 32 {
			return bad("account key", fmt.Errorf("a seed of %d bytes", len(body)))
		}
		sec, err := tx.Secrets()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if sec.AccountSeed != nil || sec.DeviceKey != nil || sec.X25519 != nil {
			return fmt.Errorf("%w: the store already holds an account", ErrInvalid)
		}
		sec.AccountSeed = append([]byte(nil), body...)
		return tx.PutSecrets(sec)
	case PortableClaim:
		c, err := unmarshalClaim(body)
		if err != nil {
			return bad("handle", err)
		}
		return tx.PutClaim(c)
	case PortableContact:
		c, err := unmarshalContact(body)
		if err != nil {
			return bad("contact", err)
		}
		return tx.PutContact(c)
	case PortableCallSettings:
		s, err := unmarshalCallSettings(body)
		if err != nil {
			return bad("call settings", err)
		}
		return tx.PutCallSettings(s)
	case PortableSetting:
		d := newReader(body)
		name := d.String(1, 1, maxIDLen)
		value := d.Bytes(2, 0, maxPortableSetting)
		if err := d.End(); err != nil {
			return bad("setting", err)
		}
		return tx.PutSetting(name, value)
	case PortableBootstrap:
		return tx.AddBootstrap(string(body))
	}
	return fmt.Errorf("%w (%d): made by a newer callsign", ErrPortableKind, kind)
}
