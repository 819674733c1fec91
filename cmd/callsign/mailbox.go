package main

import (
	"fmt"
	"io"

	"github.com/callsign/callsign/api"
)

// printMailboxes adds status lines for the node's mailboxes and, on a
// public node, what its own mailbox holds.
func printMailboxes(w io.Writer, st api.Status) {
	if len(st.Mailboxes) == 0 && !st.Public {
		fmt.Fprintf(w, "mailboxes      none (messages reach this node only while it is online)\n")
	}
	for _, m := range st.Mailboxes {
		state := "registered"
		if !m.Registered {
			state = "not registered"
		}
		line := fmt.Sprintf("%s, %d waiting, %d drained, %d one-time prekeys", state, m.Waiting, m.Drained, m.Prekeys)
		if m.Error != "" {
			line += ", last error: " + m.Error
		}
		fmt.Fprintf(w, "mailbox        %s: %s\n", m.Peer, line)
	}
	if st.Mailbox != nil {
		line := fmt.Sprintf("%d members, %d messages waiting (%d bytes), %d one-time prekeys, %d files parked (%d bytes)",
			st.Mailbox.Members, st.Mailbox.Waiting, st.Mailbox.Bytes, st.Mailbox.Prekeys, st.Mailbox.Files, st.Mailbox.FileBytes)
		if st.Mailbox.PartialFiles > 0 {
			line += fmt.Sprintf(", %d arriving", st.Mailbox.PartialFiles)
		}
		fmt.Fprintf(w, "holds          %s\n", line)
	}
}
