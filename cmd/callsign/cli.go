package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/callsign/callsign/api"
)

// The command line is parsed by cobra (github.com/spf13/cobra, with its
// pflag flags): it finds the command in the tree commands() describes,
// parses global and command flags wherever they come among the
// arguments, and runs the command. This file decides what the user sees
// when it cannot: help, usage errors, suggestions and exit codes.

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

// command is one subcommand. run gets the positional arguments, in order,
// whatever flags came among them.
type command struct {
	name string // the canonical `noun verb` form: "handle resolve"
	// aliases are other names of the command, each a whole path from the
	// top: "whois" for "handle resolve". An alias that is also a group's
	// name ("messages", the group of "messages send") makes the group run
	// the command when no subcommand follows.
	aliases []string
	args    string // "NAME"
	summary string
	// forms, when set, are the ways to call the command, each the
	// arguments after the name; usage lines show them instead of args.
	forms []string
	// details are paragraphs of help after the summary; one that starts
	// with two spaces is an example, printed as it is.
	details []string
	read    bool // a read command: has --json
	flags   func(fs *pflag.FlagSet)
	run     func(ctx context.Context, e *env, args []string) error
}

// names returns the command's names: the canonical one, then the aliases.
func (c *command) names() []string { return append([]string{c.name}, c.aliases...) }

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

// Usage lines of the command line as a whole.
const (
	globalUsage = "usage: callsign [--data DIR] [--json] COMMAND [flags] [ARGS]"
	helpHint    = "run `callsign help` for the list of commands"
)

// cmdline is the command tree of one run, built from commands().
type cmdline struct {
	e    *env
	cmds []*command
	root *cobra.Command
	of   map[*cobra.Command]*command // the command a cobra command runs
}

// newCLI builds the command tree, its flags writing into e.
func newCLI(e *env) *cmdline {
	c := &cmdline{e: e, cmds: commands(), of: map[*cobra.Command]*command{}}
	c.root = &cobra.Command{
		Use:               "callsign",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	c.root.SetOut(e.stdout)
	c.root.SetErr(e.stderr)
	c.root.SetHelpFunc(c.helpFunc)
	c.root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{msg: err.Error()} })
	globalFlags(c.root.PersistentFlags(), &e.data, &e.json)
	for _, cmd := range c.cmds {
		for i, name := range cmd.names() {
			cc := c.node(strings.Fields(name))
			if c.of[cc] != nil {
				panic("bug: two commands named " + name)
			}
			c.of[cc] = cmd
			cc.Hidden = i > 0 && !cc.HasSubCommands()
			cc.Args = cobra.ArbitraryArgs
			if cmd.flags != nil {
				cmd.flags(cc.Flags())
			}
			cc.RunE = func(cc *cobra.Command, args []string) error { return c.runCommand(cc.Context(), cmd, args) }
		}
	}
	return c
}

// globalFlags are the flags every command takes, before or after it.
func globalFlags(fs *pflag.FlagSet, data *string, asJSON *bool) {
	fs.StringVar(data, "data", "", "`DIR` holds the node's data (default $CALLSIGN_DATA, else $XDG_DATA_HOME/callsign)")
	// Every command takes --json so that it can say clearly when it has no
	// JSON to print; only read commands list it in their help.
	fs.BoolVar(asJSON, "json", false, "print JSON on standard output (progress and warnings go to standard error)")
}

// node returns the cobra command at path, making it and the groups above
// it as needed.
func (c *cmdline) node(path []string) *cobra.Command {
	cur := c.root
	for _, word := range path {
		var next *cobra.Command
		for _, sub := range cur.Commands() {
			if sub.Name() == word {
				next = sub
			}
		}
		if next == nil {
			next = &cobra.Command{Use: word}
			cur.AddCommand(next)
		}
		cur = next
	}
	return cur
}

// nameOf is the path of cc without "callsign": "handle claim".
func nameOf(cc *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(cc.CommandPath(), "callsign"), " ")
}

// run is the whole CLI: it parses args, runs one subcommand and returns the
// exit code. The command's standard input is the process's.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runStdin(ctx, os.Stdin, args, stdout, stderr)
}

