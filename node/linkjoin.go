package node

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// LinkedAccount is what Link joined.
type LinkedAccount struct {
	Account identity.AccountID
	Device  identity.DeviceID // this device
	Name    string            // this device's name
}

// LinkOptions are the new device's side of a link.
type LinkOptions struct {
	// Code is the code `callsign devices link` shows on a device of the
	// account.
	Code string
	// Name is what this device is called in the account's roster; "" =
	// the machine's host name.
	Name string
	// ConfirmSAS shows the six digits to the person and returns whether
	// they match the other device's. Required.
	ConfirmSAS func(ctx context.Context, sas string) (bool, error)
}

// Link makes the node on cfg.DataDir a new device of the account of
// another device, which shows opts.Code (docs/DEVICES.md §1): it dials that
// device, has the person compare the numbers both show, receives the
// account and, in one transaction, stores it with this device's own
// prekeys and roster entry, then hands that device its certificate. The
// node started on cfg.DataDir afterwards is the account's. The directory
// may be new, hold no account, or an account never used; any other is
// refused before anything is dialled. It holds the directory's lock
// meanwhile.
func Link(ctx context.Context, cfg Config, opts LinkOptions) (LinkedAccount, error) {
	if opts.ConfirmSAS == nil {
		panic("bug: node: Link without ConfirmSAS")
	}
	name := opts.Name
	if name == "" {
		name = defaultDeviceName()
	}
	if len(name) > devices.MaxDeviceName {
		return LinkedAccount{}, withHint(fmt.Errorf("device name of %d bytes", len(name)), fmt.Sprintf("use at most %d", devices.MaxDeviceName))
	}
	if _, err := devices.ParseLinkCode(opts.Code, time.Now()); err != nil {
		return LinkedAccount{}, withHint(err, "copy the whole code `callsign devices link` shows, within 10 minutes")
	}
	n, db, err := openOffline(ctx, cfg)
	if err != nil {
		return LinkedAccount{}, err
	}
	defer n.Close()
	defer db.Close()
	if err := checkRestored(db); err != nil {
		return LinkedAccount{}, err
	}
	dev, dh, err := deviceSecrets(db, n.cfg.DataDir)
	if err != nil {
		return LinkedAccount{}, err
	}
	var h host.Host
	if n.cfg.NewHost != nil {
		h, err = n.cfg.NewHost(dev)
	} else {
		h, err = p2p.NewHost(p2p.HostConfig{PrivKey: dev, Listen: []string{}, Logger: n.log.With("component", "p2p")})
	}
	if err != nil {
		return LinkedAccount{}, fmt.Errorf("start libp2p host: %w", err)
	}
	defer h.Close()
	var (
		out    LinkedAccount
		self   identity.AccountPub
		groups linkGroups
	)
	err = devices.Join(ctx, h, opts.Code, devices.JoinConfig{
		LinkConfig: devices.LinkConfig{Timeout: linkTimeout, Logger: n.log.With("component", "link")},
		ConfirmSAS: opts.ConfirmSAS,
		Linked: func(_ context.Context, b []byte) ([]byte, error) {
			p, err := storeLinked(db, h, dh, name, b)
			if err == nil {
				self = p.ak.Public()
				out = LinkedAccount{Account: self.ID(), Device: identity.DeviceIDOf(dh.PublicKey().Bytes()), Name: name}
			}
			return p.payload, err
		},
		History: func(_ context.Context, chunk []byte) error { return storeLinkHistory(db, chunk, &groups) },
	})
	if out.Account != "" {
		if gerr := groups.finish(db, self); gerr != nil {
			n.log.Warn("the groups the link brought were dropped; the other devices send them again", "err", gerr)
		}
	}
	if err != nil {
		if out.Account != "" {
			// The account is stored: the other device may not have taken
			// this one in, but this device publishes itself at its start.
			n.log.Warn("the link did not finish after the account was received", "err", err)
			return out, nil
		}
		return LinkedAccount{}, linkError(err)
	}
	return out, nil
}

// linkError adds the hint a person needs to a failed link.
func linkError(err error) error {
	switch {
	case errors.Is(err, devices.ErrLinkDeclined):
		return withHint(err, "run `callsign devices link` again on the other device and compare the numbers")
	case errors.Is(err, devices.ErrLinkSpent), errors.Is(err, devices.ErrLinkExpired), errors.Is(err, devices.ErrLinkWrongCode):
		return withHint(err, "run `callsign devices link` on the other device again and use its new code")
	case errors.Is(err, devices.ErrLinkMismatch):
		return withHint(err, "someone may be in the middle: link again with both devices side by side")
	}
	return withHint(err, "check that the other device is running and still shows the code")
}

