package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callsign/callsign/api"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed; the message says why
	exitUsage = 2 // the command line was wrong
)

// usageError is a command line the CLI cannot make sense of. The CLI
// prints the command's usage line after it.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }
func (e usageError) Hint() string  { return e.hint }

// hinter is an error that knows what the user can do about it.
type hinter interface{ Hint() string }

// hintError is an error with a hint.
type hintError struct{ msg, hint string }

func (h *hintError) Error() string { return h.msg }
func (h *hintError) Hint() string  { return h.hint }

// command is one subcommand. run gets the flag set's remaining arguments.
type command struct {
	name    string // "handle claim"
	args    string // "NAME"
	summary string
	// forms, when set, are the ways to call the command, each the
	// arguments after the name; usage lines show them instead of args.
	forms []string
	// details are paragraphs of help after the summary; one that starts
	// with two spaces is an example, printed as it is.
	details []string
	read    bool // a read command: has --json
	flags   func(fs *flag.FlagSet)
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what a subcommand runs with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	data           string
	json           bool
	client         *api.Client
}

// api dials the node that runs with the data directory.
func (e *env) api() (*api.Client, error) {
	if e.client == nil {
		c, err := api.DialDataDir(e.data)
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	return e.client, nil
}

// clientFor checks that args holds n positional arguments (what names
// them in the error) and dials the node.
func (e *env) clientFor(args []string, n int, what string) (*api.Client, error) {
	if err := needArgs(args, n, what); err != nil {
		return nil, err
	}
	return e.api()
}

// print writes v as JSON with --json, else calls human.
func (e *env) print(v any, human func(w io.Writer)) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(e.stdout)
	return nil
}

func commands() []*command {
	cmds := []*command{
		upCommand(),
		webCommand(),
		idCommand(),
		inviteCommand(),
		{name: "status", summary: "show peers, routing table, relays and encryption", read: true, run: runStatus},
		{name: "peers", summary: "list connected peers", read: true, run: runPeers},
		{name: "handle claim", args: "NAME", summary: "claim a global handle (returns once confirmed by a read)", read: true, run: runClaim},
		{name: "handle list", summary: "list the handles this node holds", read: true, run: runHandles},
		{name: "whois", args: "NAME", summary: "resolve a handle, name~suffix or account id", read: true, run: runWhois},
		contactsAddCommand(),
		{name: "contacts rm", args: "NAME", summary: "remove a contact", run: runContactsRm},
		{name: "contacts list", summary: "list contacts", read: true, run: runContactsList},
		storeVerifyCommand(),
	}
	cmds = append(cmds, messageCommands()...)
	cmds = append(cmds, callCommands()...)
	return append(cmds, versionCommand())
}

// globals are the flags that may come before the command:
// `callsign --data DIR status --json` and `callsign --json --data DIR status`
// mean the same as `callsign status --data DIR --json`.
type globals struct {
	data    string
	json    bool
	version bool
	set     []string // the flags given, as arguments for the command's flag set
}

// parseGlobals parses the flags before the command and returns the rest
// of the command line.
func parseGlobals(args []string) (globals, []string, error) {
	var g globals
	fs := flag.NewFlagSet("callsign", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&g.data, "data", "", "")
	fs.BoolVar(&g.json, "json", false, "")
	fs.BoolVar(&g.version, "version", false, "")
	if err := fs.Parse(args); err != nil {
		return g, nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			g.set = append(g.set, "--data="+g.data)
		case "json":
			g.set = append(g.set, "--json="+strconv.FormatBool(g.json))
		}
	})
	return g, fs.Args(), nil
}

// run is the whole CLI: it parses args, runs one subcommand and returns the
// exit code. The command's standard input is the process's.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runStdin(ctx, os.Stdin, args, stdout, stderr)
}

