package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spf13/pflag"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callsign/callsign/api"
)

func sendCommand() *command {
	var file string
	return &command{
		name: "messages send", aliases: []string{"send"}, args: "NAME TEXT",
		forms:   []string{"NAME TEXT", "NAME --file PATH [CAPTION]"},
		summary: "send an end-to-end encrypted message or file (returns once it is safely queued)", read: true,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&file, "file", "", "send the file at PATH (a photo, a voice note, any file up to the node's limit, 100 MiB by default); TEXT is then its caption")
		},
		run: func(ctx context.Context, e *env, args []string) error { return runSend(ctx, e, args, file) },
	}
}

func runSend(ctx context.Context, e *env, args []string, file string) error {
	if len(args) < 2 && (file == "" || len(args) < 1) {
		return usageError{msg: fmt.Sprintf("expected NAME TEXT, got %d argument(s)", len(args))}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var m api.Message
	if file != "" {
		m, err = sendFile(ctx, c, args[0], strings.Join(args[1:], " "), file)
	} else {
		m, err = c.Send(ctx, args[0], strings.Join(args[1:], " "))
	}
	if err != nil {
		return err
	}
	return e.print(struct {
		ID    string `json:"id"`
		State string `json:"state"`
		To    string `json:"to"`
	}{m.ID, m.State, m.To}, func(w io.Writer) { fmt.Fprintf(w, "%s %s\n", m.State, m.ID) })
}

func messagesCommand() *command {
	var follow, keepUnread bool
	return &command{
		name: "messages list", aliases: []string{"messages"}, args: "[NAME]", read: true,
		summary: "list conversations, or the messages with NAME (oldest first) and mark those you receive read",
		details: []string{
			"Showing a message marks it read, so a sender in your contacts sees that you read it; --keep-unread leaves it unread.",
		},
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&follow, "follow", false, "keep printing new messages (the ones you send too) and state changes until interrupted")
			fs.BoolVar(&keepUnread, "keep-unread", false, "do not mark the messages shown read")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 1 {
				return usageError{msg: fmt.Sprintf("expected at most one NAME, got %d arguments", len(args))}
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			f := &follower{e: e, c: c, names: newPetnames(c), markRead: !keepUnread, seen: map[string]string{}}
			var events <-chan api.Event
			if follow {
				// Subscribe before listing, so that nothing arriving in
				// between is missed; what is both listed and in an event
				// is printed once.
				ctx, cancel := context.WithCancel(ctx)
				defer cancel() // ends the stream when listing fails
				if events, err = c.Events(ctx); err != nil {
					return err
				}
			}
			if len(args) == 0 {
				if !follow {
					convs, err := c.Conversations(ctx)
					if err != nil {
						return err
					}
					return printConversations(e, convs, "no conversations yet; start one with: callsign send NAME TEXT")
				}
				return f.follow(ctx, events)
			}
			name := args[0]
			var all []api.Message
			warning, cursor := "", ""
			for {
				p, err := c.Messages(ctx, name, cursor, 1000)
				if err != nil {
					return err
				}
				all = append(all, p.Messages...)
				warning = p.Warning
				if p.Next == "" {
					break
				}
				cursor = p.Next
			}
			if warning != "" {
				fmt.Fprintf(e.stderr, "warning: %s\n", warning)
			}
			if all == nil {
				all = []api.Message{}
			}
			if err := e.print(all, func(w io.Writer) {
				for _, m := range all {
					printMessage(w, m)
				}
			}); err != nil {
				return err
			}
			var unread []string
			for _, m := range all {
				f.seen[m.ID] = m.Direction
				if m.Direction == "in" && m.State != "read" {
					unread = append(unread, m.ID)
				}
			}
			if len(all) > 0 {
				f.markReadIDs(ctx, all[0].Peer, unread)
			}
			if !follow {
				return nil
			}
			if len(all) > 0 {
				f.peer = all[0].Peer
			} else {
				f.peer = f.resolve(ctx, name)
			}
			all = nil
			return f.follow(ctx, events)
		},
	}
}

func sendFile(ctx context.Context, c *api.Client, to, caption, path string) (api.Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.Message{}, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return api.Message{}, fmt.Errorf("%s is not a file", path)
	}
	typ := mime.TypeByExtension(filepath.Ext(path))
	if mt, _, err := mime.ParseMediaType(typ); err == nil {
		typ = mt
	}
	return c.SendFile(ctx, api.FileUpload{To: to, Caption: caption, Name: filepath.Base(path), Type: typ, Body: f})
}

