package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

func idCommand() *command {
	var addrOnly bool
	return &command{
		name: "id", summary: "show this node's account, handle, peer id and addresses", read: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&addrOnly, "addr", false, "print only the address other nodes should pass to --bootstrap")
		},
		run: func(ctx context.Context, e *env, args []string) error { return runID(ctx, e, args, addrOnly) },
	}
}

func runID(ctx context.Context, e *env, args []string, addrOnly bool) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	id, err := c.ID(ctx)
	if err != nil {
		return err
	}
	if addrOnly {
		a := bootstrapAddr(id.Addrs)
		if a == "" {
			return fmt.Errorf("the node has no address yet")
		}
		fmt.Fprintln(e.stdout, a)
		return nil
	}
	return e.print(id, func(w io.Writer) {
		fmt.Fprintf(w, "account  %s\nhandle   %s\npeer     %s\napi      %s\n", id.Account, id.Handle, id.Peer, id.API)
		for _, a := range id.Addrs {
			fmt.Fprintf(w, "addr     %s\n", a)
		}
	})
}

func runStatus(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	return e.print(st, func(w io.Writer) {
		mode := "private (DHT client, reached through relays and hole punching)"
		if st.Public {
			mode = "public (DHT server and relay)"
		}
		fmt.Fprintf(w, "mode           %s\npeers          %d\nrouting table  %d\nrelays         %s\nencryption     %s\nuptime         %s\ndata           %s\n",
			mode, st.Peers, st.RoutingTable, orNone(strings.Join(st.Relays, ", ")), encryptionText(st.Encryption),
			(time.Duration(st.UptimeS) * time.Second).String(), st.DataDir)
		printMailboxes(w, st)
		printTURN(w, st)
		if st.MDNS {
			fmt.Fprintf(w, "local network  looking for nodes (mDNS)\n")
		}
		if st.Invite != nil {
			fmt.Fprintf(w, "invite         %s\n", st.Invite.Invite)
		}
		if st.Hint != "" {
			fmt.Fprintf(w, "hint: %s\n", st.Hint)
		}
	})
}

func encryptionText(e string) string {
	switch e {
	case "passphrase":
		return "passphrase (store key from $CALLSIGN_PASSPHRASE through Argon2id)"
	case "keyfile":
		return "keyfile (store key in store.key, mode 0600; set $CALLSIGN_PASSPHRASE on a new node to use a passphrase)"
	}
	return e
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func runPeers(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Peer < peers[j].Peer })
	return e.print(peers, func(w io.Writer) {
		if len(peers) == 0 {
			fmt.Fprintln(w, "no peers connected")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tDIRECTION\tADDRESS")
		for _, p := range peers {
			addr := ""
			if len(p.Addrs) > 0 {
				addr = p.Addrs[0]
			}
			if p.Limited {
				addr += " (relayed)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Peer, p.Direction, addr)
		}
		tw.Flush()
	})
}

// bootstrapAddr picks the address to hand to other nodes: a direct TCP
// address, else the first one.
func bootstrapAddr(addrs []string) string {
	for _, a := range addrs {
		if strings.Contains(a, "/tcp/") && !strings.Contains(a, "/p2p-circuit") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}