// runStdin is run with stdin as the command's standard input.
func runStdin(ctx context.Context, stdin io.Reader, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return exitUsage
	}
	g, rest, err := parseGlobals(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout, cmds)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "callsign: %s\nusage: callsign [--data DIR] [--json] COMMAND [flags] [ARGS]\nhint: a command's own flags go after the command; run `callsign help` for the list of commands\n", err)
		return exitUsage
	case g.version:
		rest = append([]string{"version"}, rest...)
	case len(rest) == 0:
		fmt.Fprintf(stderr, "callsign: no command\nhint: run `callsign help` for the list of commands\n")
		return exitUsage
	}
	if rest[0] == "help" {
		return help(stdout, stderr, cmds, rest[1:])
	}
	cmd, rest := find(cmds, rest)
	if cmd == nil {
		if subs := group(cmds, rest[0]); len(subs) > 0 && len(rest) == 2 && isHelpFlag(rest[1]) {
			groupHelp(stdout, rest[0], subs)
			return exitOK
		}
		return unknownCommand(stderr, cmds, rest)
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := cmd.newFlagSet(e)
	// Flags may come before or after positional arguments.
	pos, err := parseInterleaved(fs, append(g.set, rest...))
	switch {
	case errors.Is(err, flag.ErrHelp):
		commandHelp(stdout, cmd, fs)
		return exitOK
	case err != nil:
		return failUsage(stderr, cmd, err)
	case e.json && !cmd.read:
		return failUsage(stderr, cmd, usageError{
			msg:  fmt.Sprintf("%q has no --json output", cmd.name),
			hint: "--json is for read commands, such as status, whois, messages and calls",
		})
	}
	if e.data, err = dataDir(e.data); err != nil {
		return fail(stderr, err)
	}
	defer func() {
		if e.client != nil {
			e.client.Close()
		}
	}()
	if err := cmd.run(ctx, e, pos); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return failUsage(stderr, cmd, err)
		}
		return fail(stderr, err)
	}
	return exitOK
}

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// find returns the command args start with and the arguments after its
// name.
func find(cmds []*command, args []string) (*command, []string) {
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):]
		}
	}
	return nil, args
}