// runSave writes the file of message ID into DIR under the name it was
// sent with; an existing file is never overwritten (" (2)" and so on is
// added to the name).
func runSave(ctx context.Context, e *env, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError{msg: fmt.Sprintf("expected ID [DIR], got %d argument(s)", len(args))}
	}
	dir := "."
	if len(args) == 2 {
		dir = args[1]
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".callsign-save-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// A file not on this node yet is being fetched: wait for it.
	name, _, err := c.File(ctx, "", args[0], tmp)
	for waited, until := false, time.Now().Add(10*time.Minute); api.IsCode(err, api.CodeUnavailable) && time.Now().Before(until); {
		if !waited {
			fmt.Fprintln(e.stderr, "the file is not on this node yet; fetching it from the sender...")
			waited = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		name, _, err = c.File(ctx, "", args[0], tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	name = filepath.Base(filepath.Clean("/" + name)) // the node checked it; never a path here
	if name == "/" || name == "." {
		name = args[0]
	}
	path, err := freeName(dir, name)
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return e.print(struct {
		ID   string `json:"id"`
		Path string `json:"path"`
	}{args[0], path}, func(w io.Writer) { fmt.Fprintln(w, path) })
}

// freeName is dir/name, or dir/"base (n).ext" for the first n free.
func freeName(dir, name string) (string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 1; i < 1000; i++ {
		p := filepath.Join(dir, name)
		if i > 1 {
			p = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", base, i, ext))
		}
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

func printMessage(w io.Writer, m api.Message) {
	who := m.PeerName
	if who == "" {
		who = m.Peer
	}
	if m.FromName != "" || (m.Direction == "in" && m.From != "" && m.Peer != m.From) {
		// A group's message: the group, then its sender.
		from := m.FromName
		if from == "" {
			from = m.From
		}
		who += " / " + from
	}
	arrow := "<-"
	if m.Direction == "out" {
		arrow = "->"
	}
	text := m.Text
	switch {
	case m.Deleted:
		text = "(deleted)"
	case m.Edited:
		text += " (edited)"
	}
	if q := m.Quote; q != nil {
		text = fmt.Sprintf("(replying to %q) %s", q.Text, text)
	}
	for _, r := range m.Reactions {
		text += " " + r.Emoji
	}
	if f := m.File; f != nil {
		// The ID is what `save` takes.
		text = strings.TrimSpace(fmt.Sprintf("[file %s, %s, %s: save %s] %s", f.Name, humanBytes(f.Size), f.State, m.ID, m.Text))
	}
	fmt.Fprintf(w, "%s %s %s  %s  [%s]\n", m.SentAt.Local().Format("2006-01-02 15:04:05"), arrow, who, text, m.State)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// follower prints the message and state events of `messages --follow`.
type follower struct {
	e        *env
	c        *api.Client
	names    *petnames
	peer     string // the account followed; "" follows everyone
	markRead bool   // mark incoming messages read as they are shown
	warned   bool   // a failure to mark read was reported
	// seen holds the messages shown, by id, with their direction: each is
	// shown once, and the state changes of incoming ones (read, when this
	// follower marks them) are not news.
	seen map[string]string
}

// resolve returns the account id name stands for, to match events by;
// name itself when it cannot tell.
func (f *follower) resolve(ctx context.Context, name string) string {
	if a, ok := f.names.account(ctx, name); ok {
		return a
	}
	if wi, err := f.c.Whois(ctx, name); err == nil && wi.Status == "ok" && wi.Account != "" {
		return wi.Account
	}
	return name
}

// follow prints events until ctx ends.
func (f *follower) follow(ctx context.Context, events <-chan api.Event) error {
	e := f.e
	for ev := range events {
		switch ev.Type {
		case api.EventMessage:
			var m api.Message
			if json.Unmarshal(ev.Data, &m) != nil || !f.wants(m.Peer, m.PeerName) {
				continue
			}
			if _, ok := f.seen[m.ID]; ok {
				continue
			}
			f.seen[m.ID] = m.Direction
			m.PeerName = f.names.name(ctx, m.Peer, m.PeerName)
			if m.PeerName == m.Peer {
				m.PeerName = ""
			}
			if e.json {
				json.NewEncoder(e.stdout).Encode(m)
			} else {
				printMessage(e.stdout, m)
			}
			if m.Direction == "in" && m.State != "read" {
				f.markReadIDs(ctx, m.Peer, []string{m.ID})
			}
		case api.EventState:
			var s api.StateChange
			if json.Unmarshal(ev.Data, &s) != nil || !f.wants(s.Peer, "") || f.seen[s.ID] == "in" {
				continue
			}
			who := f.names.name(ctx, s.Peer, "")
			if e.json {
				out := struct {
					api.StateChange
					PeerName string `json:"peer_name,omitempty"`
				}{s, who}
				if who == s.Peer {
					out.PeerName = ""
				}
				json.NewEncoder(e.stdout).Encode(out)
			} else {
				fmt.Fprintf(e.stdout, "%s %s  message %s is %s\n", time.Now().Format("2006-01-02 15:04:05"), who, s.ID, s.State)
			}
		case api.EventKeyChange:
			var k api.KeyChange
			if json.Unmarshal(ev.Data, &k) != nil {
				continue
			}
			fmt.Fprintf(e.stderr, "warning: the key of %s (%s) changed; messages from the new key wait until you verify: callsign verify %s\n",
				k.Contact, k.Handle, k.Contact)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return &hintError{msg: "the node closed the event stream", hint: "is the node still running? callsign status"}
}

// wants reports whether the follower shows what happens with account
// (known by name, if the event gives one).
func (f *follower) wants(account, name string) bool {
	return f.peer == "" || account == f.peer || (name != "" && name == f.peer)
}

// markReadIDs marks the incoming messages ids from account read, unless
// the user keeps them unread. A failure is a warning: the messages were
// shown all the same.
func (f *follower) markReadIDs(ctx context.Context, account string, ids []string) {
	if !f.markRead || len(ids) == 0 { // no ids would mean all of them
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.c.MarkRead(ctx, account, ids); err != nil && !f.warned && ctx.Err() == nil {
		f.warned = true
		fmt.Fprintf(f.e.stderr, "warning: cannot mark the messages read: %s\n", oneLine(err.Error()))
	}
}

func printConversations(e *env, convs []api.Conversation, empty string) error {
	if convs == nil {
		convs = []api.Conversation{}
	}
	return e.print(convs, func(w io.Writer) {
		if len(convs) == 0 {
			fmt.Fprintln(w, empty)
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WITH\tACCOUNT\tUNREAD\tLAST")
		for _, c := range convs {
			name := c.PeerName
			if name == "" {
				name = "(unknown)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", name, c.Peer, c.Unread, c.LastAt.Local().Format("2006-01-02 15:04"))
		}
		tw.Flush()
	})
}
