package msg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// An outgoing text message's place in the outbox is one copy per device of
// the peer it is queued for: dq/<peer>\0<dev:8>\0<id> holds the copy's
// sealed envelope (empty: not sealed yet), and the message's index entry
// (storecodec.go, msgIndex kind 3) names the devices. Queuing writes the
// message, its index entry and the copies; an acknowledgement deletes the
// device's copy and rewrites the index entry with the new state. The out/
// entries (OutboxEntry) are left to control messages, which have no
// message entry of their own. Start-up reads dq/, which holds only what
// waits (store schema 9; schemas 6 to 8 kept the one envelope in the index
// entry and found the queued messages from a queue start, qstart/<peer>).
// A copy under the zero device waits for the peer's device to be known.

// QueuedMessage is a queued outgoing message's copy for one device of the
// peer, as start-up lists them.
type QueuedMessage struct {
	Peer string
	Dev  identity.DeviceID
	ID   string
	At   time.Time
}

// queueKey is dq/<peer>\0<dev>\0<id>.
func queueKey(peer string, dev identity.DeviceID, id string) []byte {
	return key(pfxQueue, []byte(peer), sep, dev[:], sep, []byte(id))
}

// Queued lists every queued message's copies, with the messages' times.
// A copy that is damaged, or whose message is missing or not queued, is
// logged and passed over (a damaged one would fail every attempt to send
// it, and hold up the peer's queue).
func (d *Data) Queued() ([]QueuedMessage, error) {
	var out []QueuedMessage
	err := d.kv.Scan(pfxQueue, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		_, err := val()
		q := QueuedMessage{}
		if err == nil {
			q, err = d.queuedCopy(k)
		}
		if d.passOver(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, q)
		return true, nil
	})
	return out, err
}

// queuedCopy parses a dq/ key and reads its message's time from the
// index, which must name the copy's device.
func (d *Data) queuedCopy(k []byte) (QueuedMessage, error) {
	peer, rest, ok := bytes.Cut(k[len(pfxQueue):], sep)
	if !ok || len(peer) == 0 || len(rest) < identity.DeviceIDSize+2 || rest[identity.DeviceIDSize] != 0 {
		return QueuedMessage{}, store.Corrupt(bytes.Clone(k), &corruptCause{"malformed queued copy key"})
	}
	q := QueuedMessage{Peer: string(peer), ID: string(rest[identity.DeviceIDSize+1:])}
	copy(q.Dev[:], rest)
	ix, err := d.index(q.Peer, q.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ix.queued) {
		return QueuedMessage{}, store.Corrupt(bytes.Clone(k), &corruptCause{"a queued copy of a message that is not queued"})
	}
	if err != nil {
		return QueuedMessage{}, err
	}
	if !slices.Contains(ix.targets, q.Dev) {
		return QueuedMessage{}, store.Corrupt(bytes.Clone(k), &corruptCause{"a queued copy for a device its message does not name"})
	}
	q.At = ix.at
	return q, nil
}

// Copy is a queued message's copy for one device of the peer: Env is its
// sealed envelope (empty: not sealed yet); a zero Dev: the peer's devices
// are not known yet.
type Copy struct {
	Dev identity.DeviceID
	Env []byte
}

// InsertQueued stores outgoing m like InsertMessage (its id must be
// unused: no read before the write) and queues its copies, one per device,
// at least one, at most maxTargets.
func (d *Data) InsertQueued(m Message, copies ...Copy) error {
	if m.Direction != DirOut {
		return fmt.Errorf("%w: only an outgoing message can be queued", store.ErrInvalid)
	}
	targets := make([]identity.DeviceID, len(copies))
	for i, c := range copies {
		if len(c.Env) > maxEnvelopeLen {
			return fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", store.ErrInvalid, len(c.Env), maxEnvelopeLen)
		}
		if slices.Contains(targets[:i], c.Dev) {
			return fmt.Errorf("%w: two copies for one device", store.ErrInvalid)
		}
		targets[i] = c.Dev
	}
	if _, err := d.putMessageQueued(m, putInsert, targets); err != nil {
		return err
	}
	for _, c := range copies {
		if err := d.kv.Set(queueKey(m.Peer, c.Dev, m.ID), c.Env); err != nil {
			return err
		}
	}
	return nil
}

// QueuedEnvelope returns the envelope of the copy of peer's queued
// message id for dev, or store.ErrNotFound when there is no such copy.
func (d *Data) QueuedEnvelope(peer string, dev identity.DeviceID, id string) ([]byte, error) {
	if err := checkQueueKey(peer, id); err != nil {
		return nil, err
	}
	return d.kv.Get(queueKey(peer, dev, id))
}

// SetQueuedEnvelope replaces the envelope of the copy of peer's queued
// message id for dev (it was sealed); store.ErrNotFound when there is no
// such copy.
func (d *Data) SetQueuedEnvelope(peer string, dev identity.DeviceID, id string, env []byte) error {
	if err := checkQueueKey(peer, id); err != nil {
		return err
	}
	if len(env) > maxEnvelopeLen {
		return fmt.Errorf("%w: outbox envelope of %d bytes exceeds %d", store.ErrInvalid, len(env), maxEnvelopeLen)
	}
	k := queueKey(peer, dev, id)
	if _, err := d.kv.Get(k); err != nil {
		return err
	}
	return d.kv.Set(k, env)
}

