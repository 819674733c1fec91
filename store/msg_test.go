package store_test

import (
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// Binds the store's tests to msg (store/msgdata_test.go says why).
func init() {
	store.SetMsgHooks(func(tx *store.Tx) store.MsgData { return msgData{msg.In(tx)} },
		map[string]store.Check{store.SpaceMsg: msg.Check})
}

// msgData converts between msg's types and the store tests' copies.
type msgData struct{ d *msg.Data }

func (m msgData) PutMessage(v store.Message) error { return m.d.PutMessage(toMsg(v)) }
func (m msgData) InsertQueued(v store.Message, env []byte) error {
	return m.d.InsertQueued(toMsg(v), msg.Copy{Env: env})
}
func (m msgData) Message(peer, id string) (store.Message, error) {
	v, err := m.d.Message(peer, id)
	return fromMsg(v), err
}
func (m msgData) Messages(peer string, p store.Page) ([]store.Message, string, error) {
	ms, next, err := m.d.Messages(peer, msg.Page(p))
	return convert(ms, fromMsg), next, err
}
func (m msgData) SetMessageState(peer, id, state string) error {
	return m.d.SetMessageState(peer, id, state)
}
func (m msgData) IDUse(peer, id string) (store.IDUse, error) {
	u, err := m.d.IDUse(peer, id)
	return store.IDUse(u), err
}
func (m msgData) QueuedEnvelope(peer, id string) ([]byte, error) {
	return m.d.QueuedEnvelope(peer, identity.DeviceID{}, id)
}
func (m msgData) Queued() ([]store.QueuedMessage, error) {
	qs, err := m.d.Queued()
	return convert(qs, func(v msg.QueuedMessage) store.QueuedMessage { return store.QueuedMessage(v) }), err
}

// The frozen OutboxEntry has no device: the migrations' entries are the
// account's (msg.OutboxEntry.Dev zero).
func (m msgData) PutOutbox(e store.OutboxEntry) error {
	return m.d.PutOutbox(msg.OutboxEntry{ID: e.ID, Peer: e.Peer, Envelope: e.Envelope, Attempts: e.Attempts, NextAttempt: e.NextAttempt, CreatedAt: e.CreatedAt})
}
func (m msgData) DueOutbox(now time.Time, limit int) ([]store.OutboxEntry, error) {
	es, err := m.d.DueOutbox(now, limit)
	return convert(es, func(v msg.OutboxEntry) store.OutboxEntry {
		return store.OutboxEntry{ID: v.ID, Peer: v.Peer, Envelope: v.Envelope, Attempts: v.Attempts, NextAttempt: v.NextAttempt, CreatedAt: v.CreatedAt}
	}), err
}
func (m msgData) PutConversation(c store.Conversation) error {
	return m.d.PutConversation(msg.Conversation{Peer: c.Peer, NextSeq: c.NextSeq, LastAt: c.LastAt, Unread: c.Unread, Request: c.Request})
}
func (m msgData) Conversation(peer string) (store.Conversation, error) {
	c, err := m.d.Conversation(peer)
	return fromConv(c), err
}
func (m msgData) Conversations() ([]store.Conversation, error) {
	cs, err := m.d.Conversations()
	return convert(cs, fromConv), err
}

// toMsg and fromMsg convert a message: the frozen form has no attachment
// (msg.Message.File), which the store's tests never use.
func toMsg(v store.Message) msg.Message {
	return msg.Message{ID: v.ID, Peer: v.Peer, Direction: v.Direction, Seq: v.Seq, Body: v.Body, SentAt: v.SentAt, At: v.At, State: v.State}
}

func fromMsg(v msg.Message) store.Message {
	return store.Message{ID: v.ID, Peer: v.Peer, Direction: v.Direction, Seq: v.Seq, Body: v.Body, SentAt: v.SentAt, At: v.At, State: v.State}
}

// fromConv drops what the frozen form has no field for (a timer).
func fromConv(c msg.Conversation) store.Conversation {
	return store.Conversation{Peer: c.Peer, NextSeq: c.NextSeq, LastAt: c.LastAt, Unread: c.Unread, Request: c.Request}
}

func convert[F, T any](in []F, conv func(F) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}
