package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// DeviceRevoked tells the API's subscribers that this device's account
// revoked it.
func (s *Service) DeviceRevoked() {
	s.events.publish(api.NewEvent(api.EventDeviceRevoked, nil))
}

// Synced tells the API's subscribers that another device of this account
// changed what they share.
func (s *Service) Synced(what api.Synced) {
	s.events.publish(api.NewEvent(api.EventSynced, what))
}

// MessageEvent tells the API's subscribers about an event of the
// messaging service: a message stored (and a request, for a stranger's)
// or a sent message's new state.
func (s *Service) MessageEvent(ev msg.Event) {
	switch ev.Kind {
	case msg.EventMessage:
		if ev.Message == nil || !shown(*ev.Message) {
			return
		}
		m := s.toAPIMessage(*ev.Message, s.contacts.Petname(ev.Message.Peer))
		m.Quote = s.quote(*ev.Message)
		s.events.publish(api.NewEvent(api.EventMessage, m))
		if ev.Request {
			s.events.publish(api.NewEvent(api.EventRequest, m))
		}
	case msg.EventState:
		s.events.publish(api.NewEvent(api.EventState, api.StateChange{ID: ev.ID, Peer: string(ev.Peer), State: ev.State, Reason: ev.Reason}))
	case msg.EventDeleted:
		s.events.publish(api.NewEvent(api.EventMessageDeleted, api.MessageDeleted{Peer: string(ev.Peer), ID: ev.ID}))
	case msg.EventUpdated:
		if ev.Message == nil {
			return
		}
		m := s.toAPIMessage(*ev.Message, s.contacts.Petname(ev.Message.Peer))
		m.Quote = s.quote(*ev.Message)
		s.events.publish(api.NewEvent(api.EventMessageUpdated, m))
	}
}

func (s *Service) toAPIMessage(m msg.Message, peerName string) api.Message {
	me := s.self.ID().String()
	out := api.Message{ID: m.ID, Text: string(m.Body), SentAt: m.SentAt.UTC(), State: m.State, Direction: m.Direction, Peer: m.Peer, PeerName: peerName,
		File: s.fileInfo(m), ReplyTo: m.ReplyTo, Reactions: s.reactions(m), Edited: m.Edited, Deleted: m.Deleted}
	if m.Expires > 0 {
		at := m.At.Add(m.Expires).UTC()
		out.ExpiresAt = &at
	}
	if m.TimerSet != nil {
		secs := int64(*m.TimerSet / time.Second)
		out.TimerSet = &secs
	}
	if m.Direction == msg.DirIn {
		out.From, out.To = m.Peer, me
	} else {
		out.From, out.To = me, m.Peer
	}
	return out
}

// Send implements api.Backend: it returns once the message is durable in
// the outbox.
func (s *Service) Send(ctx context.Context, to, text string) (_ api.Message, err error) {
	defer mapError(&err)
	return s.Reply(ctx, to, text, "")
}

// recipient is the account a message to "to" goes to: a contact, or made
// one now.
func (s *Service) recipient(ctx context.Context, to string) (target, error) {
	t, err := s.target(ctx, to, true)
	if err != nil {
		return target{}, err
	}
	if c := t.contact; c != nil && c.KeyChanged {
		return target{}, keyChanged(to, fmt.Sprintf("%s's handle now resolves", c.Petname))
	}
	if t.id == s.self.ID() {
		return target{}, api.Errorf(api.CodeBadRequest, "", "that is your own account")
	}
	if t.contact == nil {
		// Writing to someone makes them a contact: their key is pinned now
		// (trust on first use) and their replies are not requests.
		res := t.res
		if res == nil { // an account id: its key is looked up now
			if res, err = s.resolve(ctx, to); err != nil {
				return target{}, err
			}
		}
		c, err := s.pin(ctx, to, res, "")
		if err != nil {
			return target{}, err
		}
		t.contact, t.id = &c, identity.AccountID(c.Account)
	}
	return t, nil
}

// sent tells every client of this node (another tab, `messages
// --follow`) what was sent, whoever sent it, and returns it.
func (s *Service) sent(m msg.Message, t target) api.Message {
	out := s.toAPIMessage(m, t.contact.Petname)
	out.Quote = s.quote(m)
	s.countMessage(out.Direction, false)
	s.events.publish(api.NewEvent(api.EventMessage, out))
	return out
}

