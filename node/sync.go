package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// The account's shared state between its devices (docs/DEVICES.md §2.2):
// a change a person makes here — a contact added, renamed, blocked,
// followed, verified or removed, the call settings, a call this device
// made — is stamped in this device's replica in the transaction that
// makes it, and kept as a pending op; the sync loop hands the pending ops
// to msg (QueueSync), which sends them to every sibling through the
// outbox. A sibling applies them (onSync) with the replica's merge rules,
// so every device that has seen the same changes shows the same.

// newReplica is this device's replica, with what makes a sibling's change
// take effect here.
func (n *Node) newReplica() *devices.Replica {
	var r *devices.Replica
	contact := func(tx *store.Tx, op devices.Op) error { return n.applyContact(tx, r, op.Key) }
	r = devices.NewReplica(n.deviceID(), map[devices.Kind]devices.Applier{
		devices.KindContactName:    contact,
		devices.KindContactTrust:   contact,
		devices.KindContactFlags:   contact,
		devices.KindContactRemoved: contact,
		devices.KindCallSettings:   applyCallSettings,
		devices.KindCallRecord:     applyCallRecord,
	})
	return r
}

// applyContact makes the contact key names what the newest of its
// registers say: removed when the removal is the newest, else each group
// newer than any removal.
func (n *Node) applyContact(tx *store.Tx, r *devices.Replica, key []byte) error {
	var ops [4]devices.Op
	var held [4]bool
	for i, k := range []devices.Kind{devices.KindContactName, devices.KindContactTrust, devices.KindContactFlags, devices.KindContactRemoved} {
		var err error
		if ops[i], held[i], err = r.Get(tx, k, key); err != nil {
			return err
		}
	}
	var s contacts.Synced
	groups := []*[]byte{&s.Name, &s.Trust, &s.Flags}
	newest := -1
	for i := range 3 {
		if held[i] && (!held[3] || ops[i].Stamp.Compare(ops[3].Stamp) > 0) {
			// An empty value (every flag off) is held all the same.
			*groups[i] = append([]byte{}, ops[i].Value...)
			if newest < 0 || ops[i].Stamp.Compare(ops[newest].Stamp) > 0 {
				newest = i
			}
		}
	}
	s.Removed = held[3] && newest < 0
	changed, err := n.contacts.ApplySynced(tx, string(key), s)
	if changed {
		n.sync.contactsChanged.Store(true)
	}
	return err
}

// syncedCallSettings is what of the call settings the devices share: who
// may ring and always relaying; auto-answer and its recording directory
// are this device's own.
func syncedCallSettings(s store.CallSettings) store.CallSettings {
	return store.CallSettings{Policy: s.Policy, AlwaysRelay: s.AlwaysRelay, Rules: s.Rules}
}

func applyCallSettings(tx *store.Tx, op devices.Op) error {
	in, err := store.UnmarshalCallSettings(op.Value)
	if err != nil {
		return err
	}
	if !contacts.ValidCallPolicy(in.Policy) {
		return fmt.Errorf("%w: call policy %q", store.ErrInvalid, in.Policy)
	}
	for acct, rule := range in.Rules {
		if _, err := identity.ParseAccountID(acct); err != nil || (rule != "allow" && rule != "deny") {
			return fmt.Errorf("%w: call rule %q for %q", store.ErrInvalid, rule, acct)
		}
	}
	cur, err := tx.CallSettings()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	in.AutoAnswer, in.RecordDir = cur.AutoAnswer, cur.RecordDir
	return tx.PutCallSettings(in)
}

// applyCallRecord logs a call a sibling made; its key (the start and the
// id) makes the same call one entry however often it comes.
func applyCallRecord(tx *store.Tx, op devices.Op) error {
	c, err := store.UnmarshalCall(op.Value)
	if err != nil {
		return err
	}
	if c.ID != string(op.Key) || c.Direction != "out" {
		return fmt.Errorf("%w: a call record for another id, or of a call not made", store.ErrInvalid)
	}
	if _, err := identity.ParseAccountID(c.Peer); err != nil {
		return fmt.Errorf("%w: a call record with peer %q: %v", store.ErrInvalid, c.Peer, err)
	}
	return tx.PutCall(c)
}

// syncState is the node's side of the sync: the loop's wake-up, and what
// the last batches applied changed, for the web app.
type syncState struct {
	kick            chan struct{} // buffered 1
	contactsChanged atomic.Bool
}

// startSync hooks the address book's changes and runs the loop that hands
// pending ops to msg. After startMsg.
func (n *Node) startSync() {
	n.contacts.OnChange(n.contactChanged, n.kickSync)
	n.kickSync() // what a previous run left pending
	n.wg.Go(n.syncLoop)
}

func (n *Node) kickSync() {
	select {
	case n.sync.kick <- struct{}{}:
	default:
	}
}

