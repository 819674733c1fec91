package groupchat

import (
	"bytes"
	"fmt"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

// Groups in a backup (docs/DEVICES.md §5): a restored device is a new
// device of its account, and the devices that could tell it of the
// account's groups (ShareWithSiblings) are the ones it replaces. So a
// backup carries each group the account joined or is invited to, in the
// store's own value forms:
//
//	store.PortableGroupOp       an operation of its log (group.Op), branches that lost included
//	store.PortableGroup         field 1 the group's id (16), field 2 its record (rec)
//	store.PortableGroupMessage  field 1 the group's id (16), field 2 a message (stored);
//	                            in a backup made with messages only
//
// Not carried: this device's sender keys and the members' (a new device
// makes its own and asks the members for theirs: askKeyLocked), carriers
// waiting for what precedes them, and the early actions.

// ExportBackup calls fn with the portable items of every group this
// account joined or is invited to, each group's operations before its
// record; with messages, its messages too.
func ExportBackup(tx *store.Tx, messages bool, fn func(kind byte, body []byte) error) error {
	return exportGroups(tx, messages, time.Time{}, fn)
}

// ExportLinkHistory is ExportBackup for a device being linked
// (docs/DEVICES.md §1), with the messages that arrived at or after since:
// the new device is a member at once and shows the groups' recent
// messages, as it shows the conversations'.
func ExportLinkHistory(tx *store.Tx, since time.Time, fn func(kind byte, body []byte) error) error {
	return exportGroups(tx, true, since, fn)
}

func exportGroups(tx *store.Tx, messages bool, since time.Time, fn func(kind byte, body []byte) error) error {
	d := in(tx)
	all, err := d.recs(func(err error) error { return err })
	if err != nil {
		return err
	}
	for _, kg := range all {
		if kg.r.status != Joined && kg.r.status != Invited {
			continue
		}
		ops, err := d.ops(kg.g)
		if err != nil {
			return err
		}
		for _, o := range ops {
			if err := fn(store.PortableGroupOp, o.Marshal()); err != nil {
				return err
			}
		}
		r := kg.r
		r.pending = 0 // the carriers it counts stay behind
		if err := fn(store.PortableGroup, groupItem(kg.g, r.marshal())); err != nil {
			return err
		}
		if !messages {
			continue
		}
		// Each as the restore will check it: a damaged one fails the
		// backup here, not its restore.
		var start []byte
		if !since.IsZero() {
			start = key(pfxMsg, kg.g[:], be64(uint64(since.UnixNano())))
		}
		err = d.sp.Scan(key(pfxMsg, kg.g[:]), start, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
			b, err := val()
			if err != nil {
				return false, err
			}
			m, err := unmarshalStored(b)
			if err != nil {
				return false, store.Corrupt(k, err)
			}
			return true, fn(store.PortableGroupMessage, groupItem(kg.g, m.marshal()))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func groupItem(g group.ID, value []byte) []byte {
	var e wire.Encoder
	e.Bytes(1, g[:])
	e.Bytes(2, value)
	return e.B
}

// maxItemValue caps the value in a group's backup item: a record or a
// message (whose text, file reference and receipts are capped each).
const maxItemValue = 1 << 20

// IsBackupKind reports whether a backup item of kind is a group's:
// ImportBackup takes it.
func IsBackupKind(kind byte) bool {
	return kind == store.PortableGroupOp || kind == store.PortableGroup || kind == store.PortableGroupMessage
}

// ImportBackup stores one item ExportBackup gave, checked as strictly as
// the store reads its own values (an operation's signature included): a
// malformed one is store.ErrInvalid and nothing is written for it. Whether
// each group's log is whole and names the account is FinishImport's to
// check, once every item is in. An item stored already is stored again,
// unchanged: a restore run again adds nothing twice.
func ImportBackup(tx *store.Tx, kind byte, body []byte) error {
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: backup %s: %v", store.ErrInvalid, what, err)
	}
	d := in(tx)
	if kind == store.PortableGroupOp {
		o, err := group.Unmarshal(body)
		if err != nil {
			return bad("group operation", err)
		}
		return d.putOp(o)
	}
	if kind != store.PortableGroup && kind != store.PortableGroupMessage {
		return fmt.Errorf("%w (%d): not a group's item", store.ErrPortableKind, kind)
	}
	dec := wire.NewDecoder(body, errCorrupt)
	var g group.ID
	copy(g[:], dec.Fixed(1, len(g)))
	value := dec.Bytes(2, 1, maxItemValue)
	if err := dec.End(); err != nil {
		return bad("group item", err)
	}
	if kind == store.PortableGroup {
		r, err := unmarshalRec(value)
		if err == nil && r.status != Joined && r.status != Invited {
			err = fmt.Errorf("status %v", r.status)
		}
		if err != nil {
			return bad("group", err)
		}
		r.pending = 0
		return d.putRec(g, r)
	}
	m, err := unmarshalStored(value)
	if err == nil {
		if _, perr := identity.ParseAccountID(string(m.from)); perr != nil {
			err = fmt.Errorf("its sender: %w", perr)
		}
	}
	if err != nil {
		return bad("group message", err)
	}
	return d.putMessage(g, m)
}

// FinishImport checks, after the last item went in, what ImportBackup
// could not check one item at a time: each group's log loads whole and,
// for a group self joined or is invited to, names self a member; every
// operation and message belongs to a group of the backup. Anything else
// is store.ErrInvalid.
func FinishImport(tx *store.Tx, self identity.AccountPub) error {
	d := in(tx)
	all, err := d.recs(func(err error) error { return err })
	if err != nil {
		return err
	}
	groups := map[group.ID]bool{}
	for _, gr := range all {
		groups[gr.g] = true
	}
	for g := range groups {
		ops, err := d.ops(g)
		if err != nil {
			return err
		}
		l, err := group.Load(ops)
		if err != nil {
			return fmt.Errorf("%w: backup: group %v: %v", store.ErrInvalid, g, err)
		}
		if l.ID() != g {
			return fmt.Errorf("%w: backup: group %v holds the log of %v", store.ErrInvalid, g, l.ID())
		}
		if _, ok := l.State().Member(self); !ok {
			return fmt.Errorf("%w: backup: group %v does not name its account", store.ErrInvalid, g)
		}
	}
	if err := d.ofGroups(pfxOp, "an operation", groups); err != nil {
		return err
	}
	return d.ofGroups(pfxMsg, "a message", groups)
}

// ForgetAll deletes at most max of the items of every group from tx's
// store (what ImportBackup stored, and anything else of groups), and
// reports whether any are left: a device whose link brought groups that
// do not check out (FinishImport) drops them, in transactions of max,
// and its siblings send it the groups' logs again (ShareWithSiblings).
func ForgetAll(tx *store.Tx, max int) (more bool, err error) {
	d := in(tx)
	var keys [][]byte
	err = d.sp.Scan(pfxAll, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		if len(keys) == max {
			more = true
			return false, nil
		}
		keys = append(keys, bytes.Clone(k))
		return true, nil
	})
	for _, k := range keys {
		if err == nil {
			err = d.sp.Delete(k)
		}
	}
	return more, err
}

// ofGroups checks that every key under pfx names one of groups.
func (d data) ofGroups(pfx []byte, what string, groups map[group.ID]bool) error {
	return d.sp.Scan(pfx, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		n := len(pfx) + len(group.ID{})
		if len(k) < n || !groups[group.ID(k[len(pfx):n])] {
			return false, fmt.Errorf("%w: backup: %s of a group it does not hold", store.ErrInvalid, what)
		}
		return true, nil
	})
}
