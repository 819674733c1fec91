package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestTicketSignIn: the link `callsign up` and `callsign web` print signs a
// tab in once and leaves no secret in the address bar; opened again in a
// fresh tab it says it was used and what to do.
func TestTicketSignIn(t *testing.T) {
	n := testnet.New(t, 2, testnet.Options{Web: web.FS()})
	nd := n.Nodes[1]
	tk, err := nd.Client.NewTicket(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tk.URL, "#ticket=") {
		t.Fatalf("ticket link %q", tk.URL)
	}
	p := browser.Open(t, "first", tk.URL)
	p.WaitText("Welcome to callsign")
	if loc := browser.Eval[string](p, "location.href"); strings.Contains(loc, tk.Ticket) {
		t.Errorf("the address bar shows the ticket: %s", loc)
	}
	again := browser.Open(t, "second", tk.URL)
	again.WaitText("used already or has expired")
	again.WaitText("callsign web")
	if again.HasText("Welcome to callsign") {
		t.Errorf("a spent ticket signed a second tab in")
	}
}