// Retarget moves the copies of peer's queued message id that are not for
// dev to dev, unsealed (they were sealed for a device the peer no longer
// uses, or for none), and reports whether it moved any. store.ErrNotFound
// when the message is missing or not queued.
func (d *Data) Retarget(peer, id string, dev identity.DeviceID) (bool, error) {
	ix, err := d.checkedIndex(peer, id)
	if err != nil {
		return false, err
	}
	if !ix.queued {
		return false, store.ErrNotFound
	}
	if len(ix.targets) == 1 && ix.targets[0] == dev {
		return false, nil
	}
	for _, t := range ix.targets {
		if t == dev {
			continue
		}
		if err := d.kv.Delete(queueKey(peer, t, id)); err != nil {
			return false, err
		}
	}
	ix.targets = []identity.DeviceID{dev}
	b, err := ix.marshal()
	if err != nil {
		return false, err
	}
	if err := d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), b); err != nil {
		return false, err
	}
	return true, d.kv.Set(queueKey(peer, dev, id), nil)
}

// Dequeue takes the copy of peer's message id for dev out of the outbox
// (the device acknowledged it) and, when decide returns true, sets the
// message's state as UpdateMessageState does. decide learns whether the
// copy was the last one waiting (the message then leaves the outbox); it
// reads the other copies' keys, not their envelopes. store.ErrNotFound
// when the message is missing, not queued, or has no copy for dev.
func (d *Data) Dequeue(peer string, dev identity.DeviceID, id string, decide func(m Message, last bool) (state string, ok bool)) (Message, error) {
	ix, err := d.checkedIndex(peer, id)
	if err != nil {
		return Message{}, err
	}
	if !ix.queued || !slices.Contains(ix.targets, dev) {
		return Message{}, store.ErrNotFound
	}
	if err := d.kv.Delete(queueKey(peer, dev, id)); err != nil {
		return Message{}, err
	}
	last := true
	for _, t := range ix.targets {
		if t == dev {
			continue
		}
		has, err := d.kv.Has(queueKey(peer, t, id))
		if err != nil {
			return Message{}, err
		}
		if has {
			last = false
		}
	}
	m := Message{ID: id, Peer: peer, Direction: ix.dir, State: ix.state, At: ix.at}
	changed := false
	if state, ok := decide(m, last); ok {
		changed = state != m.State
		m.State = state
	}
	var b []byte
	switch {
	case last:
		b, err = marshalIndex(ix.at, DirOut, m.State)
	case !changed:
		// Another copy waits, and the state holds: the entry stays as
		// it is (the targets name this device, whose copy is gone).
		return m, nil
	default:
		ix.state = m.State
		b, err = ix.marshal()
	}
	if err != nil {
		return Message{}, err
	}
	return m, d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), b)
}

// MoveCopy moves the copy of peer's queued message id for from (a device
// the peer no longer uses, or the zero device: queued before the peer's
// devices were known) to the devices in to that have none yet, unsealed,
// and returns those. store.ErrNotFound when the message is missing, not
// queued or has no copy for from.
func (d *Data) MoveCopy(peer, id string, from identity.DeviceID, to []identity.DeviceID) ([]identity.DeviceID, error) {
	ix, err := d.checkedIndex(peer, id)
	if err != nil {
		return nil, err
	}
	if !ix.queued || !slices.Contains(ix.targets, from) {
		return nil, store.ErrNotFound
	}
	kept := slices.DeleteFunc(slices.Clone(ix.targets), func(t identity.DeviceID) bool { return t == from })
	var added []identity.DeviceID
	for _, t := range to {
		if t != from && !slices.Contains(kept, t) && !slices.Contains(added, t) && len(kept)+len(added) < maxTargets {
			added = append(added, t)
		}
	}
	if len(kept)+len(added) == 0 {
		return nil, fmt.Errorf("%w: no device to move message %s to", store.ErrInvalid, id)
	}
	if err := d.kv.Delete(queueKey(peer, from, id)); err != nil {
		return nil, err
	}
	ix.targets = append(kept, added...)
	for _, t := range added {
		if err := d.kv.Set(queueKey(peer, t, id), nil); err != nil {
			return nil, err
		}
	}
	b, err := ix.marshal()
	if err != nil {
		return nil, err
	}
	return added, d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), b)
}

// checkedIndex validates peer and id and reads the message's index entry;
// a seen-only marker is store.ErrNotFound.
func (d *Data) checkedIndex(peer, id string) (msgIndex, error) {
	if err := checkQueueKey(peer, id); err != nil {
		return msgIndex{}, err
	}
	ix, err := d.index(peer, id)
	if err == nil && ix.marker() {
		err = store.ErrNotFound
	}
	return ix, err
}

func checkQueueKey(peer, id string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	return checkID("message id", id)
}
