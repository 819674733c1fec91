package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fixtureWritten is a time at which the certificates of
// testdata/schema8-sessions were valid: they were issued for 24 hours when
// it was written, shortly before 2026-12-06T02:44:50Z (commit cd5c781),
// and a frame sealed then carries its sender's.
var fixtureWritten = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// fixtureDevice is a node of testdata/schema8-sessions: its data directory
// as schema 8 left it and its keys (keys.json), with a new certificate for
// the same peer id and X25519 key, valid from fixtureWritten on; clock, if
// set, is its Config.Now.
func fixtureDevice(t *testing.T, w *world, name string, clock func() time.Time) (*node, map[string]string) {
	t.Helper()
	src := filepath.Join("testdata", "schema8-sessions")
	j, err := os.ReadFile(filepath.Join(src, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(j, &all); err != nil {
		t.Fatal(err)
	}
	k := all[name]
	raw := func(f string) []byte {
		b, err := hex.DecodeString(k[f])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	acct, err := identity.AccountKeyFromSeed(raw("account"))
	if err != nil {
		t.Fatal(err)
	}
	dh, err := ecdh.X25519().NewPrivateKey(raw("dh"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw("peer"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(src, name))); err != nil {
		t.Fatal(err)
	}
	// git keeps no modes; the store wants its key file private.
	if err := os.Chmod(filepath.Join(dir, "store.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mod func(*Config)
	if clock != nil {
		mod = func(c *Config) { c.Now = clock }
	}
	nd := deviceOf(t, w, acct, key, dh, dir, mod)
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if nd.cert, err = identity.IssueDeviceCert(acct, []byte(pid), dh.PublicKey().Bytes(), fixtureWritten.Add(-time.Minute), time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return nd, k
}

// peerSessions returns how many sessions n holds with other's device.
func peerSessions(t *testing.T, n, other *node) int {
	t.Helper()
	var sessions int
	err := n.db.View(func(tx *store.Tx) error {
		d := In(tx)
		b, err := d.Session(string(other.id()), other.cert.DeviceID())
		if err != nil {
			return fmt.Errorf("the session with %s's device: %w", other.id(), err)
		}
		set, err := e2e.UnmarshalSessionSet(b)
		if err != nil {
			return err
		}
		sessions = set.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sessions
}

// TestSchema8SessionsDataDir: two data directories written by schema 8
// (commit 00a5c4c; testdata/schema8-sessions/gen_test.go.txt), whose
// accounts had talked and where Alice had a message queued and sealed for
// Bob, who was offline, open under schema 9 and go on where they were:
// the queued message (now a copy for Bob's device) reaches Bob once and
// leaves the outbox, both go on writing in the sessions they had (neither
// side starts a new one, which the other would have to accept), and each
// side's sessions are filed under the other's device.
func TestSchema8SessionsDataDir(t *testing.T) {
	w := newWorld()
	a, ka := fixtureDevice(t, w, "alice", nil)
	// The message Alice's node sealed then carries her certificate of
	// then, which expired a day later: Bob's node reads it as on the day
	// it was written (the clock goes on from there).
	start := time.Now()
	b, _ := fixtureDevice(t, w, "bob", func() time.Time { return fixtureWritten.Add(time.Since(start)) })
	b.start()
	a.start()
	a.know(b)
	b.know(a)

	check.Eventually(t, 20*time.Second, func() error {
		if s := a.state(b.id(), ka["queued"]); s != StateDelivered {
			return fmt.Errorf("the message queued before the migration is %s", s)
		}
		return nil
	})
	m1 := a.send(b, "after the migration")
	m2 := b.send(a, "and back")
	check.Eventually(t, 20*time.Second, func() error {
		if s := a.state(b.id(), m1.ID); s != StateDelivered {
			return fmt.Errorf("alice's message is %s", s)
		}
		if s := b.state(a.id(), m2.ID); s != StateDelivered {
			return fmt.Errorf("bob's message is %s", s)
		}
		return nil
	})
	var got []string
	for _, m := range b.incoming(a.id()) {
		got = append(got, string(m.Body))
	}
	if want := []string{"hello bob", "and one more", "sent while bob was away", "after the migration"}; !slices.Equal(got, want) {
		t.Fatalf("bob's messages from alice = %q, want %q", got, want)
	}
	for _, c := range []struct{ n, other *node }{{a, b}, {b, a}} {
		if sessions := peerSessions(t, c.n, c.other); sessions != 1 {
			t.Errorf("%s holds %d sessions with %s's device, want the one it had", c.n.id(), sessions, c.other.id())
		}
		if q := c.n.outbox(); len(q) != 0 {
			t.Errorf("%s's outbox after delivery: %+v", c.n.id(), q)
		}
		if ks := sessionKeys(t, c.n.db.DB, string(c.other.id())); len(ks) != 1 {
			t.Errorf("%s's session keys with %s: %q", c.n.id(), c.other.id(), ks)
		}
	}
}

// TestCheckSessions: Verify's check of msg's keyspace names a session set
// that does not decode, holds another device's session or is not filed
// under a device; a sound set passes.
func TestCheckSessions(t *testing.T) {
	dhA, _ := e2e.GenerateDHKey(nil)
	alice := e2e.Identity{Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), DH: dhA}
	bobPub, bobKey, _ := ed25519.GenerateKey(nil)
	bobDH, _ := e2e.GenerateDHKey(nil)
	st, err := e2e.NewPrekeyState(e2e.Identity{Signer: bobKey, DH: bobDH}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var set e2e.SessionSet
	if err := set.Initiate(alice, bobPub, st.Bundle(), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := set.Marshal()
	dev := identity.DeviceIDOf(bobDH.PublicKey().Bytes())
	other := identity.DeviceID{7}
	for _, c := range []struct {
		name, key string
		v         []byte
		want      string
	}{
		{"sound set", string(sessionKey("p", dev)), b, ""},
		{"another device's", string(sessionKey("p", other)), b, "another device"},
		{"not a set", string(sessionKey("p", dev)), []byte("garbage"), "malformed"},
		{"schema 8's key", "sess/p", b, "not filed under a device"},
		{"short device", "sess/p\x00abc", b, "not filed under a device"},
	} {
		got := Check(nil, []byte(c.key), c.v, func([]byte, string) {})
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: Check = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestRecipientBundleOf: a device's published bundle is the one at its
// index in the record; a device the record has none for has none, and a
// certificate the record does not name has none.
func TestRecipientBundleOf(t *testing.T) {
	dev := func(b byte) identity.DeviceCert { return identity.DeviceCert{X25519: bytes.Repeat([]byte{b}, 32)} }
	r := Recipient{Devices: []identity.DeviceCert{dev(1), dev(2), dev(3)}, Bundles: [][]byte{[]byte("one"), nil}}
	for _, c := range []struct {
		d    identity.DeviceCert
		want string
	}{{dev(1), "one"}, {dev(2), ""}, {dev(3), ""}, {dev(4), ""}} {
		if got := r.bundleOf(c.d); string(got) != c.want {
			t.Errorf("bundleOf(device %x) = %q, want %q", c.d.X25519[0], got, c.want)
		}
	}
}
