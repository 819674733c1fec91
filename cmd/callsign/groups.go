package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/callsign/callsign/api"
)

// Group chats (docs/GROUPS.md): `group create`, `invite`, `join`, `leave`,
// `remove`, `list`, `members`; `send NAME TEXT` and `messages NAME` take a
// group's name (or id) as they take a contact's.
func groupCommands() []*command {
	return []*command{
		{name: "group create", args: "NAME", summary: "create a group chat with you as its admin", read: true, run: runGroupCreate,
			details: []string{
				"Then invite people with `callsign group invite NAME HANDLE...`, and write with `callsign send NAME TEXT`.",
				"  callsign group create \"Book club\"",
			}},
		{name: "group invite", args: "NAME HANDLE...", summary: "add people to a group (admins only): each sees an invitation until they join", read: true, run: runGroupInvite,
			details: []string{"HANDLE is a handle, a contact's petname or an account id.", "  callsign group invite \"Book club\" @bob carol"}},
		{name: "group join", args: "NAME", summary: "accept an invitation to a group", read: true, run: groupAction("join")},
		{name: "group leave", args: "NAME", summary: "leave a group, or decline an invitation to it", read: true, run: groupAction("leave")},
		{name: "group remove", args: "NAME HANDLE", summary: "remove someone from a group (admins only): they read nothing sent after", read: true, run: groupMemberAction("remove", false)},
		{name: "group admin", args: "NAME HANDLE", summary: "make a member an admin (admins only)", read: true, run: groupMemberAction("admin", true)},
		{name: "group dismiss", args: "NAME HANDLE", summary: "make an admin a plain member again (admins only)", read: true, run: groupMemberAction("admin", false)},
		{name: "group rename", args: "NAME NEWNAME", summary: "rename a group (admins only)", read: true, run: runGroupRename},
		{name: "group list", aliases: []string{"groups"}, summary: "list your groups and invitations", read: true, run: runGroupList},
		{name: "group members", args: "NAME", summary: "list a group's members", read: true, run: runGroupMembers},
	}
}

func printGroup(e *env, g api.Group) error {
	return e.print(g, func(w io.Writer) {
		fmt.Fprintf(w, "%s  %s  (%s, %d members)\n", g.ID, g.Name, g.Status, len(g.Members))
	})
}

func runGroupCreate(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	g, err := c.CreateGroup(ctx, args[0])
	if err != nil {
		return err
	}
	return printGroup(e, g)
}

func runGroupInvite(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 {
		return usageError{msg: fmt.Sprintf("expected NAME HANDLE..., got %d argument(s)", len(args))}
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	g, err := c.GroupAction(ctx, args[0], "invite", api.GroupAction{Members: args[1:]})
	if err != nil {
		return err
	}
	return printGroup(e, g)
}

func groupAction(action string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := e.clientFor(args, 1, "NAME")
		if err != nil {
			return err
		}
		g, err := c.GroupAction(ctx, args[0], action, api.GroupAction{})
		if err != nil {
			return err
		}
		return printGroup(e, g)
	}
}

func groupMemberAction(action string, admin bool) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := e.clientFor(args, 2, "NAME HANDLE")
		if err != nil {
			return err
		}
		g, err := c.GroupAction(ctx, args[0], action, api.GroupAction{Members: args[1:], Admin: admin})
		if err != nil {
			return err
		}
		return printGroup(e, g)
	}
}

func runGroupRename(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 2, "NAME NEWNAME")
	if err != nil {
		return err
	}
	g, err := c.GroupAction(ctx, args[0], "rename", api.GroupAction{Name: args[1]})
	if err != nil {
		return err
	}
	return printGroup(e, g)
}

func runGroupList(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	gs, err := c.Groups(ctx)
	if err != nil {
		return err
	}
	return e.print(gs, func(w io.Writer) {
		if len(gs) == 0 {
			fmt.Fprintln(w, "no groups yet; start one with: callsign group create NAME")
		}
		for _, g := range gs {
			note := g.Status
			if g.Status == "invited" && g.InvitedByName != "" {
				note = "invited by " + g.InvitedByName
			}
			if g.Unread > 0 {
				note += fmt.Sprintf(", %d unread", g.Unread)
			}
			fmt.Fprintf(w, "%s  %-24s %2d members  %s\n", g.ID, g.Name, len(g.Members), note)
		}
	})
}

// groupMember is what `group members --json` prints of each member.
type groupMember struct {
	Account string `json:"account"`
	Handle  string `json:"handle"`
	Admin   bool   `json:"admin"`
	Name    string `json:"name,omitempty"`
	You     bool   `json:"you,omitempty"`
}

func runGroupMembers(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	g, err := c.Group(ctx, args[0])
	if err != nil {
		return err
	}
	ms := make([]groupMember, len(g.Members))
	for i, m := range g.Members {
		ms[i] = groupMember{Account: m.Account, Handle: m.Handle, Admin: m.Admin, Name: m.Name, You: m.You}
	}
	return e.print(ms, func(w io.Writer) {
		for _, m := range ms {
			var notes []string
			if m.You {
				notes = append(notes, "you")
			}
			if m.Admin {
				notes = append(notes, "admin")
			}
			name := m.Name
			if name == "" {
				name = m.Handle
			}
			fmt.Fprintf(w, "%s  %-24s %s\n", m.Account, name, strings.Join(notes, ", "))
		}
	})
}
