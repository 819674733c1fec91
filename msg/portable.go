package msg

import (
	"fmt"
	"time"

	"github.com/callsign/callsign/store"
)

// The history a backup made with messages carries (docs/DEVICES.md §5):
// each conversation (store.PortableConversation) and each message
// (store.PortableMessage, its state included) in msg's stored forms. Not
// carried: sessions, the outbox, seen-only ids; a restore is a new device.

// ExportHistory calls fn with every conversation of tx's store and every
// message of each, oldest first. A message still queued goes as failed:
// its envelope was sealed in a session the restored device won't have.
func ExportHistory(tx *store.Tx, fn func(kind byte, body []byte) error) error {
	return exportHistoryOf(tx, time.Time{}, StateFailed, fn)
}

// ExportLinkHistory is ExportHistory for a device being linked
// (docs/DEVICES.md §1): the conversations with a message at or after
// since, and those messages. A message still queued goes as sent: this
// device delivers it.
func ExportLinkHistory(tx *store.Tx, since time.Time, fn func(kind byte, body []byte) error) error {
	return exportHistoryOf(tx, since, StateSent, fn)
}

func exportHistoryOf(tx *store.Tx, since time.Time, queuedAs string, fn func(kind byte, body []byte) error) error {
	d := In(tx)
	convs, err := d.Conversations()
	if err != nil {
		return err
	}
	for i := range convs {
		if convs[i].LastAt.Before(since) {
			continue
		}
		b, err := marshalConversation(&convs[i])
		if err != nil {
			return err
		}
		if err := fn(store.PortableConversation, b); err != nil {
			return err
		}
		p := Page{Limit: maxPageLimit}
		for {
			ms, next, err := d.Messages(convs[i].Peer, p)
			if err != nil {
				return err
			}
			for j := range ms {
				if ms[j].At.Before(since) {
					continue
				}
				if ms[j].State == StateQueued {
					ms[j].State = queuedAs
				}
				b, err := marshalMessage(&ms[j])
				if err != nil {
					return err
				}
				if err := fn(store.PortableMessage, b); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
	}
	return nil
}

// ImportHistory stores one history item ExportHistory gave, checked as
// strictly as msg reads its own values: a malformed item is
// store.ErrInvalid and nothing is written. A message whose id the
// conversation already holds is left as it is, so a restore run again
// adds nothing twice.
func ImportHistory(tx *store.Tx, kind byte, body []byte) error {
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: backup %s: %v", store.ErrInvalid, what, err)
	}
	d := In(tx)
	switch kind {
	case store.PortableConversation:
		c, err := unmarshalConversation(body)
		if err != nil {
			return bad("conversation", err)
		}
		if c.Unread < 0 {
			return bad("conversation", fmt.Errorf("%d unread", c.Unread))
		}
		return d.PutConversation(c) // which checks the peer id
	case store.PortableMessage:
		m, err := unmarshalMessage(body)
		if err != nil {
			return bad("message", err)
		}
		if !historyState(m.Direction, m.State) {
			return bad("message", fmt.Errorf("an %s message in state %q", m.Direction, m.State))
		}
		m.Body = append([]byte(nil), m.Body...)
		_, err = d.AddMessage(m)
		return err
	}
	return fmt.Errorf("%w (%d): not a history item", store.ErrPortableKind, kind)
}

// historyState reports whether a restored message may be in state: a
// final one for its direction (never queued: nothing would send it).
func historyState(dir, state string) bool {
	switch state {
	case StateSent, StateDelivered, StateFailed:
		return dir == DirOut
	case StateReceived:
		return dir == DirIn
	case StateRead:
		return true
	}
	return false
}
