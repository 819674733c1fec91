package backend

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// groupService is Groups under another name, so that groups can embed it
// and still have a method named Groups.
type groupService = Groups

// groups is an in-memory Groups that lists the groups it holds, none with
// messages, and the members of those joined; any other method panics (its
// embedded Groups is nil).
type groups struct {
	groupService
	all []groupchat.Info
}

func (f *groups) Groups() ([]groupchat.Info, error) { return f.all, nil }

func (f *groups) IsMember(acct identity.AccountID) bool {
	for _, in := range f.all {
		if in.Status == groupchat.Joined && slices.ContainsFunc(in.Members, func(m group.Member) bool { return m.Account.ID() == acct }) {
			return true
		}
	}
	return false
}

func (f *groups) Messages(g group.ID, cursor string, limit int) ([]groupchat.Message, string, error) {
	return nil, "", nil
}

// TestGroupRequests: an invitation to a group from a stranger waits among
// the requests, as a stranger's first message does, newest first with
// them, and not in the chat list; one from a contact, one joined and one
// declined stay where they were (a declined one the web app hides). An
// invitation from someone since blocked is listed nowhere; one from a
// stranger who became a contact, or a fellow member of a group joined,
// since is no stranger's.
func TestGroupRequests(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stranger, friend, pest, writer, later, fellow := newKeyPub(t), newKeyPub(t), newKeyPub(t), newKeyPub(t), newKeyPub(t), newKeyPub(t)
	book := contacts.New(db, msg.AcceptRequest)
	if _, err := book.SetFlag(pest.ID(), &pest, pest.ID().String(), contacts.Blocked, true); err != nil {
		t.Fatal(err)
	}
	if _, err := book.Accept(later.ID(), &later, nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UTC()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// A stranger's first message, between the stranger's two invitations.
	if err := db.Update(func(tx *store.Tx) error {
		return msg.In(tx).PutConversation(msg.Conversation{Peer: writer.ID().String(), LastAt: at(2), Request: true})
	}); err != nil {
		t.Fatal(err)
	}
	info := func(n byte, name string, st groupchat.Status, request bool, by group.Member, m int) groupchat.Info {
		return groupchat.Info{ID: group.ID{n}, Name: name, Status: st, Request: request, InvitedBy: by.Account.ID(), LastAt: at(m),
			Members: []group.Member{by, {Account: newKeyPub(t)}}}
	}
	gs := &groups{all: []groupchat.Info{
		info(1, "Book club", groupchat.Invited, true, group.Member{Account: stranger, Admin: true}, 1),
		info(2, "Chess", groupchat.Invited, true, group.Member{Account: stranger, Admin: true}, 3),
		info(3, "Family", groupchat.Invited, false, group.Member{Account: friend, Admin: true}, 4),
		info(4, "Choir", groupchat.Joined, true, group.Member{Account: fellow, Admin: true}, 5),
		info(5, "Knitting", groupchat.Left, true, group.Member{Account: stranger, Admin: true}, 6),
		info(6, "Spam", groupchat.Invited, true, group.Member{Account: pest, Admin: true}, 7),
		info(7, "Garden", groupchat.Invited, true, group.Member{Account: later, Admin: true}, 8),
		info(8, "Quiz", groupchat.Invited, true, group.Member{Account: fellow, Admin: true}, 9),
	}}
	s := New(Config{Self: newKeyPub(t), DB: db, Contacts: book, Directory: &directory{}, Groups: gs})
	defer s.Close()

	reqs, err := s.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		got = append(got, r.PeerName+"@"+r.Peer)
	}
	want := []string{"Chess@" + group.ID{2}.String(), "@" + writer.ID().String(), "Book club@" + group.ID{1}.String()}
	if len(got) != len(want) {
		t.Fatalf("requests: %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("requests: %q, want %q", got, want)
		}
	}
	chess := reqs[0]
	if g := chess.Group; g == nil || g.ID != chess.Peer || g.Status != "invited" || !g.Request || g.InvitedBy != stranger.ID().String() ||
		!chess.Request || !chess.LastAt.Equal(at(3)) {
		t.Fatalf("the invitation to Chess among the requests: %+v, group %+v", chess, chess.Group)
	}

	convs, err := s.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]api.Conversation{}
	for _, c := range convs {
		listed[c.PeerName] = c
	}
	for _, name := range []string{"Family", "Choir", "Knitting", "Garden", "Quiz"} {
		if c, ok := listed[name]; !ok || c.Group == nil || c.Request {
			t.Errorf("%s in the chat list: %+v (listed: %v)", name, c, ok)
		}
	}
	for _, name := range []string{"Garden", "Quiz"} {
		if g := listed[name].Group; g == nil || g.Status != "invited" || g.Request {
			t.Errorf("the invitation to %s, from no stranger now: %+v", name, g)
		}
	}
	for _, name := range []string{"Book club", "Chess", "Spam"} {
		if _, ok := listed[name]; ok {
			t.Errorf("the stranger's invitation to %s is in the chat list", name)
		}
	}
	if len(convs) != 5 {
		t.Errorf("chat list: %d conversations, want the 5 groups", len(convs))
	}
}
