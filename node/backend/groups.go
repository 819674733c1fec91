package backend

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
)

// Groups keeps the group chats (groupchat.Service).
type Groups interface {
	Groups() ([]groupchat.Info, error)
	Group(g group.ID) (groupchat.Info, error)
	Create(ctx context.Context, name string) (groupchat.Info, error)
	Invite(ctx context.Context, g group.ID, who ...identity.AccountPub) (groupchat.Info, error)
	Join(ctx context.Context, g group.ID) (groupchat.Info, error)
	Leave(ctx context.Context, g group.ID) (groupchat.Info, error)
	Remove(ctx context.Context, g group.ID, who identity.AccountPub) (groupchat.Info, error)
	SetAdmin(ctx context.Context, g group.ID, who identity.AccountPub, admin bool) (groupchat.Info, error)
	SetTimer(ctx context.Context, g group.ID, d time.Duration) (groupchat.Info, error)
	Rename(ctx context.Context, g group.ID, name string) (groupchat.Info, error)
	Send(ctx context.Context, g group.ID, text, file []byte) (groupchat.Message, error)
	SendReply(ctx context.Context, g group.ID, text, file []byte, replyTo string) (groupchat.Message, error)
	Act(ctx context.Context, g group.ID, a groupchat.Action, text []byte) (groupchat.Message, error)
	Messages(g group.ID, cursor string, limit int) ([]groupchat.Message, string, error)
	Message(g group.ID, id string) (groupchat.Message, error)
	MessageReceipts(g group.ID, id string) (m groupchat.Message, deliveredTo, readBy []identity.AccountID, err error)
	MarkRead(g group.ID) error
	// IsMember reports whether acct is a member of a group this account
	// joined: no stranger then (the node's message policy).
	IsMember(acct identity.AccountID) bool
}

// errNoGroups answers a group route on a node without group chats.
var errNoGroups = api.Errorf(api.CodeUnavailable, "", "this node has no group chats")

// errGroupOnly answers what groups do not do yet.
func errNotInGroups(what string) error {
	return api.Errorf(api.CodeBadRequest, "", "%s is not available in group chats yet", what)
}

// cmpErr is err, else other.
func cmpErr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// findGroup finds the group name refers to: its id, or the name of
// exactly one group (of those this account is in or invited to, else of
// those it left); ok is false when none is named so.
func (s *Service) findGroup(name string) (g group.ID, ok bool, err error) {
	if s.groups == nil {
		return g, false, nil
	}
	if len(name) == 2*len(g) {
		if b, err := hex.DecodeString(name); err == nil {
			copy(g[:], b)
			_, err := s.groups.Group(g)
			if errors.Is(err, groupchat.ErrNotFound) {
				return g, false, nil
			}
			return g, err == nil, err
		}
	}
	all, err := s.groups.Groups()
	if err != nil {
		return g, false, err
	}
	// A group this account is in (or invited to) first; else one it left.
	n := 0
	for _, active := range []bool{true, false} {
		for _, in := range all {
			if in.Name == name && (in.Status == groupchat.Joined || in.Status == groupchat.Invited) == active {
				g, n = in.ID, n+1
			}
		}
		if n > 0 {
			break
		}
	}
	if n > 1 {
		return g, false, api.Errorf(api.CodeConflict, "`callsign group list` shows each group's id: use that", "%d groups are named %q", n, name)
	}
	return g, n == 1, nil
}

// mustGroup is findGroup for a route that names a group.
func (s *Service) mustGroup(name string) (group.ID, error) {
	if s.groups == nil {
		return group.ID{}, errNoGroups
	}
	g, ok, err := s.findGroup(name)
	if err == nil && !ok {
		err = explain(groupchat.ErrNotFound, "`callsign group list` shows your groups", "no group %q", name)
	}
	return g, err
}

// memberName is how this account calls acct: its petname, else a handle
// this node looked up for it.
func (s *Service) memberName(acct identity.AccountID) string {
	if n := s.contacts.Petname(string(acct)); n != "" {
		return n
	}
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	return s.names[acct]
}

