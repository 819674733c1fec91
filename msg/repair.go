package msg

import (
	"bytes"
	"slices"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Repair (docs/DEVICES.md §2.1): a sender names, in each text (Content
// addition 16), the recipient's devices it sent it to, as its view of the
// recipient's record had them. A device of the recipient that knows a
// sibling the sender did not — linked since the sender last read the
// record — relays the text to it (Content kind 7, from this account's
// device, naming the sender), so every device shows every message. Of the
// devices the sender named, the first (by DeviceID) that this device
// knows as active relays; the others leave it, so a sibling gets one
// relay, or a few while the devices' views differ, which it takes once.

// textPlain is the plaintext of text message m for ps's lane: the text,
// with the devices of ps's account the message goes to (the view's),
// unless naming them would make the plaintext too large for one message.
func (s *Service) textPlain(ps *peerState, m *Message) []byte {
	c := content{kind: contentText, seq: m.Seq, sentAt: m.SentAt.UnixNano(), body: m.Body, file: m.File}
	c.replyTo, c.action = m.wireExtras()
	c.timer, c.timerSet = m.wireTimer()
	s.mu.Lock()
	for _, d := range ps.acct.view {
		if !d.IsZero() && len(c.devices) < maxTargets {
			c.devices = append(c.devices, d)
		}
	}
	s.mu.Unlock()
	pt := c.marshal()
	if len(pt) > e2e.MaxPlaintext && c.devices != nil {
		clear(pt)
		c.devices = nil
		pt = c.marshal()
	}
	return pt
}

// relayTargets returns the siblings this device relays a text to that
// the sender sent to targets: the active siblings it knows that targets
// leaves out, when this device is the first of targets it knows (itself
// included); none otherwise.
func (s *Service) relayTargets(targets []identity.DeviceID) []identity.DeviceID {
	if len(targets) == 0 {
		return nil // an older sender: it names none
	}
	s.mu.Lock()
	view := slices.Clone(s.acctLocked(s.selfID).view)
	s.mu.Unlock()
	if !slices.Contains(view, s.selfDev) {
		return nil // this device's own view is not known yet, or is stale
	}
	first := true
	for _, t := range targets {
		if t != s.selfDev && slices.Contains(view, t) && bytes.Compare(t[:], s.selfDev[:]) < 0 {
			first = false
		}
	}
	if !first {
		return nil
	}
	var out []identity.DeviceID
	for _, d := range view {
		if d != s.selfDev && !slices.Contains(targets, d) {
			out = append(out, d)
		}
	}
	return out
}

// storeRelayed stores the texts siblings relayed here, each in its
// sender's conversation under that account's lock (which every writer of
// the conversation holds), once: a text the sender's own frame brought,
// or another sibling's relay, is passed over. Only a contact's texts are
// taken, as a sibling relays only those.
func (s *Service) storeRelayed(msgs []Message) {
	var peers []string
	byPeer := map[string][]Message{}
	for _, m := range msgs {
		if _, ok := byPeer[m.Peer]; !ok {
			peers = append(peers, m.Peer)
		}
		byPeer[m.Peer] = append(byPeer[m.Peer], m)
	}
	for _, peer := range peers {
		acct := identity.AccountID(peer)
		if s.cfg.Policy.Classify(acct) != Deliver {
			continue
		}
		a := s.acct(acct)
		a.mu.Lock()
		var stored, updated []Message
		err := s.cfg.DB.Update(func(tx *store.Tx) error {
			data := s.data(tx)
			var err error
			if stored, updated, err = storeCopies(data, byPeer[peer]); err != nil || len(stored) == 0 {
				return err
			}
			c, err := data.Conversation(peer) // storeCopies made it
			if err != nil {
				return err
			}
			c.Unread += len(stored)
			return data.PutConversation(c)
		})
		a.mu.Unlock()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("storing messages a sibling relayed", "peer", acct, "err", err)
			}
			continue
		}
		for i := range stored {
			m := stored[i]
			s.emit(Event{Kind: EventMessage, Peer: acct, ID: m.ID, State: StateReceived, Message: &m})
		}
		for i := range updated {
			m := updated[i]
			s.emit(Event{Kind: EventUpdated, Peer: acct, ID: m.ID, Message: &m})
		}
	}
}
