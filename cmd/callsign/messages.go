package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callsign/callsign/api"
)

func messageCommands() []*command {
	return []*command{
		{name: "send", args: "NAME TEXT", summary: "send an end-to-end encrypted message (returns once it is safely queued)", read: true, run: runSend},
		messagesCommand(),
		{name: "requests", summary: "list message requests from people who are not your contacts", read: true, run: runRequests},
		{name: "accept", args: "NAME", summary: "accept a message request: the sender becomes a contact", run: contactAction("accept")},
		{name: "block", args: "NAME", summary: "block someone: their messages are dropped silently", run: contactAction("block")},
		{name: "unblock", args: "NAME", summary: "unblock someone", run: contactAction("unblock")},
		{name: "follow", args: "NAME", summary: "follow someone", run: contactAction("follow")},
		{name: "unfollow", args: "NAME", summary: "stop following someone", run: contactAction("unfollow")},
		verifyCommand(),
	}
}

func runSend(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 {
		return usageError{msg: fmt.Sprintf("expected NAME TEXT, got %d argument(s)", len(args))}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	m, err := c.Send(ctx, args[0], strings.Join(args[1:], " "))
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
	var follow bool
	return &command{
		name: "messages", args: "[NAME]", summary: "list conversations, or the messages with NAME (oldest first)", read: true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&follow, "follow", false, "keep printing new messages and state changes until interrupted")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 1 {
				return usageError{msg: fmt.Sprintf("expected at most one NAME, got %d arguments", len(args))}
			}
			c, err := e.api()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				if follow {
					return followMessages(ctx, e, c, "")
				}
				convs, err := c.Conversations(ctx)
				if err != nil {
					return err
				}
				return printConversations(e, convs, "no conversations yet; start one with: callsign send NAME TEXT")
			}
			var all []api.Message
			warning, cursor := "", ""
			for {
				p, err := c.Messages(ctx, args[0], cursor, 1000)
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
			if err := e.print(all, func(w io.Writer) {
				for _, m := range all {
					printMessage(w, m)
				}
			}); err != nil {
				return err
			}
			if follow {
				peer := args[0]
				if len(all) > 0 {
					peer = all[0].Peer
				}
				return followMessages(ctx, e, c, peer)
			}
			return nil
		},
	}
}

func printMessage(w io.Writer, m api.Message) {
	who := m.PeerName
	if who == "" {
		who = m.Peer
	}
	arrow := "<-"
	if m.Direction == "out" {
		arrow = "->"
	}
	fmt.Fprintf(w, "%s %s %s  %s  [%s]\n", m.SentAt.Local().Format("2006-01-02 15:04:05"), arrow, who, m.Text, m.State)
}

// followMessages prints message and state events (for one peer, if set)
// until ctx ends.
func followMessages(ctx context.Context, e *env, c *api.Client, peer string) error {
	events, err := c.Events(ctx)
	if err != nil {
		return err
	}
	for ev := range events {
		switch ev.Type {
		case api.EventMessage:
			var m api.Message
			if json.Unmarshal(ev.Data, &m) != nil || (peer != "" && m.Peer != peer && m.PeerName != peer) {
				continue
			}
			if e.json {
				json.NewEncoder(e.stdout).Encode(m)
			} else {
				printMessage(e.stdout, m)
			}
		case api.EventState:
			var s api.StateChange
			if json.Unmarshal(ev.Data, &s) != nil || (peer != "" && s.Peer != peer) {
				continue
			}
			if e.json {
				json.NewEncoder(e.stdout).Encode(s)
			} else {
				fmt.Fprintf(e.stdout, "%s %s is %s\n", time.Now().Format("15:04:05"), s.ID, s.State)
			}
		case api.EventKeyChange:
			fmt.Fprintf(e.stderr, "warning: a contact's key changed: %s\n", ev.Data)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("the node closed the event stream")
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

func runRequests(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	reqs, err := c.Requests(ctx)
	if err != nil {
		return err
	}
	return printConversations(e, reqs, "no message requests")
}

func contactAction(action string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := e.clientFor(args, 1, "NAME")
		if err != nil {
			return err
		}
		var ct api.Contact
		if action == "accept" {
			ct, err = c.Accept(ctx, args[0])
		} else {
			ct, err = c.ContactAction(ctx, args[0], action)
		}
		if err != nil {
			return err
		}
		past := map[string]string{"accept": "accepted", "block": "blocked", "unblock": "unblocked", "follow": "following", "unfollow": "no longer following"}[action]
		fmt.Fprintf(e.stdout, "%s %s (%s)\n", past, ct.Petname, ct.Account)
		return nil
	}
}

func verifyCommand() *command {
	var confirmed bool
	return &command{
		name: "verify", args: "NAME", summary: "show the safety number with a contact; --confirmed marks it verified", read: true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&confirmed, "confirmed", false, "you compared the number with them (in person or on a call you trust): mark the contact verified")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 1, "NAME")
			if err != nil {
				return err
			}
			s, err := c.Safety(ctx, args[0], confirmed)
			if err != nil {
				return err
			}
			return e.print(s, func(w io.Writer) {
				if s.KeyChanged {
					fmt.Fprintf(w, "WARNING: %s's key changed. This is the number for the new key.\n", s.Name)
				}
				fmt.Fprintf(w, "safety number with %s (%s):\n\n    %s\n\n", s.Name, s.Account, s.SafetyNumber)
				if s.Verified {
					fmt.Fprintln(w, "verified")
				} else {
					fmt.Fprintf(w, "compare it with %s's; if it matches, run: callsign verify %s --confirmed\n", s.Name, args[0])
				}
			})
		},
	}
}