// runStdin is run with stdin as the command's standard input.
func runStdin(ctx context.Context, stdin io.Reader, args []string, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	c := newCLI(e)
	defer func() {
		if e.client != nil {
			e.client.Close()
		}
	}()
	if len(args) == 0 {
		c.usage(stderr)
		return exitUsage
	}
	args = c.longFlags(args)

	// Before the command only global flags may come: a command's own flag
	// there is more likely a mistake than a wish.
	pre := pflag.NewFlagSet("callsign", pflag.ContinueOnError)
	pre.SetOutput(io.Discard)
	pre.Usage = func() {}
	pre.SetInterspersed(false)
	var data string
	var asJSON, version bool
	globalFlags(pre, &data, &asJSON)
	pre.BoolVar(&version, "version", false, "")
	err := pre.Parse(args)
	words := leadingWords(pre.Args())
	switch {
	case errors.Is(err, pflag.ErrHelp):
		c.usage(stdout)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "callsign: %s\n%s\nhint: a command's own flags go after the command; %s\n", err, globalUsage, helpHint)
		return exitUsage
	case version:
		args = append([]string{"version"}, dropFlag(args, "--version")...)
		words = append([]string{"version"}, words...)
	case len(words) == 0:
		fmt.Fprintf(stderr, "callsign: no command\nhint: %s\n", helpHint)
		return exitUsage
	}
	if words[0] == "help" {
		return c.help(stdout, stderr, pre.Args()[1:])
	}

	cc, _, err := c.root.Find(args)
	cmd := c.of[cc]
	depth := len(strings.Fields(nameOf(cc)))
	switch {
	case err != nil || cc == c.root:
		return c.unknownCommand(stderr, words)
	case cmd == nil && !hasHelpFlag(args):
		// A group's name alone, or with a word that names none of its
		// commands.
		return c.unknownCommand(stderr, words)
	case cmd != nil && cmd.args == "" && cmd.forms == nil && cc.HasSubCommands() && len(words) > depth:
		// A group that runs a command of no arguments ("calls"), with a
		// word after it: a mistyped subcommand more likely than an
		// argument.
		return c.unknownCommand(stderr, words)
	}

	c.root.SetArgs(args)
	cc, err = c.root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ue usageError
	if cmd := c.of[cc]; cmd != nil && errors.As(err, &ue) {
		return failUsage(stderr, nameOf(cc), cmd, err)
	}
	return fail(stderr, err)
}

// runCommand runs cmd with the flags parsed.
func (c *cmdline) runCommand(ctx context.Context, cmd *command, args []string) error {
	e := c.e
	if e.json && !cmd.read {
		return usageError{
			msg:  fmt.Sprintf("%q has no --json output", cmd.name),
			hint: "--json is for read commands, such as status, whois, messages and calls",
		}
	}
	var err error
	if e.data, err = dataDir(e.data); err != nil {
		return err
	}
	return cmd.run(ctx, e, args)
}

// singleDash is a flag written with one dash, as Go's flag package allows:
// -data DIR, -json.
var singleDash = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// longFlags rewrites the flags written the way the CLI took them before
// it used pflag: -data and -json (one dash) become --data and --json, and
// --h becomes -h. Only names of flags the CLI has are rewritten, and
// nothing after "--".
func (c *cmdline) longFlags(args []string) []string {
	known := map[string]bool{"help": true, "version": true}
	var visit func(cc *cobra.Command)
	visit = func(cc *cobra.Command) {
		cc.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		cc.PersistentFlags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		for _, sub := range cc.Commands() {
			visit(sub)
		}
	}
	visit(c.root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if m := singleDash.FindStringSubmatch(a); m != nil && known[m[1]] {
			a = "-" + a
		}
		if a == "--h" {
			a = "-h"
		}
		out[i] = a
	}
	return out
}

// leadingWords returns the arguments before the first flag.
func leadingWords(args []string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			return args[:i]
		}
	}
	return args
}

// dropFlag returns args without the boolean flag name (given as --name or
// --name=VALUE) before "--".
func dropFlag(args []string, name string) []string {
	var out []string
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a != name && !strings.HasPrefix(a, name+"=") {
			out = append(out, a)
		}
	}
	return out
}

func hasHelpFlag(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--help":
			return true
		}
	}
	return false
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

// failUsage prints a command line error of cmd, called as name, then its
// usage line and the hint, if any.
func failUsage(w io.Writer, name string, cmd *command, err error) int {
	fmt.Fprintf(w, "callsign: %s\n", oneLine(err.Error()))
	printUsageOf(w, []entry{{name, cmd}})
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
