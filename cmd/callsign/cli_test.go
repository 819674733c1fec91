package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/node"
	"go.uber.org/goleak"
)

// TestMain deletes the binary the process tests built (53 MB a run) and
// then looks for goroutines left running.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestGlobalFlags: --data and --json work before the command as after it.
func TestGlobalFlags(t *testing.T) {
	f := newFakeNode()
	dir := f.start(t)
	for _, args := range [][]string{
		{"status", "--data", dir, "--json"},
		{"--data", dir, "status", "--json"},
		{"--data=" + dir, "status", "--json"},
		{"--json", "--data", dir, "status"},
		{"-data", dir, "-json", "status"},
		{"--data", filepath.Join(dir, "elsewhere"), "status", "--data", dir, "--json"}, // the last one wins
	} {
		out, errs, code := runCLI(t, args...)
		var st api.Status
		if code != exitOK || errs != "" || json.Unmarshal([]byte(out), &st) != nil || st.Version != "9.9.9-test" {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
}

func TestGlobalFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the whole of stderr
	}{
		{[]string{"--json", "contacts", "add", "alice"},
			"callsign: \"contacts add\" has no --json output\nusage: callsign contacts add [flags] NAME\n" +
				"hint: --json is for read commands, such as status, whois, messages and calls\n"},
		{[]string{"contacts", "add", "alice", "--json"},
			"callsign: \"contacts add\" has no --json output\nusage: callsign contacts add [flags] NAME\n" +
				"hint: --json is for read commands, such as status, whois, messages and calls\n"},
		{[]string{"--json", "up"},
			"callsign: \"up\" has no --json output\nusage: callsign up [flags]\n" +
				"hint: --json is for read commands, such as status, whois, messages and calls\n"},
		{[]string{"--for", "3s", "call", "alice"},
			"callsign: unknown flag: --for\nusage: callsign [--data DIR] [--json] COMMAND [flags] [ARGS]\n" +
				"hint: a command's own flags go after the command; run `callsign help` for the list of commands\n"},
		{[]string{"--data"},
			"callsign: flag needs an argument: --data\nusage: callsign [--data DIR] [--json] COMMAND [flags] [ARGS]\n" +
				"hint: a command's own flags go after the command; run `callsign help` for the list of commands\n"},
		{[]string{"--data", "/tmp"},
			"callsign: no command\nhint: run `callsign help` for the list of commands\n"},
		{[]string{"status", "--frob"},
			"callsign: unknown flag: --frob\nusage: callsign status [flags]\n"},
	} {
		out, errs, code := runCLI(t, tc.args...)
		if code != exitUsage || out != "" || errs != tc.want {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

func TestDoubleDashEndsFlags(t *testing.T) {
	out, errs, code := runCLI(t, "whois", "--", "-h", "x")
	if code != exitUsage || out != "" || !strings.HasPrefix(errs, "callsign: expected NAME, got 2 argument(s)\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestVersion(t *testing.T) {
	f := newFakeNode()
	dir := f.start(t)
	empty := t.TempDir()
	// A data directory whose node is gone: its address file is stale.
	stale := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := api.WriteEndpoint(stale, ln.Addr().String(), api.NewToken()); err != nil {
		t.Fatal(err)
	}
	cli := node.Version
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version", "--data", dir}, "cli   " + cli + "\nnode  9.9.9-test\n"},
		{[]string{"--version", "--data", dir}, "cli   " + cli + "\nnode  9.9.9-test\n"},
		{[]string{"--data", dir, "version", "--json"}, `{"cli":"` + cli + `","node":"9.9.9-test"}`},
		{[]string{"--version", "--json", "--data", dir}, `{"cli":"` + cli + `","node":"9.9.9-test"}`},
		{[]string{"version", "--data", empty}, "cli   " + cli + "\nnode  not running (data directory " + empty + ")\n"},
		{[]string{"version", "--json", "--data", empty}, `{"cli":"` + cli + `"}`},
		{[]string{"version", "--json", "--data", stale}, `{"cli":"` + cli + `"}`},
	} {
		out, errs, code := runCLI(t, tc.args...)
		if strings.HasPrefix(tc.want, "{") {
			out = compactJSON(t, out)
		}
		if code != exitOK || errs != "" || out != tc.want {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q; want stdout %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, "callsign: unknown command \"stauts\"\nhint: did you mean \"status\"?\n"},
		{[]string{"stauts", "--json"}, "callsign: unknown command \"stauts\"\nhint: did you mean \"status\"?\n"},
		{[]string{"--data", "/tmp", "stauts"}, "callsign: unknown command \"stauts\"\nhint: did you mean \"status\"?\n"},
		{[]string{"messsages", "alice"}, "callsign: unknown command \"messsages\"\nhint: did you mean \"messages\"?\n"},
		{[]string{"peer"}, "callsign: unknown command \"peer\"\nhint: did you mean \"peers\"?\n"},
		{[]string{"contacts", "lst"}, "callsign: unknown command \"contacts lst\"\nhint: did you mean \"contacts list\"?\n"},
		{[]string{"contact", "add", "alice"}, "callsign: unknown command \"contact add\"\nhint: did you mean \"contacts add\"?\n"},
		{[]string{"setings", "calls"}, "callsign: unknown command \"setings calls\"\nhint: did you mean \"settings calls\"?\n"},
		{[]string{"handel"}, "callsign: unknown command \"handel\"\nhint: did you mean \"handle claim\", \"handle list\" or \"handle resolve\"?\n"},
		{[]string{"handle"}, "callsign: \"handle\" needs a subcommand\n" +
			handleUsage},
		{[]string{"contacts", "--json"}, "callsign: \"contacts\" needs a subcommand\n" +
			"usage: callsign contacts add [flags] NAME\n       callsign contacts rm [flags] NAME\n       callsign contacts list [flags]\n" +
			"       callsign contacts verify [flags] NAME\n       callsign contacts block [flags] NAME\n" +
			"       callsign contacts unblock [flags] NAME\n       callsign contacts follow [flags] NAME\n" +
			"       callsign contacts unfollow [flags] NAME\n"},
		{[]string{"handle", "frobnicate"}, "callsign: unknown command \"handle frobnicate\"\n" + handleUsage},
		// The new groups suggest their commands as the old ones do.
		{[]string{"calls", "lst"}, "callsign: unknown command \"calls lst\"\nhint: did you mean \"calls list\"?\n"},
		{[]string{"mesages", "snd", "alice"}, "callsign: unknown command \"mesages snd\"\nhint: did you mean \"messages send\"?\n"},
		{[]string{"contacts", "remov", "alice"}, "callsign: unknown command \"contacts remov\"\nhint: did you mean \"contacts remove\"?\n"},
		{[]string{"whoi", "alice"}, "callsign: unknown command \"whoi\"\nhint: did you mean \"whois\"?\n"},
		{[]string{"frobnicate"}, "callsign: unknown command \"frobnicate\"\nhint: run `callsign help` for the list of commands\n"},
		{[]string{"help", "stauts"}, "callsign: unknown command \"stauts\"\nhint: did you mean \"status\"?\n"},
	} {
		out, errs, code := runCLI(t, tc.args...)
		if code != exitUsage || out != "" || errs != tc.want {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

const handleUsage = "usage: callsign handle claim [flags] NAME\n       callsign handle list [flags]\n" +
	"       callsign handle resolve [flags] NAME\n"

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"status", "status", 0}, {"stauts", "status", 1}, {"lst", "list", 1}, {"", "abc", 3},
		{"kitten", "sitting", 3}, {"ca", "abc", 3}, {"handel", "handle", 1},
	} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// TestArgumentErrors: a wrong number of arguments prints the error, then
// the command's usage line, and exits 2, before any node is asked.
func TestArgumentErrors(t *testing.T) {
	none := t.TempDir() // no node: the errors must come first
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"contacts", "add"}, "callsign: expected NAME, got 0 argument(s)\nusage: callsign contacts add [flags] NAME\n"},
		{[]string{"whois", "a", "b"}, "callsign: expected NAME, got 2 argument(s)\nusage: callsign whois [flags] NAME\n"},
		{[]string{"status", "extra"}, "callsign: expected no arguments, got 1 argument(s)\nusage: callsign status [flags]\n"},
		{[]string{"send", "alice"}, "callsign: expected NAME TEXT, got 1 argument(s)\nusage: callsign send [flags] NAME TEXT\n       callsign send NAME --file PATH [CAPTION]\n"},
		{[]string{"messages", "a", "b"}, "callsign: expected at most one NAME, got 2 arguments\nusage: callsign messages [flags] [NAME]\n"},
		{[]string{"call"}, "callsign: expected NAME, got 0 argument(s)\nusage: callsign call [flags] NAME\n"},
		{[]string{"answer", "a", "b"}, "callsign: expected at most one call ID, got 2 arguments\nusage: callsign answer [flags] [ID]\n"},
		{[]string{"hangup", "a", "b"}, "callsign: expected at most one call ID, got 2 arguments\nusage: callsign hangup [flags] [ID]\n"},
		{[]string{"messages", "send", "alice"}, "callsign: expected NAME TEXT, got 1 argument(s)\nusage: callsign messages send [flags] NAME TEXT\n       callsign messages send NAME --file PATH [CAPTION]\n"},
		{[]string{"handle", "resolve"}, "callsign: expected NAME, got 0 argument(s)\nusage: callsign handle resolve [flags] NAME\n"},
		{[]string{"calls", "start", "--data", "/x"}, "callsign: expected NAME, got 0 argument(s)\nusage: callsign calls start [flags] NAME\n"},
		{[]string{"calls", "hangup", "a", "b"}, "callsign: expected at most one call ID, got 2 arguments\nusage: callsign calls hangup [flags] [ID]\n"},
		{[]string{"contacts", "verify"}, "callsign: expected NAME, got 0 argument(s)\nusage: callsign contacts verify [flags] NAME\n"},
		{[]string{"version", "x"}, "callsign: expected no arguments, got 1 argument(s)\nusage: callsign version [flags]\n"},
		{[]string{"settings", "calls", "always-relay", "maybe"},
			"callsign: expected on or off, got \"maybe\"\n" + settingsUsage},
		{[]string{"settings", "calls", "a", "b", "c"}, "callsign: unknown call setting \"a b c\"\n" + settingsUsage},
		{[]string{"settings", "calls", "autoanswer"}, "callsign: autoanswer needs --record DIR (or: autoanswer off)\n" + settingsUsage},
		{[]string{"up", "--log-level", "loud"}, "callsign: bad --log-level \"loud\"\nusage: callsign up [flags]\nhint: use debug, info, warn or error\n"},
		{[]string{"call", "alice", "--audio", "-", "--video", "-"},
			"callsign: only one of --audio and --video can be - (standard input)\nusage: callsign call [flags] NAME\n"},
		{[]string{"answer", "--audio", "-", "--video", "-"},
			"callsign: only one of --audio and --video can be - (standard input)\nusage: callsign answer [flags] [ID]\n"},
	} {
		out, errs, code := runCLI(t, append(tc.args, "--data", none)...)
		if code != exitUsage || out != "" || errs != tc.want {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

const settingsUsage = `usage: callsign settings calls [flags]
       callsign settings calls everyone|contacts|following|verified|nobody
       callsign settings calls always-relay on|off
       callsign settings calls autoanswer --record DIR
       callsign settings calls autoanswer off
       callsign settings calls allow|deny|default NAME
`

// TestHelpFits: every help text fits 80 columns, goes to stdout and
// exits 0.
func TestHelpFits(t *testing.T) {
	check := func(args []string, wantPrefix string) string {
		t.Helper()
		out, errs, code := runCLI(t, args...)
		if code != exitOK || errs != "" || !strings.HasPrefix(out, wantPrefix) {
			t.Errorf("callsign %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, errs, out)
		}
		for i, l := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(l); n > helpWidth {
				t.Errorf("callsign %s: line %d has %d columns:\n%s", strings.Join(args, " "), i+1, n, l)
			}
		}
		return out
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"--data", "/tmp", "-h"}} {
		out := check(args, "callsign: private messages")
		for _, c := range commands() {
			if !strings.Contains(out, "\n  "+c.name+" ") && !strings.Contains(out, "\n  "+c.name+"\n") {
				t.Errorf("callsign %s does not list %q", args[0], c.name)
			}
		}
	}
	check([]string{"handle", "-h"}, "handle commands:\n  handle claim NAME")
	check([]string{"help", "contacts"}, "contacts commands:\n  contacts add NAME")
	for _, c := range commands() {
		words := strings.Fields(c.name)
		for _, args := range [][]string{append(words, "-h"), append(words, "--help"), append([]string{"help"}, words...)} {
			out := check(args, "usage: callsign "+c.name+" [flags]")
			if !strings.Contains(out, c.summary[:min(len(c.summary), 30)]) {
				t.Errorf("callsign %s: no summary", strings.Join(args, " "))
			}
			if hasJSON := strings.Contains(out, "\n  --json\n"); hasJSON != c.read {
				t.Errorf("callsign %s: lists --json: %v, read command: %v", strings.Join(args, " "), hasJSON, c.read)
			}
		}
	}
	// A usage error prints the overview on stderr.
	if out, errs, code := runCLI(t); code != exitUsage || out != "" || !strings.HasPrefix(errs, "callsign: private messages") {
		t.Errorf("callsign: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  []string
	}{
		{"a b c", 80, []string{"a b c"}},
		{"aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"aaa bbb ccc", 6, []string{"aaa", "bbb", "ccc"}},
		{"toolongword x", 5, []string{"toolongword", "x"}},
		{"  spaced   out  ", 80, []string{"spaced out"}},
		{"", 10, []string{""}},
	} {
		if got := wrap(tc.in, tc.width); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

// TestGlobalFlagsAnywhere: --data and --json go before the command,
// between a group and its verb, after the verb and among a command's
// arguments and own flags.
func TestGlobalFlagsAnywhere(t *testing.T) {
	f := newFakeNode()
	f.contacts = []api.Contact{{Petname: "alice", Account: "csa1alice"}}
	f.messages["alice"] = []api.Message{{ID: "m1", Peer: "csa1alice", Direction: "out", Text: "hi", State: "delivered"}}
	dir := f.start(t)
	for _, args := range [][]string{
		{"--data", dir, "--json", "contacts", "list"},
		{"contacts", "--data", dir, "list", "--json"},
		{"contacts", "list", "--json", "--data=" + dir},
		{"--json", "contacts", "--data", dir, "list"},
		{"-json", "contacts", "list", "-data", dir},
	} {
		out, errs, code := runCLI(t, args...)
		var cs []api.Contact
		if code != exitOK || errs != "" || json.Unmarshal([]byte(out), &cs) != nil || len(cs) != 1 || cs[0].Petname != "alice" {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
	for _, args := range [][]string{
		{"messages", "list", "alice", "--keep-unread", "--data", dir, "--json"},
		{"messages", "--json", "alice", "--data", dir, "--keep-unread"},
		{"--data", dir, "messages", "list", "--json", "--keep-unread", "alice"},
		{"messages", "--data", dir, "list", "--keep-unread", "alice", "--json"},
	} {
		out, errs, code := runCLI(t, args...)
		var ms []api.Message
		if code != exitOK || errs != "" || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 1 || ms[0].ID != "m1" {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
	// Flags between a command's positional arguments: the text is the
	// words after the name, whatever flags come among them.
	for _, args := range [][]string{
		{"send", "alice", "--data", dir, "hello", "--json", "there"},
		{"messages", "--json", "send", "alice", "hello", "--data", dir, "there"},
	} {
		out, errs, code := runCLI(t, args...)
		f.mu.Lock()
		sent := f.sent
		f.sent = nil
		f.mu.Unlock()
		if code != exitOK || errs != "" || compactJSON(t, out) != `{"id":"m2","state":"queued","to":"alice"}` ||
			len(sent) != 1 || sent[0] != "hello there" {
			t.Errorf("callsign %s: exit %d, stdout %q, stderr %q, sent %q", strings.Join(args, " "), code, out, errs, sent)
		}
	}
	out, errs, code := runCLI(t, "handle", "--json", "resolve", "--data", dir, "x")
	var wi api.Whois
	if code != exitError || json.Unmarshal([]byte(out), &wi) != nil || wi.Status != "not_found" || errs != "callsign: x: not found\n" {
		t.Errorf("callsign handle --json resolve --data DIR x: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestAliases: the short forms the CLI had before it grouped its
// commands run the same commands as the `noun verb` forms, with the same
// output.
func TestAliases(t *testing.T) {
	f := newFakeNode()
	f.contacts = []api.Contact{{Petname: "alice", Account: "csa1alice"}}
	f.messages["alice"] = []api.Message{{ID: "m1", Peer: "csa1alice", Direction: "out", Text: "hi", State: "delivered"}}
	f.log = []api.Call{{ID: "c9", Peer: "csa1alice", Direction: "in", State: "ended", EndReason: "missed"}}
	dir := f.start(t)
	for _, tc := range []struct{ old, new []string }{
		{[]string{"whois", "x"}, []string{"handle", "resolve", "x"}},
		{[]string{"messages"}, []string{"messages", "list"}},
		{[]string{"messages", "alice"}, []string{"messages", "list", "alice"}},
		{[]string{"calls"}, []string{"calls", "list"}},
	} {
		for _, asJSON := range []bool{false, true} {
			flags := []string{"--data", dir}
			if asJSON {
				flags = append(flags, "--json")
			}
			oldOut, oldErr, oldCode := runCLI(t, append(tc.old, flags...)...)
			newOut, newErr, newCode := runCLI(t, append(tc.new, flags...)...)
			if oldOut+oldErr == "" || oldOut != newOut || oldErr != newErr || oldCode != newCode {
				t.Errorf("callsign %s: exit %d, stdout %q, stderr %q\ncallsign %s: exit %d, stdout %q, stderr %q",
					strings.Join(tc.old, " "), oldCode, oldOut, oldErr, strings.Join(tc.new, " "), newCode, newOut, newErr)
			}
		}
	}
	// Every alias is the command: its help says so under the name used.
	for _, c := range commands() {
		for _, a := range c.aliases {
			out, errs, code := runCLI(t, append(strings.Fields(a), "-h")...)
			want := "usage: callsign " + a + " [flags]"
			if cli := newCLI(&env{}); len(cli.group(a, false)) > 0 { // a group that runs c when alone
				want = a + " commands:\n"
				if !strings.Contains(out, "`callsign "+strings.TrimSpace(a+" "+c.args)+"` is short for `callsign "+strings.TrimSpace(c.name+" "+c.args)+"`") {
					t.Errorf("callsign %s -h does not say it is %s:\n%s", a, c.name, out)
				}
			} else if !strings.Contains(out, "\nalso: callsign "+c.name) {
				t.Errorf("callsign %s -h does not name %s:\n%s", a, c.name, out)
			}
			if code != exitOK || errs != "" || !strings.HasPrefix(out, want) {
				t.Errorf("callsign %s -h: exit %d, stderr %q, stdout:\n%s", a, code, errs, out)
			}
		}
	}
}