// contactChanged stamps the groups of a contact a person changed here.
func (n *Node) contactChanged(tx *store.Tx, old, c *store.Contact) error {
	r := n.repl
	if c == nil {
		return r.Changed(tx, devices.KindContactRemoved, []byte(old.Account), nil)
	}
	nn, nt, nf := contacts.Groups(*c)
	var on, ot, of []byte
	if old != nil {
		on, ot, of = contacts.Groups(*old)
	}
	// A contact added sends every group: one removed before and added
	// again starts afresh on every device too.
	for _, g := range []struct {
		kind     devices.Kind
		old, new []byte
	}{{devices.KindContactTrust, ot, nt}, {devices.KindContactName, on, nn}, {devices.KindContactFlags, of, nf}} {
		if old == nil || !bytes.Equal(g.old, g.new) {
			if err := r.Changed(tx, g.kind, []byte(c.Account), g.new); err != nil {
				return err
			}
		}
	}
	return nil
}

// callSettingsChanged stamps call settings a person changed here, when
// what the devices share of them changed.
func (n *Node) callSettingsChanged(tx *store.Tx, old, s store.CallSettings) error {
	b, err := store.MarshalCallSettings(syncedCallSettings(s))
	if err != nil {
		return err
	}
	if was, err := store.MarshalCallSettings(syncedCallSettings(old)); err == nil && bytes.Equal(was, b) {
		return nil
	}
	return n.repl.Changed(tx, devices.KindCallSettings, nil, b)
}

// callMade hands a call this device made to its siblings' logs. A device
// alone in its account keeps nothing for them: a call is an event, not a
// register a device linked later could be sent.
func (n *Node) callMade(tx *store.Tx, c store.Call) error {
	if c.Direction != "out" {
		return nil
	}
	_, entries, err := n.repl.Roster(tx)
	if err != nil {
		return err
	}
	self := n.deviceID()
	if !slices.ContainsFunc(entries, func(e devices.RosterEntry) bool { return !e.Revoked() && e.DeviceID() != self }) {
		return nil
	}
	b, err := store.MarshalCall(c)
	if err != nil {
		return err
	}
	return n.repl.Changed(tx, devices.KindCallRecord, []byte(c.ID), b)
}

// syncLoop hands the pending ops to msg whenever there are new ones, and
// every register to a sibling msg has just learnt of.
func (n *Node) syncLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.sync.kick:
		}
		_, err := n.msg.QueueSync(nil, func(tx *store.Tx) ([][]byte, error) {
			return n.repl.TakePending(tx, msg.MaxSyncBatch)
		})
		if err != nil && n.ctx.Err() == nil {
			n.log.Warn("handing changes to this account's other devices", "err", err)
		}
		// Not queued (the siblings are not known yet): onSiblings kicks
		// again once they are.
	}
}

// onSiblings is msg's word that this account's record was looked up: the
// pending ops can go; a device that appeared since the last look-up gets
// every register this one holds, so changes made before it was known
// reach it too.
func (n *Node) onSiblings(added []identity.DeviceID, first bool) {
	n.kickSync()
	if first || len(added) == 0 {
		return
	}
	_, err := n.msg.QueueSync(added, func(tx *store.Tx) ([][]byte, error) {
		ops, err := n.repl.All(tx)
		if err != nil {
			return nil, err
		}
		return devices.Batches(ops, msg.MaxSyncBatch)
	})
	if err != nil && n.ctx.Err() == nil {
		n.log.Warn("sending a new device of the account what this one holds", "err", err)
	}
	// And the groups this account is in: the new device joins them too.
	if err := n.groups.ShareWithSiblings(n.ctx); err != nil && n.ctx.Err() == nil {
		n.log.Warn("sending a new device of the account its groups", "err", err)
	}
}

// onSync applies a sync batch a sibling sent.
func (n *Node) onSync(batch []byte) error {
	ops, err := devices.UnmarshalBatch(batch)
	if err != nil {
		return err
	}
	var settings, calls bool
	for _, op := range ops {
		settings = settings || op.Kind == devices.KindCallSettings
		calls = calls || op.Kind == devices.KindCallRecord
	}
	if err := n.db.Update(func(tx *store.Tx) error {
		_, err := n.repl.Apply(tx, ops)
		return err
	}); err != nil {
		return err
	}
	if settings && n.callCfg != nil {
		if err := n.callCfg.reload(); err != nil {
			n.log.Warn("reading the call settings a sibling changed", "err", err)
		}
	}
	synced := api.Synced{Contacts: n.sync.contactsChanged.Swap(false), CallSettings: settings, Calls: calls}
	if b := n.backend.Load(); b != nil && (synced.Contacts || synced.CallSettings || synced.Calls) {
		b.Synced(synced)
	}
	return nil
}