// deviceSecrets makes sure db holds this device's keys and no account (one
// never used is discarded), and returns them.
func deviceSecrets(db *store.DB, dir string) (crypto.PrivKey, *ecdh.PrivateKey, error) {
	var dev crypto.PrivKey
	var dh *ecdh.PrivateKey
	err := db.Update(func(tx *store.Tx) error {
		s, err := tx.Secrets()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if s.AccountSeed != nil {
			if err := tx.DiscardUnusedAccount(); err != nil {
				ak, kerr := identity.AccountKeyFromSeed(s.AccountSeed)
				if kerr != nil {
					return kerr
				}
				return withHint(fmt.Errorf("the data directory %s already holds an account (%s) in use: %w", dir, ak.Public().ID(), err),
					"link into a new directory with --data DIR")
			}
			s = store.Secrets{}
		}
		if s.DeviceKey == nil {
			k, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				return err
			}
			if s.DeviceKey, err = crypto.MarshalPrivateKey(k); err != nil {
				return err
			}
		}
		if s.X25519 == nil {
			k, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			s.X25519 = k.Bytes()
		}
		if dev, err = crypto.UnmarshalPrivateKey(s.DeviceKey); err != nil {
			return fmt.Errorf("device key: %w", err)
		}
		if dh, err = ecdh.X25519().NewPrivateKey(s.X25519); err != nil {
			return fmt.Errorf("x25519 key: %w", err)
		}
		return tx.PutSecrets(s)
	})
	return dev, dh, err
}

// linkedPlan is what a new device keeps of a link (step 5's payload) and
// the answer it makes (step 6's), computed before anything is written, so
// that the writing can wait: the CLI writes at once, a running node after
// it stopped (node/linkweb.go).
type linkedPlan struct {
	account devices.LinkAccount
	ak      *identity.AccountKey
	roster  devices.Op // this device's own roster entry
	prekeys []byte     // this device's prekey state
	payload []byte     // step 6: devices.LinkedDevice
}

// prepareLinked reads step 5's payload b and makes this device's part:
// its certificate for peer pid and X25519 key dh, prekeys, and roster
// entry under name, stamped above every roster op of b.
func prepareLinked(pid peer.ID, dh *ecdh.PrivateKey, name string, b []byte) (*linkedPlan, error) {
	a, err := devices.UnmarshalLinkAccount(b)
	if err != nil {
		return nil, err
	}
	if a.Items[0].Kind != store.PortableAccountSeed {
		return nil, fmt.Errorf("%w: the account payload does not start with the account key", devices.ErrLinkFrame)
	}
	for _, it := range a.Items[1:] {
		if it.Kind == store.PortableAccountSeed {
			return nil, fmt.Errorf("%w: two account keys", devices.ErrLinkFrame)
		}
	}
	ak, err := identity.AccountKeyFromSeed(a.Items[0].Body)
	if err != nil {
		return nil, fmt.Errorf("%w: account key: %w", devices.ErrLinkFrame, err)
	}
	rawPID, err := pid.MarshalBinary()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	self := identity.DeviceIDOf(dh.PublicKey().Bytes())
	var clock uint64
	for _, op := range a.Roster {
		clock = max(clock, op.Stamp.Clock)
	}
	p := &linkedPlan{account: a, ak: ak}
	e := devices.RosterEntry{PeerID: rawPID, X25519: dh.PublicKey().Bytes(), Name: name, Added: now.UTC()}
	p.roster = devices.Op{Kind: devices.KindRoster, Key: self[:], Stamp: devices.Stamp{Clock: clock + 1, Origin: self}, Value: e.Marshal()}
	var ld devices.LinkedDevice
	ld.Roster = p.roster
	if p.prekeys, ld.Bundle, err = msg.NewDevicePrekeys(ak, dh, now); err != nil {
		return nil, err
	}
	if ld.Cert, err = identity.IssueDeviceCert(ak, rawPID, dh.PublicKey().Bytes(), now, now.Add(deviceCertTTL)); err != nil {
		return nil, err
	}
	if p.payload, err = ld.Marshal(); err != nil {
		return nil, err
	}
	return p, nil
}

