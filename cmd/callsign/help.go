package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// helpWidth is the width every line of help fits in.
const helpWidth = 80

// Columns of the command list: names start at listIndent, summaries at
// listIndent+listName+2. A longer name puts its summary on the next line.
const (
	listIndent = 2
	listName   = 20
)

// newFlagSet returns cmd's flag set, with the flags every command takes,
// writing into e.
func (c *command) newFlagSet(e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("callsign "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by run
	fs.Usage = func() {}
	fs.StringVar(&e.data, "data", "", "`DIR` holds the node's data (default $CALLSIGN_DATA, else $XDG_DATA_HOME/callsign)")
	// Every command takes --json so that it can say clearly when it has no
	// JSON to print; only read commands list it in their help.
	fs.BoolVar(&e.json, "json", false, "print JSON on standard output (progress and warnings go to standard error)")
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

// usage prints the overview: what callsign is and its commands.
func usage(w io.Writer, cmds []*command) {
	printWrapped(w, "callsign: private messages and calls by handle, with no phone number and no central server", 0)
	fmt.Fprintf(w, "\nusage: callsign [--data DIR] [--json] COMMAND [flags] [ARGS]\n\ncommands:\n")
	printCommandList(w, cmds)
	fmt.Fprintln(w)
	printWrapped(w, "--data DIR (which node to talk to) and --json (JSON output of a read command) go before or after COMMAND. "+
		"Run `callsign COMMAND -h` for a command's flags and `callsign version` for the version.", 0)
}

// printCommandList prints one entry per command: name, arguments and the
// summary wrapped to fit.
func printCommandList(w io.Writer, cmds []*command) {
	pad := strings.Repeat(" ", listIndent+listName+2)
	for _, c := range cmds {
		name := strings.TrimSpace(c.name + " " + c.args)
		lines := wrap(c.summary, helpWidth-len(pad))
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

// help runs `callsign help [COMMAND]`.
func help(stdout, stderr io.Writer, cmds []*command, args []string) int {
	if len(args) == 0 {
		usage(stdout, cmds)
		return exitOK
	}
	if cmd, rest := find(cmds, args); cmd != nil && len(rest) == 0 {
		commandHelp(stdout, cmd, cmd.newFlagSet(&env{}))
		return exitOK
	}
	if subs := group(cmds, args[0]); len(subs) > 0 && len(args) == 1 {
		groupHelp(stdout, args[0], subs)
		return exitOK
	}
	return unknownCommand(stderr, cmds, args)
}

// groupHelp prints the commands whose first word is first: `callsign
// handle -h`.
func groupHelp(w io.Writer, first string, subs []*command) {
	fmt.Fprintf(w, "%s commands:\n", first)
	printCommandList(w, subs)
	fmt.Fprintf(w, "\nRun `callsign %s COMMAND -h` for a command's flags.\n", first)
}

// commandHelp prints `callsign COMMAND -h`: usage, summary, details and
// flags.
func commandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	printUsageLines(w, cmd)
	fmt.Fprintln(w)
	printWrapped(w, cmd.summary, 0)
	for _, d := range cmd.details {
		fmt.Fprintln(w)
		if strings.HasPrefix(d, "  ") { // an example, shown as it is
			fmt.Fprintln(w, d)
			continue
		}
		printWrapped(w, d, 0)
	}
	fmt.Fprintf(w, "\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "json" && !cmd.read {
			return
		}
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + strings.ToUpper(name)
		}
		fmt.Fprintln(w, line)
		if !zeroDefault(f.DefValue) {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		printWrapped(w, text, 8)
	})
}

// zeroDefault reports whether a flag's default is its type's zero value,
// which help does not mention.
func zeroDefault(v string) bool {
	switch v {
	case "", "false", "0", "0s":
		return true
	}
	return false
}

// printUsageLines prints how to call cmd: `usage: callsign NAME [flags]
// ARGS`, one line per form.
func printUsageLines(w io.Writer, cmd *command) {
	printUsageOf(w, []*command{cmd})
}

// printUsageOf prints the usage lines of several commands, aligned under
// one "usage:".
func printUsageOf(w io.Writer, cmds []*command) {
	prefix := "usage: "
	for _, cmd := range cmds {
		forms := cmd.forms
		if forms == nil {
			forms = []string{cmd.args}
		}
		for i, f := range forms {
			line := "callsign " + cmd.name
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
