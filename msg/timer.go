package msg

import (
	"context"
	"fmt"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Disappearing messages: a conversation's timer (Conversation.Timer) is
// set by either side with a text of its own (SetTimer; Content additions
// 20 and 21), which sets it on both sides and on both accounts' other
// devices. Every text sent while it is on names it (addition 20) and is
// deleted from every device that holds it Expires after it was stored
// there (At): the sweep (expireLoop) deletes it, its index entry and, through
// EventDeleted, the node's copy of its attachment. The timer change itself
// stays, as the conversation's record of it. A message still in the
// sender's outbox is deleted once it has left it.

// MaxTimer is the longest timer (a year); MinTimer the shortest a person
// sets (the API's); tests use shorter ones.
const (
	MaxTimer = 366 * 24 * time.Hour
	MinTimer = 5 * time.Second
)

// expireEvery is how often the sweep looks for expired messages.
var expireEvery = 2 * time.Second

// SetTimer sets the disappearing-message timer of the conversation with to
// (0: off) and tells the other side: it returns the message that says so.
func (s *Service) SetTimer(ctx context.Context, to identity.AccountID, d time.Duration) (Message, error) {
	if d < 0 || d > MaxTimer || d%time.Second != 0 {
		return Message{}, fmt.Errorf("set timer: %w: %v (0 or whole seconds up to %v)", store.ErrInvalid, d, MaxTimer)
	}
	return s.send(ctx, to, Outgoing{TimerSet: &d})
}

// timerOf is c's timer as Content addition 20, or nil.
func timerOf(d time.Duration) *uint64 {
	if d <= 0 {
		return nil
	}
	v := uint64(d / time.Second)
	return &v
}

// withTimer sets, on m about to be stored in c, what the conversation's
// timer makes of it: a timer change sets c's timer; a text sent while it
// is on expires; c counts it.
func withTimer(c *Conversation, m *Message) {
	if m.TimerSet != nil {
		c.Timer = *m.TimerSet
		m.Expires = 0
		return
	}
	if m.Expires > 0 {
		c.Expiring++
	}
}

// expireLoop deletes expired messages until the service closes.
func (s *Service) expireLoop() {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if err := s.expire(); err != nil && s.ctx.Err() == nil {
			s.log.Warn("deleting expired messages", "err", err)
		}
	}
}

// expire deletes the messages whose time is up, in the conversations that
// have any.
func (s *Service) expire() error {
	var peers []string
	if err := s.cfg.DB.View(func(tx *store.Tx) error {
		cs, err := s.data(tx).Conversations()
		for _, c := range cs {
			if c.Expiring > 0 {
				peers = append(peers, c.Peer)
			}
		}
		return err
	}); err != nil {
		return err
	}
	for _, peer := range peers {
		a := s.acct(identity.AccountID(peer))
		a.mu.Lock() // every writer of the conversation holds it
		var gone []Message
		err := s.cfg.DB.Update(func(tx *store.Tx) error {
			gone = gone[:0]
			data := s.data(tx)
			c, err := data.Conversation(peer)
			if err != nil {
				return err
			}
			// Newest first: timed messages are the conversation's latest,
			// and the read stops once it has met as many as it counts.
			now, left, seen := s.cfg.Now(), 0, 0
			cursor := ""
			for seen < c.Expiring {
				ms, next, err := data.Messages(peer, Page{Cursor: cursor, Limit: 100, Newest: true})
				if err != nil {
					return err
				}
				for _, m := range ms {
					if m.Expires <= 0 {
						continue
					}
					seen++
					if now.Before(m.At.Add(m.Expires)) || m.State == StateQueued {
						left++
						continue
					}
					if err := data.DeleteMessage(peer, m.ID); err != nil {
						return err
					}
					if m.Direction == DirIn && m.State != StateRead && c.Unread > 0 {
						c.Unread--
					}
					gone = append(gone, m)
				}
				if next == "" {
					break
				}
				cursor = next
			}
			c.Expiring = left
			return data.PutConversation(c)
		})
		a.mu.Unlock()
		if err != nil {
			return err
		}
		for i := range gone {
			m := gone[i]
			s.emit(Event{Kind: EventDeleted, Peer: identity.AccountID(peer), ID: m.ID, Message: &m})
		}
	}
	return nil
}
