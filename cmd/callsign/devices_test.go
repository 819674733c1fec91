package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
)

// sasShown finds the digits `up --link` shows.
var sasShown = regexp.MustCompile(`this device shows  (\d{3} \d{3})`)

// TestLinkProcess: the README's "Link a second device" with the real
// binary. Alice's node shows a code (`devices link --json`); a new node
// started with `up --link CODE --name laptop` shows six digits, which
// `devices status` on Alice's node shows too; she types them there
// (`devices confirm`) and answers y on the laptop. The laptop starts as a
// device of her account: both list two devices; the laptop's message
// reaches Bob once and shows on the first device, and Bob's reply arrives
// on each. A garbled code and a spent one are refused with a hint.
func TestLinkProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: builds and runs the binary")
	}
	root := t.TempDir()
	p := aliceAndBob(t, root)
	aDir, bDir, join, aID := p.aDir, p.bDir, p.join, p.aID
	lDir := filepath.Join(root, "laptop")

	if _, errs, code := cli(t, append([]string{"up", "--data", lDir, "--link", "callsign:link/garbled"}, join...)...); code == 0 || !strings.Contains(errs, "hint:") {
		t.Fatalf("a garbled code: exit %d %q", code, errs)
	}

	var offer api.LinkOffer
	mustJSON(t, &offer, "devices", "link", "--data", aDir)
	if !strings.HasPrefix(offer.Code, "callsign:link/") || time.Until(offer.Expires) < 5*time.Minute {
		t.Fatalf("devices link --json: %+v", offer)
	}
	answer, answerW := io.Pipe()
	defer answerW.Close()
	laptop := startUp(t, lDir, nil, answer, append(join, "--link", offer.Code, "--name", "laptop")...)
	var sas string
	check.Until(t, time.Minute, "the laptop shows the numbers", func() bool {
		m := sasShown.FindStringSubmatch(laptop.logs.String())
		if m != nil {
			sas = m[1]
		}
		return m != nil
	})
	var st api.LinkStatus
	check.Eventually(t, 30*time.Second, func() error {
		mustJSON(t, &st, "devices", "status", "--data", aDir)
		if st.State != api.LinkSAS {
			return fmt.Errorf("Alice's node says %s, want sas", st.State)
		}
		return nil
	})
	if st.SAS != sas {
		t.Fatalf("Alice's node shows %q, the laptop %q", st.SAS, sas)
	}
	// Typed as shown, with the space.
	if out, errs, code := cli(t, append([]string{"devices", "confirm", "--data", aDir}, strings.Fields(sas)...)...); code != 0 {
		t.Fatalf("devices confirm: exit %d\n%s%s", code, out, errs)
	}
	if _, err := fmt.Fprintln(answerW, "y"); err != nil {
		t.Fatal(err)
	}
	laptop.ready()
	if !strings.Contains(laptop.logs.String(), "linked: this device (laptop") {
		t.Fatalf("up --link did not say it linked:\n%s", laptop.logs)
	}
	var lID api.ID
	mustJSON(t, &lID, "id", "--data", lDir)
	if lID.Account != aID.Account || lID.Peer == aID.Peer {
		t.Fatalf("the laptop: account %s peer %s; want Alice's account %s on its own device", lID.Account, lID.Peer, aID.Account)
	}
	check.Eventually(t, 30*time.Second, func() error {
		mustJSON(t, &st, "devices", "status", "--data", aDir)
		if st.State != api.LinkLinked || st.Device == nil || st.Device.Name != "laptop" {
			return fmt.Errorf("Alice's node says %+v, want the laptop linked", st)
		}
		return nil
	})
	for _, dir := range []string{aDir, lDir} {
		check.Eventually(t, time.Minute, func() error {
			var ds []api.OwnDevice
			mustJSON(t, &ds, "devices", "list", "--data", dir)
			if len(ds) != 2 || !slices.ContainsFunc(ds, func(d api.OwnDevice) bool { return d.Name == "laptop" && d.Current == (dir == lDir) }) {
				return fmt.Errorf("devices list in %s: %+v", filepath.Base(dir), ds)
			}
			return nil
		})
	}
	if out, _, _ := cli(t, "devices", "list", "--data", aDir); !strings.Contains(out, "laptop") || !strings.Contains(out, "this device") {
		t.Errorf("devices list:\n%s", out)
	}

	// The laptop writes to Bob: his node, which had Alice's record with one
	// device cached, looks her up again when a device it did not know
	// writes, and from then on writes to both.
	if _, errs, code := cli(t, "send", "bob", "from the laptop", "--data", lDir); code != 0 {
		t.Fatalf("send from the laptop: %s", errs)
	}
	check.Until(t, time.Minute, "the laptop's message at Bob, and on the first device", func() bool {
		p, err := client(t, aDir).Messages(context.Background(), "bob", "", 100)
		return err == nil && slices.Equal(inbox(t, client(t, bDir), "alice"), []string{"from the laptop"}) &&
			slices.ContainsFunc(p.Messages, func(m api.Message) bool { return m.Direction == "out" && m.Text == "from the laptop" })
	})
	check.Until(t, 30*time.Second, "Alice's record names both devices at Bob", func() bool {
		var w api.Whois
		out, _, code := cli(t, "whois", aID.Account, "--data", bDir, "--json")
		return code == 0 && jsonInto(out, &w) && len(w.Devices) == 2
	})
	// Bob replies once; both of Alice's devices show it.
	if _, errs, code := cli(t, "send", "alice", "to both of you", "--data", bDir); code != 0 {
		t.Fatalf("send: %s", errs)
	}
	for _, dir := range []string{aDir, lDir} {
		check.Until(t, time.Minute, "Bob's message on "+filepath.Base(dir), func() bool {
			return slices.Equal(inbox(t, client(t, dir), "bob"), []string{"to both of you"})
		})
	}

	// The code is spent: Alice's node, which keeps its address to itself,
	// lets no one but its contacts and siblings connect directly once no
	// link waits, so the third device can't reach it at all.
	start := time.Now()
	if _, errs, code := cli(t, append([]string{"up", "--data", filepath.Join(root, "third"), "--link", offer.Code}, join...)...); code == 0 || !strings.Contains(errs, "hint:") {
		t.Fatalf("a spent code: exit %d %q", code, errs)
	}
	t.Logf("a spent code refused in %v", time.Since(start).Round(time.Millisecond))
}
