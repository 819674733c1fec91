package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// helpWidth is the width every line of help fits in.
const helpWidth = 80

// Columns of the command list: names start at listIndent, summaries at
// listIndent+listName+2. A longer name puts its summary on the next line.
const (
	listIndent = 2
	listName   = 23
)

// entry is a command under one of its names.
type entry struct {
	name string
	cmd  *command
}

// canonical returns every command under its `noun verb` name, in the
// order of commands().
func (c *cmdline) canonical() []entry {
	out := make([]entry, len(c.cmds))
	for i, cmd := range c.cmds {
		out[i] = entry{cmd.name, cmd}
	}
	return out
}

// every returns every command under each of its names: all the canonical
// names first, then the aliases.
func (c *cmdline) every() []entry {
	out := c.canonical()
	for _, cmd := range c.cmds {
		for _, a := range cmd.aliases {
			out = append(out, entry{a, cmd})
		}
	}
	return out
}

// group returns the commands named `first VERB`, canonical names only
// unless aliases is set.
func (c *cmdline) group(first string, aliases bool) []entry {
	all := c.canonical()
	if aliases {
		all = c.every()
	}
	var subs []entry
	for _, en := range all {
		if ws := strings.Fields(en.name); len(ws) == 2 && ws[0] == first {
			subs = append(subs, en)
		}
	}
	return subs
}

// named returns the command called name, under any of its names.
func (c *cmdline) named(name string) *command {
	for _, en := range c.every() {
		if en.name == name {
			return en.cmd
		}
	}
	return nil
}

// usage prints the overview: what callsign is and its commands.
func (c *cmdline) usage(w io.Writer) {
	printWrapped(w, "callsign: private messages and calls by handle, with no phone number and no central server", 0)
	fmt.Fprintf(w, "\n%s\n\ncommands:\n", globalUsage)
	printCommandList(w, c.canonical())
	fmt.Fprintln(w)
	printWrapped(w, "--data DIR (which node to talk to) and --json (JSON output of a read command) go anywhere on the command line. "+
		"The names after \"also:\" are shorter forms of the same command. "+
		"Run `callsign COMMAND -h` for a command's flags and `callsign version` for the version.", 0)
}

// printCommandList prints one entry per command: name, arguments and the
// summary wrapped to fit, with the command's other names.
func printCommandList(w io.Writer, entries []entry) {
	pad := strings.Repeat(" ", listIndent+listName+2)
	for _, en := range entries {
		name := strings.TrimSpace(en.name + " " + en.cmd.args)
		summary := en.cmd.summary
		if others := otherNames(en); len(others) > 0 {
			summary += " (also: " + strings.Join(others, ", ") + ")"
		}
		lines := wrap(summary, helpWidth-len(pad))
		if n := utf8.RuneCountInString(name); n > listName {
			fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", listIndent), name)
		} else {
			fmt.Fprintf(w, "%s%s%s%s\n", strings.Repeat(" ", listIndent), name, strings.Repeat(" ", listName+2-n), lines[0])
			lines = lines[1:]
		}
		for _, l := range lines {
			fmt.Fprintf(w, "%s%s\n", pad, l)
		}
	}
}

// otherNames returns the names of en's command other than en's.
func otherNames(en entry) []string {
	var out []string
	for _, n := range en.cmd.names() {
		if n != en.name {
			out = append(out, n)
		}
	}
	return out
}

// help runs `callsign help [COMMAND]`.
func (c *cmdline) help(stdout, stderr io.Writer, args []string) int {
	if len(args) == 0 {
		c.usage(stdout)
		return exitOK
	}
	if cc, rest, err := c.root.Find(args); err == nil && cc != c.root && len(rest) == 0 {
		c.helpFunc(cc, nil)
		return exitOK
	}
	return c.unknownCommand(stderr, args)
}

// helpFunc prints the help of cc: the overview, a group's commands or a
// command's usage and flags. It is cobra's help function too, for -h.
func (c *cmdline) helpFunc(cc *cobra.Command, _ []string) {
	w := c.e.stdout
	name := nameOf(cc)
	switch subs := c.group(name, false); {
	case cc == c.root:
		c.usage(w)
	case len(subs) > 0:
		fmt.Fprintf(w, "%s commands:\n", name)
		printCommandList(w, subs)
		fmt.Fprintln(w)
		if cmd := c.of[cc]; cmd != nil {
			printWrapped(w, fmt.Sprintf("`callsign %s` is short for `callsign %s`.", strings.TrimSpace(name+" "+cmd.args), strings.TrimSpace(cmd.name+" "+cmd.args)), 0)
		}
		fmt.Fprintf(w, "Run `callsign %s COMMAND -h` for a command's flags.\n", name)
	default:
		c.commandHelp(w, cc)
	}
}

// commandHelp prints `callsign COMMAND -h`: usage, summary, other names,
// details and flags.
func (c *cmdline) commandHelp(w io.Writer, cc *cobra.Command) {
	en := entry{nameOf(cc), c.of[cc]}
	printUsageOf(w, []entry{en})
	fmt.Fprintln(w)
	printWrapped(w, en.cmd.summary, 0)
	if others := otherNames(en); len(others) > 0 {
		printWrapped(w, "also: callsign "+strings.Join(others, ", callsign "), 0)
	}
	for _, d := range en.cmd.details {
		fmt.Fprintln(w)
		if strings.HasPrefix(d, "  ") { // an example, shown as it is
			fmt.Fprintln(w, d)
			continue
		}
		printWrapped(w, d, 0)
	}
	fmt.Fprintf(w, "\nflags:\n")
	var flags []*pflag.Flag
	cc.InheritedFlags().VisitAll(func(f *pflag.Flag) { flags = append(flags, f) })
	cc.LocalFlags().VisitAll(func(f *pflag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		if f.Name == "help" || (f.Name == "json" && !en.cmd.read) {
			continue
		}
		name, text := pflag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + strings.ToUpper(name)
		}
		fmt.Fprintln(w, line)
		if !zeroDefault(f.DefValue) {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		printWrapped(w, text, 8)
	}
}

// zeroDefault reports whether a flag's default is its type's zero value,
// which help does not mention.
func zeroDefault(v string) bool {
	switch v {
	case "", "false", "0", "0s", "[]":
		return true
	}
	return false
}

// printUsageOf prints the usage lines of commands, each under the name
// given, aligned under one "usage:".
func printUsageOf(w io.Writer, entries []entry) {
	prefix := "usage: "
	for _, en := range entries {
		forms := en.cmd.forms
		if forms == nil {
			forms = []string{en.cmd.args}
		}
		for i, f := range forms {
			line := "callsign " + en.name
			if i == 0 {
				line += " [flags]"
			}
			if f != "" {
				line += " " + f
			}
			fmt.Fprintf(w, "%s%s\n", prefix, line)
			prefix = strings.Repeat(" ", len("usage: "))
		}
	}
}

// printWrapped prints text wrapped to helpWidth, each line indented by
// indent spaces.
func printWrapped(w io.Writer, text string, indent int) {
	pad := strings.Repeat(" ", indent)
	for _, l := range wrap(text, helpWidth-indent) {
		fmt.Fprintf(w, "%s%s\n", pad, l)
	}
}

// wrap breaks text into lines of at most width columns at spaces. A word
// longer than width gets a line of its own.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}