// learnNames looks up, within a short budget, the handles of the members
// this node has no name for, so that later answers and events name them,
// and returns how many it learnt.
func (s *Service) learnNames(ctx context.Context, in groupchat.Info) (learnt int) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, m := range in.Members {
		id := m.Account.ID()
		if id == s.self.ID() || s.memberName(id) != "" || ctx.Err() != nil {
			continue
		}
		rec, err := s.dir.ResolveIdentity(ctx, id)
		if err != nil {
			continue
		}
		if h := s.verifiedHandle(ctx, rec.Account, rec.Handles); h != "" {
			s.namesMu.Lock()
			if s.names == nil {
				s.names = map[identity.AccountID]string{}
			}
			s.names[id] = h
			s.namesMu.Unlock()
			learnt++
		}
	}
	return learnt
}

// nameMembers has nameLoop look up the members of in this node has no
// name for.
func (s *Service) nameMembers(in groupchat.Info) {
	for _, m := range in.Members {
		if id := m.Account.ID(); id != s.self.ID() && s.memberName(id) == "" {
			select {
			case s.lookups <- in.ID:
			default: // busy: the next change, or GET /groups/{id}, asks again
			}
			return
		}
	}
}

// nameLoop looks up the handles of the members of the groups nameMembers
// names, and tells the API's subscribers the group again once it learnt
// some, until Close.
func (s *Service) nameLoop() {
	for {
		var g group.ID
		select {
		case <-s.ctx.Done():
			return
		case g = <-s.lookups:
		}
		in, err := s.groups.Group(g)
		if err != nil {
			continue
		}
		if s.learnNames(s.ctx, in) > 0 {
			// Read again: the group may have changed during the look-ups,
			// and an event with what it was would undo the newer one.
			if in, err = s.groups.Group(g); err == nil {
				s.events.publish(api.NewEvent(api.EventGroup, s.toAPIGroup(in)))
			}
		}
	}
}

func (s *Service) toAPIGroup(in groupchat.Info) api.Group {
	out := api.Group{ID: in.ID.String(), Name: in.Name, Status: in.Status.String(), Admin: in.Admin, Unread: in.Unread,
		LastAt: in.LastAt.UTC(), Request: s.strangerInvite(in), Timer: int64(in.Timer / time.Second), Members: make([]api.GroupMember, 0, len(in.Members))}
	if in.InvitedBy != "" {
		out.InvitedBy, out.InvitedByName = string(in.InvitedBy), s.memberName(in.InvitedBy)
	}
	for _, m := range in.Members {
		id := m.Account.ID()
		gm := api.GroupMember{Account: string(id), Admin: m.Admin, You: id == s.self.ID()}
		if !gm.You {
			gm.Name = s.memberName(id)
			if c, err := s.contacts.Get(id); err == nil {
				gm.Handle = c.Handle
			} else {
				gm.Handle = gm.Name // the handle looked up, for one who is no contact
			}
		}
		out.Members = append(out.Members, gm)
	}
	return out
}

func (s *Service) toAPIGroupMessage(m groupchat.Message, groupName string) api.Message {
	out := api.Message{ID: m.ID, From: string(m.From), Text: string(m.Text), SentAt: m.SentAt.UTC(), Peer: m.Group.String(),
		PeerName: groupName, To: m.Group.String(), Direction: "in", State: "received"}
	if m.Read {
		out.State = "read"
	}
	if m.Out {
		out.Direction, out.State = "out", "sent"
		// Every other member at sending has it, or read it (receipts).
		switch {
		case m.Recipients > 0 && m.ReadBy >= m.Recipients:
			out.State = "read"
		case m.Recipients > 0 && m.Delivered >= m.Recipients:
			out.State = "delivered"
		}
	} else {
		out.FromName = s.memberName(m.From)
	}
	out.File = s.fileInfoOf(out.Peer, m.ID, m.File)
	if !m.Expires.IsZero() {
		at := m.Expires.UTC()
		out.ExpiresAt = &at
	}
	out.ReplyTo, out.Edited, out.Deleted = m.ReplyTo, m.Edited, m.Deleted
	for _, r := range m.Reactions {
		out.Reactions = append(out.Reactions, api.Reaction{Emoji: r.Emoji, From: string(r.From)})
	}
	if m.ReplyTo != "" {
		if q, err := s.groups.Message(m.Group, m.ReplyTo); err == nil {
			out.Quote = quoteOf(q.ID, string(q.From), q.Text, q.File, q.Deleted)
		}
	}
	return out
}

