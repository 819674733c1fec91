package main

import (
	"fmt"
	"io"
	"strings"
)

// unknownCommand reports a command line whose first words name no
// command, with the command the user most likely meant: `callsign
// stauts` suggests status, `contacts lst` contacts list, and a group's
// first word alone (`callsign handle`) lists the group's commands.
func (c *cmdline) unknownCommand(w io.Writer, args []string) int {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == 2 {
			break
		}
		words = append(words, a)
	}
	if len(words) == 0 { // only flags, after the globals
		fmt.Fprintf(w, "callsign: no command before %q\nhint: %s\n", args[0], helpHint)
		return exitUsage
	}
	first := words[0]
	if subs := c.group(first, false); len(subs) > 0 {
		if len(words) == 1 {
			fmt.Fprintf(w, "callsign: %q needs a subcommand\n", first)
			printUsageOf(w, subs)
			return exitUsage
		}
		typed := first + " " + words[1]
		if s := closest(words[1], c.secondWords(first)); s != "" {
			fmt.Fprintf(w, "callsign: unknown command %q\nhint: did you mean %q?\n", typed, first+" "+s)
			return exitUsage
		}
		fmt.Fprintf(w, "callsign: unknown command %q\n", typed)
		printUsageOf(w, subs)
		return exitUsage
	}

	var cands []string
	seen := map[string]bool{}
	for _, en := range c.every() {
		f := strings.Fields(en.name)[0]
		if !seen[f] {
			seen[f] = true
			cands = append(cands, f)
		}
	}
	cands = append(cands, "help")
	best := closest(first, cands)
	subs := c.group(best, false)
	typed := first
	switch {
	case best == "":
		fmt.Fprintf(w, "callsign: unknown command %q\nhint: %s\n", typed, helpHint)
		return exitUsage
	case len(subs) == 0:
		fmt.Fprintf(w, "callsign: unknown command %q\nhint: did you mean %q?\n", typed, best)
		return exitUsage
	}
	// A mistyped group word: "contact add", "handel".
	var sugg []string
	if len(words) == 2 {
		if s := closest(words[1], c.secondWords(best)); s != "" {
			typed += " " + words[1]
			sugg = []string{best + " " + s}
		}
	}
	switch {
	case sugg != nil:
	case c.named(best) != nil:
		// The group runs a command of its own: "messsages alice" is
		// "messages alice".
		sugg = []string{best}
	default:
		if len(words) == 2 {
			typed += " " + words[1]
		}
		for _, en := range subs {
			sugg = append(sugg, en.name)
		}
	}
	fmt.Fprintf(w, "callsign: unknown command %q\nhint: did you mean %s?\n", typed, orList(sugg))
	return exitUsage
}

// secondWords returns the second words of the commands named `first
// VERB`, under any of their names.
func (c *cmdline) secondWords(first string) []string {
	var out []string
	for _, en := range c.group(first, true) {
		out = append(out, strings.Fields(en.name)[1])
	}
	return out
}

// orList quotes words and joins them: "a", "a" or "b", "a", "b" or "c".
func orList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// closest returns the candidate nearest to typed in edit distance, if it
// is near enough to be a typo: one edit for words of up to four letters,
// two for longer ones. Of equally near candidates the first wins.
func closest(typed string, cands []string) string {
	typed = strings.ToLower(typed)
	best, bestD := "", -1
	for _, c := range cands {
		limit := 1
		if len([]rune(c)) > 4 {
			limit = 2
		}
		d := editDistance(typed, c)
		if d <= limit && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// letters each cost one, so "stauts" is one edit from "status".
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}
