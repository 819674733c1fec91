package backend

import (
	"context"
	"sync"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Typer sends typing signals (the node).
type Typer interface {
	SendTyping(ctx context.Context, to identity.AccountID, on bool) error
}

// settingTyping is the store setting that turns typing indicators on
// ("1"); off when missing, as before they existed.
const settingTyping = "typing"

// typingEvery spaces the "typing" signals to one contact: the web app
// says so on every key, the contact hears it at most this often.
const typingEvery = 3 * time.Second

// typingState remembers when each contact was last told.
type typingState struct {
	mu   sync.Mutex
	sent map[identity.AccountID]time.Time
}

func (s *Service) typingOn() bool {
	v, ok, err := s.db.GetSetting(settingTyping)
	return err == nil && ok && string(v) == "1"
}

// TypingSettings implements api.Backend.
func (s *Service) TypingSettings(ctx context.Context) (_ api.TypingSettings, err error) {
	defer mapError(&err)
	return api.TypingSettings{On: s.typingOn()}, nil
}

// SetTypingSettings implements api.Backend.
func (s *Service) SetTypingSettings(ctx context.Context, ts api.TypingSettings) (_ api.TypingSettings, err error) {
	defer mapError(&err)
	v := "0"
	if ts.On {
		v = "1"
	}
	if err := s.db.Update(func(tx *store.Tx) error { return tx.PutSetting(settingTyping, []byte(v)) }); err != nil {
		return api.TypingSettings{}, err
	}
	return api.TypingSettings{On: ts.On}, nil
}

// Typing implements api.Backend: the person is typing to a contact, or
// stopped. With indicators off, or to someone who is no contact (or a
// group), it does nothing.
func (s *Service) Typing(ctx context.Context, name string, on bool) (err error) {
	defer mapError(&err)
	if s.typer == nil || !s.typingOn() {
		return nil
	}
	if _, ok, err := s.findGroup(name); err != nil || ok {
		return err
	}
	t, err := s.target(ctx, name, false)
	if err != nil {
		return err
	}
	if c := t.contact; c == nil || c.Blocked || c.KeyChanged {
		return nil // no contact, or one whose messages are held back
	}
	s.typing.mu.Lock()
	if s.typing.sent == nil {
		s.typing.sent = map[identity.AccountID]time.Time{}
	}
	last, told := s.typing.sent[t.id]
	if on && told && time.Since(last) < typingEvery {
		s.typing.mu.Unlock()
		return nil
	}
	if on {
		s.typing.sent[t.id] = time.Now()
	} else {
		if !told {
			s.typing.mu.Unlock()
			return nil // never said it was typing
		}
		delete(s.typing.sent, t.id)
	}
	s.typing.mu.Unlock()
	// Sent in the background: the person's page does not wait on the
	// network, and a typing signal that can't be delivered at once is not
	// worth more (no error for the person). Close waits for it.
	s.wg.Go(func() {
		if err := s.typer.SendTyping(s.ctx, t.id, on); err != nil {
			s.log.Debug("typing signal not delivered", "to", t.id, "err", err)
		}
	})
	return nil
}

// TypingEvent tells the API's subscribers that a contact is typing, or
// stopped, when this person has indicators on.
func (s *Service) TypingEvent(from identity.AccountID, on bool) {
	if !s.typingOn() {
		return
	}
	s.events.publish(api.NewEvent(api.EventTyping, api.Typing{Peer: string(from), PeerName: s.contacts.Petname(string(from)), Typing: on}))
}
