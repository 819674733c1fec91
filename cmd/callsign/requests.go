package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/callsign/callsign/api"
)

// Requests (`requests list`, `accept`, `decline`, `block`) are the first
// messages of people who are not contacts and their invitations to
// groups, as the web app's Requests tab shows them: a message request is
// accepted (the sender becomes a contact) or blocked; an invitation is
// joined, declined, or declined with its sender blocked.

// Kinds of request, in `requests list --json`.
const (
	kindMessage = "message"
	kindGroup   = "group_invitation"
)

// request is a row of `requests list --json`: the conversation, and
// which kind of request it is.
type request struct {
	Kind string `json:"kind"` // message or group_invitation
	api.Conversation
}

func runRequests(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	convs, err := c.Requests(ctx)
	if err != nil {
		return err
	}
	reqs := make([]request, len(convs))
	for i, cv := range convs {
		reqs[i] = request{Kind: kindMessage, Conversation: cv}
		if cv.Group != nil {
			reqs[i].Kind = kindGroup
		}
	}
	return e.print(reqs, func(w io.Writer) {
		if len(reqs) == 0 {
			fmt.Fprintln(w, "no message requests")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WITH\tKIND\tID\tUNREAD\tLAST")
		for _, r := range reqs {
			name, kind := r.PeerName, "message request"
			if name == "" {
				name = "(unknown)"
			}
			if g := r.Group; g != nil {
				by := g.InvitedByName
				if by == "" {
					by = g.InvitedBy
				}
				kind = "group invitation from " + by
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", name, kind, r.Peer, r.Unread, r.LastAt.Local().Format("2006-01-02 15:04"))
		}
		tw.Flush()
	})
}

// invitation returns the group name names when this account is invited
// to it (ok); not ok when name names no group, or one it is no longer
// invited to.
func invitation(ctx context.Context, c *api.Client, name string) (g api.Group, ok bool, err error) {
	g, err = c.Group(ctx, name)
	switch {
	case api.IsCode(err, api.CodeNotFound) || api.IsCode(err, api.CodeUnavailable):
		return api.Group{}, false, nil
	case err != nil:
		return api.Group{}, false, err
	}
	return g, g.Status == "invited", nil
}

// runRequestAccept accepts a message request, or joins the group of an
// invitation (as `group join` does).
func runRequestAccept(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	g, ok, err := invitation(ctx, c, args[0])
	if err != nil {
		return err
	}
	if !ok {
		return contactAction("accept")(ctx, e, args)
	}
	if g, err = c.GroupAction(ctx, g.ID, "join", api.GroupAction{}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "joined %s (%s)\n", g.Name, g.ID)
	return nil
}

// runRequestDecline declines an invitation to a group (as `group leave`
// does).
func runRequestDecline(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	g, ok, err := invitation(ctx, c, args[0])
	if err != nil {
		return err
	}
	if !ok {
		return &hintError{msg: fmt.Sprintf("no invitation to a group %q", args[0]),
			hint: "a message request is accepted (callsign requests accept NAME) or blocked (callsign requests block NAME); `callsign requests` lists them"}
	}
	if g, err = c.GroupAction(ctx, g.ID, "leave", api.GroupAction{}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "declined %s (%s)\n", g.Name, g.ID)
	return nil
}

// runRequestBlock blocks who sent a message request; for an invitation
// to a group, it declines the invitation and blocks who sent it.
func runRequestBlock(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	g, ok, err := invitation(ctx, c, args[0])
	if err != nil {
		return err
	}
	if !ok {
		return contactAction("block")(ctx, e, args)
	}
	by := g.InvitedBy
	if by == "" {
		return &hintError{msg: fmt.Sprintf("the invitation to %s names nobody who sent it", g.Name),
			hint: fmt.Sprintf("decline it: callsign requests decline %s", g.ID)}
	}
	if g, err = c.GroupAction(ctx, g.ID, "leave", api.GroupAction{}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "declined %s (%s)\n", g.Name, g.ID)
	ct, err := c.ContactAction(ctx, by, "block")
	if err != nil {
		return fmt.Errorf("block %s: %w", by, err)
	}
	fmt.Fprintf(e.stdout, "blocked %s (%s)\n", ct.Petname, ct.Account)
	return nil
}
