package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"io"
	"os"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/callsign/callsign/api"
)

func inviteCommand() *command {
	var qr bool
	return &command{
		name:    "invite",
		summary: "print the invite a newcomer passes to `callsign up --join`",
		details: []string{
			"A community node (`callsign up --public`) prints its own invite: its peer id and the addresses it can be reached on. " +
				"A member's node prints the invite it joined with, to pass on to a friend. " +
				"On a terminal a QR code of it follows, for a phone to scan.",
			"  callsign invite",
			"  callsign up --join callsign:join/...   (on the newcomer's machine)",
		},
		read: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&qr, "qr", false, "print the QR code even when the output is not a terminal")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 0, "no arguments")
			if err != nil {
				return err
			}
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if st.Invite == nil {
				return &hintError{
					msg:  "this node has no invite to give",
					hint: "a community node started with `callsign up --public` has one; a member's node passes on the invite it joined with (`callsign up --join`)",
				}
			}
			return e.print(st.Invite, func(w io.Writer) {
				fmt.Fprintln(w, st.Invite.Invite)
				if qr || isTerminalWriter(w) {
					printInviteQR(w, st.Invite)
				}
			})
		},
	}
}

// printInviteQR draws a QR code of the invite with text characters, and
// what to do with it.
func printInviteQR(w io.Writer, inv *api.Invite) {
	if q, err := qrcode.New(inv.Invite, qrcode.Low); err == nil {
		fmt.Fprint(w, q.ToSmallString(false))
	}
	where := "this community node"
	if !inv.Own {
		where = "the community node this node joined through"
	}
	if inv.Name != "" {
		where += " (" + inv.Name + ")"
	}
	fmt.Fprintf(w, "a newcomer joins %s with: callsign up --join INVITE\n", where)
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