// MessageInfo implements api.Backend.
func (s *Service) MessageInfo(ctx context.Context, name, id string) (_ api.MessageInfo, err error) {
	defer mapError(&err)
	g, ok, err := s.findGroup(name)
	if err != nil {
		return api.MessageInfo{}, err
	}
	if !ok {
		return api.MessageInfo{}, api.Errorf(api.CodeNotFound, "one to one, the ticks say it: ✓✓ delivered, blue read", "who read a message is told for your own messages in a group")
	}
	m, delivered, read, err := s.groups.MessageReceipts(g, id)
	if err != nil {
		return api.MessageInfo{}, err
	}
	if !m.Out {
		return api.MessageInfo{}, api.Errorf(api.CodeNotFound, "", "message %s is not yours: who read it is told to its sender", id)
	}
	out := api.MessageInfo{ID: m.ID, Recipients: m.Recipients, DeliveredTo: []string{}, ReadBy: []string{}}
	for _, a := range delivered {
		out.DeliveredTo = append(out.DeliveredTo, string(a))
	}
	for _, a := range read {
		out.ReadBy = append(out.ReadBy, string(a))
	}
	return out, nil
}

// GroupEvent tells the API's subscribers about a change of the group
// chats.
func (s *Service) GroupEvent(ev groupchat.Event) {
	if s.groups == nil {
		return
	}
	if ev.Kind == groupchat.EventDeleted && ev.Message != nil {
		s.events.publish(api.NewEvent(api.EventMessageDeleted, api.MessageDeleted{Peer: ev.Group.String(), ID: ev.Message.ID}))
		return
	}
	in, err := s.groups.Group(ev.Group)
	if err != nil {
		return
	}
	switch ev.Kind {
	case groupchat.EventGroup:
		s.events.publish(api.NewEvent(api.EventGroup, s.toAPIGroup(in)))
		s.nameMembers(in)
	case groupchat.EventMessage:
		if ev.Message == nil {
			return
		}
		m := s.toAPIGroupMessage(*ev.Message, in.Name)
		kind := api.EventMessage
		if ev.Updated {
			kind = api.EventMessageUpdated
		}
		s.events.publish(api.NewEvent(kind, m))
	}
}

// Groups implements api.Backend.
func (s *Service) Groups(ctx context.Context) (_ []api.Group, err error) {
	defer mapError(&err)
	if s.groups == nil {
		return []api.Group{}, nil
	}
	all, err := s.groups.Groups()
	if err != nil {
		return nil, err
	}
	out := make([]api.Group, len(all))
	for i, in := range all {
		out[i] = s.toAPIGroup(in)
	}
	return out, nil
}

// Group implements api.Backend.
func (s *Service) Group(ctx context.Context, id string) (_ api.Group, err error) {
	defer mapError(&err)
	g, err := s.mustGroup(id)
	if err != nil {
		return api.Group{}, err
	}
	in, err := s.groups.Group(g)
	if err != nil {
		return api.Group{}, err
	}
	if s.learnNames(ctx, in) > 0 {
		if in, err = s.groups.Group(g); err != nil { // as it is after the look-ups
			return api.Group{}, err
		}
	}
	return s.toAPIGroup(in), nil
}

// CreateGroup implements api.Backend.
func (s *Service) CreateGroup(ctx context.Context, name string) (_ api.Group, err error) {
	defer mapError(&err)
	if s.groups == nil {
		return api.Group{}, errNoGroups
	}
	if err := group.CheckName(name); err != nil {
		return api.Group{}, api.Errorf(api.CodeBadRequest, "a name is 1 to 64 bytes, without control characters or spaces around it", "%v", err)
	}
	in, err := s.groups.Create(ctx, name)
	if err != nil {
		return api.Group{}, err
	}
	return s.toAPIGroup(in), nil
}

