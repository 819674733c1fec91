package groupchat

import (
	"bytes"
	"errors"
	"slices"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Delivery states of a group message. A member device that stores another
// member's message tells that member's account so (a receipt, carrier
// kind 5: the ids, delivered), and again when the person reads them
// (read), through the outbox like any carrier but to the devices only,
// never to a mailbox (msg.Service.QueueGroupDirect: an offline sender's
// would fill with one envelope per member per message); receipts of many
// messages travel together. The sender's devices count, on each of the account's
// messages, the member accounts that have it and those that read it: it
// is delivered once every other member account at the time of sending has
// it, read once every one read it (Message.Delivered, ReadBy,
// Recipients). An account is counted once, whichever of its devices said
// so first; a receipt from someone who is not a member, or for a message
// that is not this account's, changes nothing. Receipts wait
// receiptDelay after the first so that many go in one carrier; those
// waiting when the node stops are not sent (a read receipt later counts
// as delivered too).

// receiptKey names the receipts waiting to go to one account.
type receiptKey struct {
	g    group.ID
	to   identity.AccountID
	read bool
}

// queueReceipts has the sender goroutine tell account to that it has (or
// read) its messages ids of g.
func (s *Service) queueReceipts(g group.ID, to identity.AccountID, read bool, ids ...[16]byte) {
	if len(ids) == 0 || to == s.self {
		return
	}
	s.sendMu.Lock()
	if s.receipts == nil {
		s.receipts = map[receiptKey][]byte{}
	}
	k := receiptKey{g, to, read}
	for _, id := range ids {
		s.receipts[k] = append(s.receipts[k], id[:]...)
	}
	s.sendMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sendReceipts hands the receipts waiting to the Transport.
func (s *Service) sendReceipts() {
	s.sendMu.Lock()
	all := s.receipts
	s.receipts = nil
	s.sendMu.Unlock()
	for k, ids := range all {
		var bodies [][]byte
		for len(ids) > 0 {
			n := min(len(ids), 16*maxReceiptIDs)
			c := carrier{kind: kindReceipt, group: k.g, ids: ids[:n], read: k.read}
			bodies = append(bodies, c.marshal())
			ids = ids[n:]
		}
		// Not to mailboxes: an offline sender's would fill with one
		// envelope per member per message. They wait for its devices.
		queue := s.cfg.Transport.QueueGroup
		if dt, ok := s.cfg.Transport.(DirectTransport); ok {
			queue = dt.QueueGroupDirect
		}
		if err := queue(s.ctx, []identity.AccountID{k.to}, bodies...); err != nil && s.ctx.Err() == nil {
			s.log.Info("group receipts not queued", "err", err)
		}
	}
}

// receiptLocked applies a receipt from account from.
func (s *Service) receiptLocked(d data, from identity.AccountID, c carrier, events *[]Event) error {
	l, err := s.loadLocked(d, c.group)
	if err != nil {
		return err
	}
	if !slices.Contains(accounts(l.State()), from) {
		return ErrNotMember
	}
	if from == s.self {
		return nil
	}
	who := from.Hash()[:8]
	for ids := c.ids; len(ids) > 0; ids = ids[16:] {
		m, ok, err := d.message(c.group, [16]byte(ids[:16]))
		if err != nil {
			return err
		}
		if !ok || !m.out || m.from != s.self {
			continue
		}
		changed := false
		if !hasPrefix8(m.delivered, who) {
			m.delivered, changed = append(m.delivered, who...), true
		}
		if c.read && !hasPrefix8(m.readBy, who) {
			m.readBy, changed = append(m.readBy, who...), true
		}
		if !changed {
			continue
		}
		if err := d.putMessage(c.group, m); err != nil {
			return err
		}
		msg := m.message(c.group)
		*events = append(*events, Event{Kind: EventMessage, Group: c.group, Message: &msg, Updated: true})
	}
	return nil
}

// memberIndex finds a member account by the first 8 bytes of its hash,
// as receipts name them.
type memberIndex map[[8]byte]identity.AccountID

// indexMembers indexes st's members.
func indexMembers(st *group.State) memberIndex {
	ix := make(memberIndex, st.Len())
	for _, mem := range st.Members() {
		a := mem.Account.ID()
		ix[[8]byte(a.Hash())] = a
	}
	return ix
}

// named returns the members the 8-byte entries of set name.
func (ix memberIndex) named(set []byte) []identity.AccountID {
	var out []identity.AccountID
	for ; len(set) >= 8; set = set[8:] {
		if a, ok := ix[[8]byte(set)]; ok {
			out = append(out, a)
		}
	}
	return out
}

// hasPrefix8 reports whether the 8-byte entries of set hold who.
func hasPrefix8(set, who []byte) bool {
	for ; len(set) >= 8; set = set[8:] {
		if bytes.Equal(set[:8], who) {
			return true
		}
	}
	return false
}

// markReadLocked marks g's unread messages from others read and returns
// their ids by sender, for read receipts.
func (s *Service) markReadLocked(d data, g group.ID, unread int) (map[identity.AccountID][][16]byte, error) {
	out := map[identity.AccountID][][16]byte{}
	var changed []stored
	err := d.messages(g, nil, maxMarkRead, func(_ []byte, m stored) bool {
		if !m.out && !m.read {
			m.read = true
			changed = append(changed, m)
			out[m.from] = append(out[m.from], m.id)
		}
		return len(changed) < unread
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	for _, m := range changed {
		if err := d.putMessage(g, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxMarkRead bounds the messages one MarkRead looks at.
const maxMarkRead = 1000