// parseInterleaved parses flags wherever they come among the positional
// arguments, which it returns in order. After "--" everything is
// positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// fail prints err as one line, and its hint if it has one, and returns the
// exit code for it.
func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "callsign: %s\n", oneLine(err.Error()))
	if h := hintOf(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

// failUsage prints a command line error of cmd, then its usage line and
// the hint, if any.
func failUsage(w io.Writer, cmd *command, err error) int {
	fmt.Fprintf(w, "callsign: %s\n", oneLine(err.Error()))
	printUsageLines(w, cmd)
	if h := hintOf(err); h != "" {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
	return exitUsage
}

func hintOf(err error) string {
	var ae *api.Error
	var h hinter
	switch {
	case errors.As(err, &ae):
		return ae.Hint
	case errors.As(err, &h):
		return h.Hint()
	}
	return ""
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// dataDir picks the data directory: the flag, else $CALLSIGN_DATA, else the
// user's XDG data directory.
func dataDir(flagValue string) (string, error) {
	d := flagValue
	if d == "" {
		d = os.Getenv("CALLSIGN_DATA")
	}
	if d == "" {
		base := os.Getenv("XDG_DATA_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no data directory: %w", err)
			}
			base = filepath.Join(home, ".local", "share")
		}
		d = filepath.Join(base, "callsign")
	}
	return filepath.Abs(d)
}

func needArgs(args []string, n int, what string) error {
	if len(args) != n {
		return usageError{msg: fmt.Sprintf("expected %s, got %d argument(s)", what, len(args))}
	}
	return nil
}

func idCommand() *command {
	var addrOnly bool
	return &command{
		name: "id", summary: "show this node's account, handle, peer id and addresses", read: true,
		flags: func(fs *flag.FlagSet) {
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

func runClaim(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := c.Claim(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.print(cl, func(w io.Writer) {
		if cl.Status == "claimed" {
			fmt.Fprintf(w, "claimed @%s\n", cl.Name)
		}
	}); err != nil {
		return err
	}
	if cl.Status == "taken" {
		return &takenError{cl}
	}
	return nil
}

type takenError struct{ c api.Claim }

func (t *takenError) Error() string {
	return fmt.Sprintf("@%s is taken by %s", t.c.Name, t.c.Owner)
}
func (t *takenError) Hint() string {
	return "pick another name; a held name frees itself only if its owner stops renewing it"
}

func runHandles(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	hs, err := c.Handles(ctx)
	if err != nil {
		return err
	}
	return e.print(hs, func(w io.Writer) {
		for _, h := range hs {
			kind := "global"
			if h.SelfCert {
				kind = "self-certifying"
			}
			fmt.Fprintf(w, "@%s\t%s\n", h.Name, kind)
		}
	})
}

func runWhois(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	wi, err := c.Whois(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.print(wi, func(w io.Writer) { printWhois(w, wi) }); err != nil {
		return err
	}
	if wi.Status == "not_found" || wi.Status == "expired" {
		return fmt.Errorf("%s: %s", args[0], strings.ReplaceAll(wi.Status, "_", " "))
	}
	return nil
}

func printWhois(w io.Writer, wi api.Whois) {
	switch wi.Status {
	case "ok":
		fmt.Fprintf(w, "@%s\naccount   %s\nhandle    %s\n", wi.Name, wi.Account, wi.Handle)
		if wi.DisplayName != "" {
			fmt.Fprintf(w, "name      %s\n", wi.DisplayName)
		}
		for _, d := range wi.Devices {
			fmt.Fprintf(w, "device    %s (until %s)\n", d.Peer, d.Expires.Format(time.DateOnly))
		}
		switch {
		case wi.KeyChanged:
			fmt.Fprintf(w, "WARNING   the key differs from the one pinned in your contacts; verify before you trust it\n")
		case wi.Pinned:
			fmt.Fprintf(w, "pinned    yes (matches your contacts)\n")
		}
	case "conflict":
		fmt.Fprintf(w, "@%s: CONFLICT — the closest peers disagree about who holds this name:\n", wi.Name)
		for _, o := range wi.Owners {
			fmt.Fprintf(w, "  %s  (%d peers)\n", o.Account, o.Count)
		}
		fmt.Fprintf(w, "do not trust this name until it is resolved; ask the person for their self-certifying handle\n")
	}
	if wi.Warning != "" {
		fmt.Fprintf(w, "warning   %s\n", wi.Warning)
	}
}

func contactsAddCommand() *command {
	var as string
	return &command{
		name: "contacts add", args: "NAME", summary: "resolve NAME and pin its key in your contacts",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&as, "as", "", "call the contact `PETNAME` (default: by its handle)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 1, "NAME")
			if err != nil {
				return err
			}
			ct, err := c.AddContact(ctx, args[0], as)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added %s (%s)\n", ct.Petname, ct.Account)
			return nil
		},
	}
}

func runContactsRm(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	if err := c.RemoveContact(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s\n", args[0])
	return nil
}

func runContactsList(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	cs, err := c.Contacts(ctx)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []api.Contact{}
	}
	return e.print(cs, func(w io.Writer) {
		if len(cs) == 0 {
			fmt.Fprintln(w, "no contacts yet; add one with: callsign contacts add NAME")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PETNAME\tHANDLE\tACCOUNT\tSTATE")
		for _, c := range cs {
			var st []string
			if c.KeyChanged {
				st = append(st, "KEY CHANGED")
			}
			if c.Verified {
				st = append(st, "verified")
			}
			if c.Following {
				st = append(st, "following")
			}
			if c.Blocked {
				st = append(st, "blocked")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Petname, c.Handle, c.Account, strings.Join(st, ","))
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
