package msg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/store"
)

// Since store schema 6 an outgoing text message's place in the outbox is its
// index entry (storecodec.go, msgIndex kind 3), which holds the envelope the
// messaging layer will send: queuing writes the message and that entry,
// the acknowledgement rewrites the entry. The out/ entries (OutboxEntry)
// are left to control messages, which have no message entry of their own.
//
// To find the queued messages at start-up without reading every message,
// qstart/<peer> holds a time no later than that of the peer's oldest
// queued message; the messaging layer sets it when it queues into an
// empty queue, moves it forward as acknowledgements arrive, and deletes it
// when the queue empties.

// QueuedMessage is a queued outgoing message, as start-up lists them.
type QueuedMessage struct {
	Peer string
	ID   string
	At   time.Time
}

// Queued lists every peer's queued messages, each peer's oldest first,
// reading from the peers' queue starts.
func (d *Data) Queued() ([]QueuedMessage, error) {
	starts, err := d.QueueStarts()
	if err != nil {
		return nil, err
	}
	var out []QueuedMessage
	for peer, from := range starts {
		qs, err := d.QueuedMessages(peer, from)
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

// InsertQueued stores outgoing m like InsertMessage (its id must be
// unused: no read before the write) and puts it in the outbox with
// envelope env (empty: not sealed yet).
func (d *Data) InsertQueued(m Message, env []byte) error {
	if m.Direction != DirOut {
		return fmt.Errorf("%w: only an outgoing message can be queued", store.ErrInvalid)
	}
	_, err := d.putMessageQueued(m, putInsert, true, env)
	return err
}

// QueuedEnvelope returns the envelope of peer's queued message id, or
// store.ErrNotFound when there is no such message or it is not queued.
func (d *Data) QueuedEnvelope(peer, id string) ([]byte, error) {
	ix, err := d.checkedIndex(peer, id, true)
	if err != nil {
		return nil, err
	}
	if !ix.queued {
		return nil, store.ErrNotFound
	}
	return ix.env, nil
}

// SetQueuedEnvelope replaces the envelope of peer's queued message id (it
// was sealed); store.ErrNotFound when the message is missing or not queued.
func (d *Data) SetQueuedEnvelope(peer, id string, env []byte) error {
	ix, err := d.checkedIndex(peer, id, false)
	if err != nil {
		return err
	}
	if !ix.queued {
		return store.ErrNotFound
	}
	ix.env, ix.envKnown = env, true
	b, err := ix.marshal()
	if err != nil {
		return err
	}
	return d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), b)
}

// Dequeue takes peer's message id out of the outbox (it was acknowledged)
// and, when decide returns true, sets its state as UpdateMessageState
// does; the envelope is dropped either way. It does not read the
// envelope. store.ErrNotFound when the message is missing or not queued.
func (d *Data) Dequeue(peer, id string, decide func(m Message) (state string, ok bool)) (Message, error) {
	ix, err := d.checkedIndex(peer, id, false)
	if err != nil {
		return Message{}, err
	}
	if !ix.queued {
		return Message{}, store.ErrNotFound
	}
	m := Message{ID: id, Peer: peer, Direction: ix.dir, State: ix.state, At: ix.at}
	if state, ok := decide(m); ok {
		m.State = state
	}
	b, err := marshalIndex(ix.at, DirOut, m.State)
	if err != nil {
		return Message{}, err
	}
	return m, d.kv.Set(key(pfxMsgID, []byte(peer), sep, []byte(id)), b)
}

// checkedIndex validates peer and id and reads the message's index entry;
// a seen-only marker is store.ErrNotFound.
func (d *Data) checkedIndex(peer, id string, withEnv bool) (msgIndex, error) {
	if err := checkID("peer", peer); err != nil {
		return msgIndex{}, err
	}
	if err := checkID("message id", id); err != nil {
		return msgIndex{}, err
	}
	ix, err := d.readIndex(peer, id, withEnv)
	if err == nil && ix.marker() {
		err = store.ErrNotFound
	}
	return ix, err
}

// SetQueueStart records that peer's queued messages are all at or after at.
func (d *Data) SetQueueStart(peer string, at time.Time) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	if err := checkTime("queue start", at); err != nil {
		return err
	}
	return d.kv.Set(key(pfxQueueStart, []byte(peer)), be64(at))
}

// DeleteQueueStart records that peer has no queued messages.
func (d *Data) DeleteQueueStart(peer string) error {
	if err := checkID("peer", peer); err != nil {
		return err
	}
	return d.kv.Delete(key(pfxQueueStart, []byte(peer)))
}

// QueueStarts returns every peer's queue start. A damaged one is logged
// and taken as the start of time, so that no queued message is missed.
func (d *Data) QueueStarts() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := d.kv.Scan(pfxQueueStart, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
		peer := string(k[len(pfxQueueStart):])
		v, err := val()
		if err == nil && (len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < 0) {
			err = store.Corrupt(bytes.Clone(k), &corruptCause{"queue start is not a time"})
		}
		if d.passOver(err) {
			out[peer] = time.Unix(0, 0) // look at every message of the peer
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out[peer] = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		return true, nil
	})
	return out, err
}

// QueuedMessages lists peer's queued messages stored at or after from,
// oldest first. It reads the messages' index entries from from onwards,
// not the messages. A message whose index entry is damaged or missing is
// logged and passed over (its queued state is unknown).
func (d *Data) QueuedMessages(peer string, from time.Time) ([]QueuedMessage, error) {
	if err := checkID("peer", peer); err != nil {
		return nil, err
	}
	if from.UnixNano() < 0 {
		from = time.Unix(0, 0)
	}
	prefix := key(pfxMsg, []byte(peer), sep)
	var out []QueuedMessage
	err := d.kv.Scan(prefix, key(prefix, be64(from)), false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
		if len(k) < len(prefix)+9 {
			return false, store.Corrupt(bytes.Clone(k), &corruptCause{"malformed message key"})
		}
		id := string(k[len(prefix)+8:])
		ix, err := d.index(peer, id)
		if errors.Is(err, store.ErrNotFound) {
			err = store.Corrupt(bytes.Clone(k), &corruptCause{"the message's index entry is missing"})
		}
		if d.passOver(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if ix.queued {
			out = append(out, QueuedMessage{Peer: peer, ID: id, At: ix.at})
		}
		return true, nil
	})
	return out, err
}
