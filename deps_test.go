package callsign_test

// The architecture's arrows (docs/ARCHITECTURE.md), enforced: each package
// lists what it must never depend on, with the reason.

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	libp2p = "github.com/libp2p/"
	badger = "github.com/dgraph-io/badger"
	pion   = "github.com/pion/"
	mod    = "github.com/callsign/callsign/"
)

var banned = map[string]map[string]string{
	"identity": {libp2p: "identity is pure: keys and names, no network", badger: "no storage", pion: "no media", "net": "no network", mod + "store": "no storage"},
	"e2e": {libp2p: "the ratchet is pure functions over bytes", badger: "no storage", pion: "no media", "net": "no I/O",
		mod + "identity": "e2e stands alone", mod + "store": "no storage", mod + "msg": "no delivery", mod + "p2p": "no streams", mod + "node": "no node"},
	"internal/wire": {mod: "the codec is a leaf", libp2p: "no network", badger: "no storage", pion: "no media"},
	"store":         {libp2p: "the store knows no network", pion: "no media", "net/http": "no HTTP", mod + "dht": "no DHT", mod + "msg": "messaging keeps its own data, in a keyspace the store hands it (Tx.Space)"},
	"dht":           {badger: "the DHT knows no storage engine", "github.com/pion/webrtc/v4": "no media (direct imports; go-libp2p's own WebRTC transport brings pion in)", mod + "store": "no storage", mod + "e2e": "no messaging"},
	"p2p":           {badger: "no storage", "github.com/pion/webrtc/v4": "no media (direct imports; go-libp2p's own WebRTC transport brings pion in)", mod + "identity": "no handle semantics", mod + "dht": "no DHT"},
	"p2p/invite":    {badger: "no storage", pion: "no media", mod + "node": "no node", mod + "store": "no storage", mod + "dht": "no DHT", mod + "identity": "no handles"},
	"media":         {libp2p: "calls know no DHT or streams", badger: "no storage", mod + "identity": "no handles", mod + "dht": "no DHT", mod + "store": "no storage", mod + "call": "call builds on media: the call state machine is call's"},
	"turn":          {libp2p: "the relay knows no libp2p", badger: "no storage", mod: "turn stands alone"},
	"call":          {badger: "no storage engine", mod + "node": "the node wires calls, not the reverse", mod + "api": "no API types", mod + "dht": "no DHT", mod + "msg": "signals go through a Signaler", mod + "store": "the call log goes through CallLog"},
	"msg":           {"github.com/pion/webrtc/v4": "no media (direct imports; libp2p brings pion in)", mod + "dht": "accounts are resolved through Directory", mod + "node": "no node", mod + "api": "no API types"},
	"mailbox":       {"github.com/pion/webrtc/v4": "no media", mod + "msg": "envelopes are opaque to the mailbox", mod + "dht": "no DHT", mod + "node": "no node", mod + "api": "no API types"},
	"contacts":      {libp2p: "the address book knows no network", pion: "no media", "net": "no network", mod + "dht": "callers resolve names and hand in the key", mod + "msg": "messaging asks the book, not the reverse", mod + "call": "calls ask the book, not the reverse", mod + "node": "no node", mod + "api": "no API types"},
	"files":         {badger: "files are plain files in their own directory", "github.com/pion/webrtc/v4": "no media (direct imports; libp2p brings pion in)", mod + "msg": "a message carries a Ref; files knows no messages", mod + "store": "no storage engine", mod + "dht": "no DHT", mod + "identity": "no accounts: the node decides who may fetch", mod + "node": "no node"},
	"group":         {libp2p: "membership is pure: signed operations and their fold", badger: "no storage", pion: "no media", "net": "no network", mod + "store": "the node stores the log", mod + "msg": "msg carries the operations, not the reverse", mod + "node": "no node"},
	"groupchat":     {libp2p: "carriers travel through a Transport (msg)", pion: "no media", "net": "no network", mod + "msg": "msg carries the carriers, not the reverse", mod + "dht": "no DHT", mod + "node": "no node", mod + "api": "no API types"},
	"devices":       {"github.com/pion/webrtc/v4": "no media (direct imports; libp2p brings pion in)", mod + "msg": "msg carries the ops, through an Applier", mod + "dht": "no DHT", mod + "call": "no calls", mod + "contacts": "contacts apply ops, devices does not write them", mod + "node": "no node", mod + "api": "no API types"},
	"node/backend":  {mod + "node": "the node wires the backend, not the reverse", mod + "internal/testnet": "production code", "net/http": "serving HTTP is api's; the backend answers in Go values"},
	"api":           {libp2p: "the API speaks plain types", badger: "no storage types", pion: "no media types", mod + "node": "the node's backend implements the API, not the reverse"},
	"web":           {mod: "the web app is static files", "net": "it only embeds files"},
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestDependencyArrows checks every package against its banned list:
// modules (libp2p, badger, pion, our own packages) anywhere in the
// dependency graph; standard-library packages (net, net/http) and exact
// package paths (such as pion/webrtc for packages on libp2p, whose WebRTC
// transport uses it) among the package's own imports only.
func TestDependencyArrows(t *testing.T) {
	for pkg, rules := range banned {
		deps := goList(t, "-deps", "./"+pkg+"/...")
		direct := map[string]bool{}
		for _, l := range goList(t, "-f", `{{join .Imports " "}}`, "./"+pkg+"/...") {
			direct[l] = true
		}
		for _, d := range deps {
			if strings.HasPrefix(d, mod+pkg) {
				continue // itself and its sub-packages
			}
			for rule, why := range rules {
				if (isStd(rule) || isExact(rule)) && !direct[d] {
					continue
				}
				if d == rule || strings.HasPrefix(d, rule) && (strings.HasSuffix(rule, "/") || strings.HasPrefix(d, rule+"/")) {
					t.Errorf("%s depends on %s: %s", pkg, d, why)
				}
			}
		}
	}
}

// TestCmdIsThin checks that the binary's own package imports no libp2p,
// badger or pion directly: it is flags, subcommands and exit codes.
func TestCmdIsThin(t *testing.T) {
	for _, imp := range goList(t, "-f", `{{join .Imports " "}}`, "./cmd/callsign") {
		for _, b := range []string{libp2p, badger, pion, mod + "store", mod + "dht", mod + "p2p"} {
			if strings.HasPrefix(imp, b) {
				t.Errorf("cmd/callsign imports %s directly; go through node or api", imp)
			}
		}
	}
}

// TestOnlyCmdImportsNode checks that node stays the composition root.
func TestOnlyCmdImportsNode(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}:{{join .Imports ","}}`, "./...")
	for _, l := range lines {
		pkg, imps, _ := strings.Cut(l, ":")
		if pkg == mod+"cmd/callsign" || pkg == mod+"internal/testnet" || strings.HasPrefix(pkg, mod+"node") || strings.HasPrefix(pkg, mod+"bench/") {
			continue
		}
		for _, imp := range strings.Split(imps, ",") {
			if imp == mod+"node" || imp == mod+"internal/testnet" {
				t.Errorf("%s imports %s; only cmd/callsign (and tests) may", pkg, imp)
			}
		}
	}
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// isExact reports whether a rule names one package rather than a module
// prefix (which ends in "/" or is a module path like badger's).
func isExact(rule string) bool { return strings.HasSuffix(rule, "/v4") }