// writeLinked stores p in tx, whose store holds this device's keys and no
// account: the account's seed and portable items, the roster with this
// device's entry, and its prekeys.
func writeLinked(tx *store.Tx, self identity.DeviceID, p *linkedPlan) error {
	s, err := tx.Secrets()
	if err != nil {
		return err
	}
	if s.AccountSeed != nil {
		return errors.New("the data directory holds an account already")
	}
	s.AccountSeed = p.ak.Seed()
	if err := tx.PutSecrets(s); err != nil {
		return err
	}
	for _, it := range p.account.Items[1:] {
		if err := tx.ImportPortable(it.Kind, it.Body); err != nil {
			return err
		}
	}
	// Auto-answer and its recording folder belong to the device that
	// showed the code (a home server's), not to this one.
	if cs, err := tx.CallSettings(); err == nil && (cs.AutoAnswer || cs.RecordDir != "") {
		cs.AutoAnswer, cs.RecordDir = false, ""
		if err := tx.PutCallSettings(cs); err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	r := devices.NewReplica(self, nil)
	if _, err := r.Apply(tx, append(slices.Clone(p.account.Roster), p.roster)); err != nil {
		return err
	}
	return tx.PutPrekeys(p.prekeys)
}

// storeLinked takes step 5's payload b into db in one transaction (see
// prepareLinked and writeLinked). It returns step 6's payload for the
// other device and the account.
func storeLinked(db *store.DB, h host.Host, dh *ecdh.PrivateKey, name string, b []byte) (*linkedPlan, error) {
	p, err := prepareLinked(h.ID(), dh, name, b)
	if err != nil {
		return &linkedPlan{}, err
	}
	self := identity.DeviceIDOf(dh.PublicKey().Bytes())
	if err := db.Update(func(tx *store.Tx) error { return writeLinked(tx, self, p) }); err != nil {
		return &linkedPlan{}, err
	}
	return p, nil
}

// storeLinkHistory stores one history chunk of step 7 in one transaction,
// each item checked as a backup's is: conversations and messages, and the
// operations and messages of the account's groups; the groups' records
// wait in groups for the end of the link (linkGroups.finish).
func storeLinkHistory(db *store.DB, chunk []byte, groups *linkGroups) error {
	items, err := devices.UnmarshalLinkHistory(chunk)
	if err != nil {
		return err
	}
	return db.Update(func(tx *store.Tx) error {
		for i, it := range items {
			var err error
			switch {
			case it.Kind == store.PortableConversation || it.Kind == store.PortableMessage:
				err = msg.ImportHistory(tx, it.Kind, it.Body)
			case it.Kind == store.PortableGroup:
				if len(groups.recs) == maxLinkGroups {
					return fmt.Errorf("%w: more than %d groups", devices.ErrLinkFrame, maxLinkGroups)
				}
				groups.recs = append(groups.recs, bytes.Clone(it.Body))
			case groupchat.IsBackupKind(it.Kind):
				err = groupchat.ImportBackup(tx, it.Kind, it.Body)
			default:
				return fmt.Errorf("%w: history item %d of kind %d", devices.ErrLinkFrame, i+1, it.Kind)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// maxLinkGroups bounds the group records one link brings.
const maxLinkGroups = 4096

// linkGroups is what a link's history brought of the account's groups:
// their operations and messages are stored as they come, their records
// when the history is over, each group checked whole then
// (groupchat.FinishImport) as a restore checks it. Groups that do not
// check out are dropped, all of them: the device is new, the groups' data
// is the link's alone, and its siblings send it the groups' logs again
// once it runs (groupchat.ShareWithSiblings).
type linkGroups struct {
	recs [][]byte // store.PortableGroup items
}

// forgetBatch is how many keys of groups one transaction deletes when
// linkGroups drops them.
const forgetBatch = 1024

func (g *linkGroups) finish(db *store.DB, self identity.AccountPub) error {
	err := db.Update(func(tx *store.Tx) error {
		for _, b := range g.recs {
			if err := groupchat.ImportBackup(tx, store.PortableGroup, b); err != nil {
				return err
			}
		}
		return groupchat.FinishImport(tx, self)
	})
	if err == nil {
		return nil
	}
	for more := true; more; {
		if ferr := db.Update(func(tx *store.Tx) (ferr error) {
			more, ferr = groupchat.ForgetAll(tx, forgetBatch)
			return ferr
		}); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}