func (s *Service) conversations(requests bool) ([]api.Conversation, error) {
	var cs []msg.Conversation
	last := map[string]msg.Message{}
	quotes := map[string]*api.Quote{}
	if err := s.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		var err error
		if cs, err = data.Conversations(); err != nil {
			return err
		}
		for _, c := range cs {
			if c.Request != requests {
				continue
			}
			// The newest message shown: the few newest, past actions.
			ms, _, err := data.Messages(c.Peer, msg.Page{Limit: 8, Newest: true})
			if store.IsCorrupt(err) {
				continue // no preview; opening the conversation reports the damage
			}
			if err != nil {
				return err
			}
			for i := len(ms) - 1; i >= 0; i-- {
				if shown(ms[i]) {
					last[c.Peer] = ms[i]
					quotes[c.Peer] = s.quoteIn(data, ms[i])
					break
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	names := s.contacts.Petnames()
	out := []api.Conversation{}
	for _, c := range cs {
		if c.Request != requests {
			continue
		}
		conv := api.Conversation{Peer: c.Peer, PeerName: names[c.Peer], LastAt: c.LastAt.UTC(), Unread: c.Unread, Request: c.Request,
			Timer: int64(c.Timer / time.Second)}
		if m, ok := last[c.Peer]; ok {
			am := s.toAPIMessage(m, conv.PeerName)
			am.Quote = quotes[c.Peer]
			conv.Last = &am
		}
		out = append(out, conv)
	}
	// Most recent first, as a chat list shows them.
	slices.SortStableFunc(out, func(a, b api.Conversation) int { return b.LastAt.Compare(a.LastAt) })
	return out, nil
}

// Conversations implements api.Backend.
func (s *Service) Conversations(ctx context.Context) (_ []api.Conversation, err error) {
	defer mapError(&err)
	out, err := s.conversations(false)
	if err != nil {
		return nil, err
	}
	groups, err := s.groupConversations(false)
	if err != nil {
		return nil, err
	}
	if len(groups) > 0 {
		out = append(out, groups...)
		slices.SortStableFunc(out, func(a, b api.Conversation) int { return b.LastAt.Compare(a.LastAt) })
	}
	return out, nil
}

// Requests implements api.Backend: the first messages of strangers and
// their invitations to groups (a Conversation with Group set), newest
// first. Senders that are not contacts are named by the handle their
// identity record claims, looked up briefly.
func (s *Service) Requests(ctx context.Context) (_ []api.Conversation, err error) {
	defer mapError(&err)
	all, err := s.conversations(true)
	if err != nil {
		return nil, err
	}
	// A request from someone since blocked is gone from the list: what
	// they sent stays on disk until the conversation is deleted, but
	// nothing asks the user about it again.
	cs, err := s.contacts.List()
	if err != nil {
		return nil, err
	}
	blocked := map[string]bool{}
	for _, c := range cs {
		blocked[c.Account] = c.Blocked
	}
	reqs := all[:0]
	for _, r := range all {
		if !blocked[r.Peer] {
			reqs = append(reqs, r)
		}
	}
	for i := range reqs {
		if reqs[i].PeerName != "" {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		rec, err := s.dir.ResolveIdentity(lctx, identity.AccountID(reqs[i].Peer))
		cancel()
		if err != nil {
			continue
		}
		reqs[i].PeerName = s.verifiedHandle(ctx, rec.Account, rec.Handles)
	}
	groups, err := s.groupConversations(true)
	if err != nil {
		return nil, err
	}
	n := len(reqs)
	for _, g := range groups {
		if !blocked[g.Group.InvitedBy] {
			reqs = append(reqs, g)
		}
	}
	if len(reqs) > n {
		slices.SortStableFunc(reqs, func(a, b api.Conversation) int { return b.LastAt.Compare(a.LastAt) })
	}
	return reqs, nil
}

// Messages implements api.Backend.
func (s *Service) Messages(ctx context.Context, name string, pr api.PageRequest) (_ api.MessagePage, err error) {
	defer mapError(&err)
	if g, ok, err := s.findGroup(name); err != nil || ok {
		if err != nil {
			return api.MessagePage{}, err
		}
		return s.groupMessages(g, pr)
	}
	t, err := s.target(ctx, name, true)
	if err != nil {
		return api.MessagePage{}, err
	}
	var ms []msg.Message
	var next string
	quotes := map[string]*api.Quote{}
	err = s.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		var err error
		ms, next, err = data.Messages(t.id.String(), msg.Page{Cursor: pr.Cursor, Limit: pr.Limit, Newest: pr.Newest})
		for _, m := range ms {
			if q := s.quoteIn(data, m); q != nil {
				quotes[m.ID] = q
			}
		}
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return api.MessagePage{}, explain(err, "", "bad cursor")
		}
		return api.MessagePage{}, err
	}
	page := api.MessagePage{Messages: make([]api.Message, 0, len(ms)), Next: next}
	peerName := ""
	if c := t.contact; c != nil {
		peerName = c.Petname
		if c.KeyChanged {
			page.Warning = fmt.Sprintf("%s's handle now resolves to a different key; new messages from it are held back until you verify again", c.Petname)
		}
	}
	for _, m := range ms {
		if !shown(m) {
			continue // an action: folded into the message it changed
		}
		am := s.toAPIMessage(m, peerName)
		am.Quote = quotes[m.ID]
		page.Messages = append(page.Messages, am)
	}
	return page, nil
}

// MarkRead implements api.Backend; nil ids marks every unread incoming
// message read.
func (s *Service) MarkRead(ctx context.Context, name string, ids []string) (err error) {
	defer mapError(&err)
	if g, ok, err := s.findGroup(name); err != nil || ok {
		if err != nil {
			return err
		}
		return s.groups.MarkRead(g)
	}
	t, err := s.target(ctx, name, false)
	if err != nil {
		return err
	}
	if ids == nil {
		err := s.db.View(func(tx *store.Tx) error {
			data := msg.In(tx)
			cursor := ""
			for {
				ms, next, err := data.Messages(t.id.String(), msg.Page{Cursor: cursor, Limit: 1000})
				if err != nil {
					return err
				}
				for _, m := range ms {
					if m.Direction == msg.DirIn && m.State != msg.StateRead {
						ids = append(ids, m.ID)
					}
				}
				if next == "" {
					return nil
				}
				cursor = next
			}
		})
		if err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.msgs.MarkRead(ctx, t.id, ids); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return badRequest(err) // ids of messages that are not there
		}
		return err
	}
	return nil
}
