package msg

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Check decodes and cross-checks one value of msg's keyspace for the
// store's Verify (store.Options.Checks[store.SpaceMsg]; `callsign store
// verify`): that a conversation, message, index entry, outbox entry or
// queued copy decodes and matches its key, that a message's index entry
// points at it, that an index entry's message exists (reported on the
// message's key when it does not), and that a session set decodes and is
// with the device its key names. It returns what is wrong with the entry
// under k, or "".
func Check(sp *store.Space, k, v []byte, report func(k []byte, problem string)) string {
	switch {
	case bytes.HasPrefix(k, pfxConv):
		c, err := unmarshalConversation(v)
		if err == nil && c.Peer != string(k[len(pfxConv):]) {
			return "the conversation does not match its key"
		}
		return problemOf(err)
	case bytes.HasPrefix(k, pfxMsgID):
		ix, err := unmarshalIndex(v)
		if err != nil || ix.marker() {
			return problemOf(err)
		}
		peer, id, _ := bytes.Cut(k[len(pfxMsgID):], sep)
		mk := key(pfxMsg, peer, sep, be64(ix.at), id)
		if ok, err := sp.Has(mk); err == nil && !ok {
			report(mk, "the message is missing; its index entry remains")
		}
		for _, dev := range ix.targets {
			if ok, err := sp.Has(queueKey(string(peer), dev, string(id))); err == nil && !ok {
				return "a queued message without its copy for a device it names"
			}
		}
	case bytes.HasPrefix(k, pfxMsg):
		m, err := unmarshalMessage(v)
		if err != nil {
			return problemOf(err)
		}
		peer, tail, _ := bytes.Cut(k[len(pfxMsg):], sep)
		if len(tail) <= 8 || m.Peer != string(peer) || m.ID != string(tail[8:]) || uint64(m.At.UnixNano()) != binary.BigEndian.Uint64(tail) {
			return "the message does not match its key"
		}
		ix, err := Over(sp, nil).index(m.Peer, m.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "its index entry is missing"
		case err != nil:
			return "" // the index entry is reported on its own
		case ix.marker() || !bytes.Equal(ix.key, k):
			return "its index entry points elsewhere"
		}
	case bytes.HasPrefix(k, pfxOut):
		e, err := unmarshalOutbox(v)
		if err == nil && !bytes.Equal(outKey(e.ID, e.Dev), k) {
			return "the outbox entry does not match its key"
		}
		return problemOf(err)
	case bytes.HasPrefix(k, pfxQueue):
		if _, err := Over(sp, nil).queuedCopy(k); err != nil {
			return problemOf(err)
		}
		if len(v) > maxEnvelopeLen {
			return "a queued copy larger than an envelope"
		}
	case bytes.HasPrefix(k, pfxSession):
		_, dev, ok := bytes.Cut(k[len(pfxSession):], sep)
		if !ok || len(dev) != identity.DeviceIDSize {
			return "a session set not filed under a device (schema 8's form, which the migration could not read)"
		}
		set, err := e2e.UnmarshalSessionSet(v)
		if err != nil {
			return problemOf(err)
		}
		for _, d := range set.PeerDHs() {
			if id := identity.DeviceIDOf(d); !bytes.Equal(id[:], dev) {
				return "the session set holds a session with another device"
			}
		}
	}
	return ""
}

// problemOf is what err says is wrong, without the entry's name.
func problemOf(err error) string {
	if err == nil {
		return ""
	}
	var ce *store.CorruptError
	if errors.As(err, &ce) {
		return ce.Err.Error()
	}
	return err.Error()
}
