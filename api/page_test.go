package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// bigConversation is a backend whose one conversation is msgs, paged like
// the node pages its store: a cursor is the index after (or, with Newest,
// before) the last page.
type bigConversation struct {
	fakeBackend
	msgs  []Message
	pages []int // the Limit of every call
}

func (f *bigConversation) Messages(_ context.Context, name string, p PageRequest) (MessagePage, error) {
	f.pages = append(f.pages, p.Limit)
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	if !p.Newest {
		from := 0
		if p.Cursor != "" {
			from, _ = strconv.Atoi(p.Cursor)
		}
		to := min(from+limit, len(f.msgs))
		page := MessagePage{Messages: f.msgs[from:to]}
		if to < len(f.msgs) {
			page.Next = strconv.Itoa(to)
		}
		return page, nil
	}
	to := len(f.msgs)
	if p.Cursor != "" {
		to, _ = strconv.Atoi(p.Cursor)
	}
	from := max(to-limit, 0)
	page := MessagePage{Messages: f.msgs[from:to]}
	if from > 0 {
		page.Next = strconv.Itoa(from)
	}
	return page, nil
}

// TestConversationPagesBoundedInBytes: a conversation of large messages
// (5 MiB; a stranger's flood before the request caps made 233 MB, which
// broke the client at 16 MiB) pages through the client without error,
// each page under MaxPageBytes however many messages the limit asks for,
// in both directions, every message once.
func TestConversationPagesBoundedInBytes(t *testing.T) {
	fb := &bigConversation{}
	body := strings.Repeat("long message ", 60000/13)
	for i := range 80 {
		fb.msgs = append(fb.msgs, Message{ID: fmt.Sprintf("m%03d", i), Text: fmt.Sprintf("%03d %s", i, body), Direction: "in", State: "received"})
	}
	// One message that JSON escapes six times over.
	fb.msgs[40].Text = strings.Repeat("<", 64<<10)
	s, err := NewServer(ServerConfig{Backend: fb, Token: NewToken()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(s.Addr(), s.cfg.Token)
	defer c.Close()
	ctx := context.Background()

	for _, newest := range []bool{false, true} {
		var got []Message
		cursor := ""
		pages := 0
		for {
			p, err := c.MessagePage(ctx, "big", PageRequest{Cursor: cursor, Limit: 1000, Newest: newest})
			if err != nil {
				t.Fatalf("newest=%v, page %d: %v", newest, pages, err)
			}
			if len(p.Messages) == 0 {
				t.Fatalf("newest=%v, page %d is empty", newest, pages)
			}
			if newest {
				got = append(append([]Message(nil), p.Messages...), got...)
			} else {
				got = append(got, p.Messages...)
			}
			pages++
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if len(got) != len(fb.msgs) {
			t.Fatalf("newest=%v: %d messages in %d pages, want %d", newest, len(got), pages, len(fb.msgs))
		}
		for i, m := range got {
			if m.ID != fb.msgs[i].ID || m.Text != fb.msgs[i].Text {
				t.Fatalf("newest=%v: message %d is %s, want %s", newest, i, m.ID, fb.msgs[i].ID)
			}
		}
		if pages < 2 {
			t.Fatalf("newest=%v: one page for 5 MiB", newest)
		}
	}
	// The bytes on the wire: the first page a limit of 1000 gets.
	for _, q := range []string{"limit=1000"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/api/v1/conversations/big?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n > MaxPageBytes || n < MaxPageBytes/2 {
			t.Fatalf("%s: %s, %d bytes, %v; want at most %d (and not far below)", q, resp.Status, n, err, MaxPageBytes)
		}
	}
	// A small page is one call to the backend.
	fb.pages = nil
	if p, err := c.MessagePage(ctx, "big", PageRequest{Limit: 3}); err != nil || len(p.Messages) != 3 || p.Next != "3" || len(fb.pages) != 1 {
		t.Fatalf("a 3-message page: %d messages, next %q, %v; backend called with limits %v", len(p.Messages), p.Next, err, fb.pages)
	}
}