// memberKey finds the account key of a person named in a group action: a
// contact's pinned key, else the key its handle or account id resolves
// to on the network.
func (s *Service) memberKey(ctx context.Context, name string) (identity.AccountPub, error) {
	t, err := s.target(ctx, name, true)
	if err != nil {
		return identity.AccountPub{}, err
	}
	if c := t.contact; c != nil {
		if c.KeyChanged {
			return identity.AccountPub{}, keyChanged(name, fmt.Sprintf("%s's handle now resolves", c.Petname))
		}
		return identity.ParseAccountPub(c.PubKey)
	}
	pub, _, err := s.accountKey(ctx, t)
	return pub, err
}

// GroupAction implements api.Backend.
func (s *Service) GroupAction(ctx context.Context, id, action string, req api.GroupAction) (_ api.Group, err error) {
	defer mapError(&err)
	g, err := s.mustGroup(id)
	if err != nil {
		return api.Group{}, err
	}
	// A member named by account id is found in the group itself, without
	// the network; anyone else is resolved.
	var members []group.Member
	if len(req.Members) > 0 {
		in, err := s.groups.Group(g)
		if err != nil {
			return api.Group{}, err
		}
		members = in.Members
	}
	keys := make([]identity.AccountPub, len(req.Members))
	for i, m := range req.Members {
		if j := slices.IndexFunc(members, func(gm group.Member) bool { return string(gm.Account.ID()) == m }); j >= 0 {
			keys[i] = members[j].Account
			continue
		}
		if keys[i], err = s.memberKey(ctx, m); err != nil {
			return api.Group{}, err
		}
	}
	var in groupchat.Info
	switch action {
	case "invite":
		in, err = s.groups.Invite(ctx, g, keys...)
	case "join":
		in, err = s.groups.Join(ctx, g)
	case "leave":
		in, err = s.groups.Leave(ctx, g)
	case "remove":
		in, err = s.groups.Remove(ctx, g, keys[0])
	case "admin":
		in, err = s.groups.SetAdmin(ctx, g, keys[0], req.Admin)
	case "rename":
		if err := group.CheckName(req.Name); err != nil {
			return api.Group{}, api.Errorf(api.CodeBadRequest, "", "%v", err)
		}
		in, err = s.groups.Rename(ctx, g, req.Name)
	default:
		return api.Group{}, api.Errorf(api.CodeNotFound, "", "no group action %q", action)
	}
	if err != nil {
		return api.Group{}, err
	}
	return s.toAPIGroup(in), nil
}

// strangerInvite reports whether in's invitation is a stranger's: it came
// as one (groupchat decides when it arrives) and who sent it is a
// stranger still, by the rule the node's message policy gives msg: not a
// contact this account takes messages from (one whose key changed is no
// such contact; a blocked one neither, and Requests hides what they
// sent), nor a member of a group it joined. One who became a contact, or
// a fellow member, since is no stranger.
func (s *Service) strangerInvite(in groupchat.Info) bool {
	if !in.Request || in.InvitedBy == "" {
		return in.Request
	}
	switch adm, _ := s.contacts.MessageFrom(in.InvitedBy); adm { // an error: a stranger's
	case contacts.Deliver:
		return false
	case contacts.Drop:
		return true
	}
	return !s.groups.IsMember(in.InvitedBy)
}

// groupRequest reports whether in waits among the requests: an
// invitation from a stranger, not answered yet, waits there as a
// stranger's first message does. Joined, it is a chat; declined (left),
// it is gone.
func (s *Service) groupRequest(in groupchat.Info) bool {
	return in.Status == groupchat.Invited && s.strangerInvite(in)
}

// groupConversations are the groups as conversations: those of the chat
// list, or (requests) the invitations from strangers, whose LastAt is when
// they came.
func (s *Service) groupConversations(requests bool) ([]api.Conversation, error) {
	if s.groups == nil {
		return nil, nil
	}
	all, err := s.groups.Groups()
	if err != nil {
		return nil, err
	}
	var out []api.Conversation
	for _, in := range all {
		if s.groupRequest(in) != requests {
			continue
		}
		ag := s.toAPIGroup(in)
		c := api.Conversation{Peer: ag.ID, PeerName: in.Name, LastAt: ag.LastAt, Unread: in.Unread, Request: requests, Group: &ag, Timer: ag.Timer}
		ms, _, err := s.groups.Messages(in.ID, "", 1)
		if err != nil {
			return nil, err
		}
		if len(ms) > 0 {
			m := s.toAPIGroupMessage(ms[0], in.Name)
			c.Last = &m
		}
		out = append(out, c)
	}
	return out, nil
}

// groupMessages is Messages of a group: pages newest first.
func (s *Service) groupMessages(g group.ID, pr api.PageRequest) (api.MessagePage, error) {
	in, err := s.groups.Group(g)
	if err != nil {
		return api.MessagePage{}, err
	}
	ms, next, err := s.groups.Messages(g, pr.Cursor, pr.Limit)
	if err != nil {
		return api.MessagePage{}, explain(err, "", "bad cursor")
	}
	page := api.MessagePage{Messages: make([]api.Message, len(ms)), Next: next}
	for i, m := range ms {
		page.Messages[i] = s.toAPIGroupMessage(m, in.Name)
	}
	return page, nil
}

// setGroupTimer sets group g's timer and answers, as for a one-to-one
// conversation, with a message that says so (a group keeps the change in
// its log, not among its messages).
func (s *Service) setGroupTimer(ctx context.Context, g group.ID, seconds int64) (api.Message, error) {
	in, err := s.groups.SetTimer(ctx, g, time.Duration(seconds)*time.Second)
	if err != nil {
		return api.Message{}, err
	}
	id := in.ID.String()
	return api.Message{ID: fmt.Sprintf("timer-%d", time.Now().UnixNano()), From: s.self.ID().String(), To: id, Peer: id, PeerName: in.Name,
		Direction: "out", State: "sent", SentAt: time.Now().UTC(), TimerSet: &seconds}, nil
}

// sendGroup sends text to group g.
func (s *Service) sendGroup(ctx context.Context, g group.ID, text string) (api.Message, error) {
	if text == "" {
		return api.Message{}, api.Errorf(api.CodeBadRequest, "", "empty message")
	}
	return s.sendGroupFile(ctx, g, text, nil)
}

// replyGroup sends a text quoting message replyTo of group g.
func (s *Service) replyGroup(ctx context.Context, g group.ID, text, replyTo string) (api.Message, error) {
	m, err := s.groups.SendReply(ctx, g, []byte(text), nil, replyTo)
	if err != nil {
		return api.Message{}, err
	}
	in, err := s.groups.Group(g)
	if err != nil {
		return api.Message{}, err
	}
	s.countMessage("out", false)
	return s.toAPIGroupMessage(m, in.Name), nil
}

// actGroup reacts to, edits or deletes message a.Target of group g.
func (s *Service) actGroup(ctx context.Context, g group.ID, a groupchat.Action, text []byte) (api.Message, error) {
	m, err := s.groups.Act(ctx, g, a, text)
	if err != nil {
		return api.Message{}, err
	}
	in, err := s.groups.Group(g)
	if err != nil {
		return api.Message{}, err
	}
	return s.toAPIGroupMessage(m, in.Name), nil
}

// sendGroupFile sends a text with an attachment's reference (or none) to
// group g.
func (s *Service) sendGroupFile(ctx context.Context, g group.ID, text string, file []byte) (api.Message, error) {
	m, err := s.groups.Send(ctx, g, []byte(text), file)
	if err != nil {
		return api.Message{}, err
	}
	in, err := s.groups.Group(g)
	if err != nil {
		return api.Message{}, err
	}
	s.countMessage("out", false)
	return s.toAPIGroupMessage(m, in.Name), nil
}
