package devices

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
)

// linkedDevice is a well-formed step-6 payload: a certificate of an
// account for a new device and the device's own roster entry.
func linkedDevice(t testing.TB) LinkedDevice {
	t.Helper()
	ak, err := identity.AccountKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{3}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pid.MarshalBinary()
	x := bytes.Repeat([]byte{5}, identity.X25519KeySize)
	cert, err := identity.IssueDeviceCert(ak, pb, x, t0, t0.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id := cert.DeviceID()
	e := RosterEntry{PeerID: pb, X25519: x, Name: "laptop", Added: t0}
	return LinkedDevice{Cert: cert, Bundle: []byte("bundle"), Roster: Op{Kind: KindRoster, Key: id[:], Stamp: Stamp{Clock: 4, Origin: id}, Value: e.Marshal()}}
}

// The payloads of steps 5 and 6 read back what was written, and each
// rule on them refuses what breaks it, wrapping ErrLinkFrame.
func TestLinkPayloads(t *testing.T) {
	roster := linkedDevice(t).Roster
	a := LinkAccount{Items: []LinkItem{{1, bytes.Repeat([]byte{1}, 32)}, {3, []byte("contact")}, {5, nil}}, Roster: []Op{roster}}
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalLinkAccount(b)
	if err != nil || len(got.Items) != 3 || got.Items[1].Kind != 3 || string(got.Items[1].Body) != "contact" || len(got.Items[2].Body) != 0 || len(got.Roster) != 1 {
		t.Fatalf("account payload read back as %+v, %v", got, err)
	}
	ld := linkedDevice(t)
	lb, err := ld.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UnmarshalLinkedDevice(lb); err != nil || got.Cert.DeviceID() != ld.Cert.DeviceID() || string(got.Bundle) != "bundle" {
		t.Fatalf("linked payload read back as %+v, %v", got, err)
	}

	big := LinkAccount{Items: []LinkItem{{1, make([]byte, MaxLinkPayload)}}}
	if _, err := big.Marshal(); !errors.Is(err, ErrLinkTooLarge) {
		t.Errorf("an account over one payload: %v, want ErrLinkTooLarge", err)
	}

	enc := func(f func(e *wire.Encoder)) []byte {
		var e wire.Encoder
		f(&e)
		return e.B
	}
	item := func(kind uint64, body []byte) []byte {
		return enc(func(e *wire.Encoder) { e.Uint(1, kind); e.Bytes(2, body) })
	}
	other, _ := MarshalBatch([]Op{testOp()})
	two, _ := MarshalBatch([]Op{roster, roster})
	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"no items", "no items", enc(func(e *wire.Encoder) {})},
		{"an item without a kind", "no kind", enc(func(e *wire.Encoder) { e.Bytes(1, item(0, []byte("x"))) })},
		{"a kind over a byte", "", enc(func(e *wire.Encoder) { e.Bytes(1, item(256, []byte("x"))) })},
		{"a roster of another register", "contact-name register", enc(func(e *wire.Encoder) { e.Bytes(1, item(1, []byte("s"))); e.Bytes(2, other) })},
		{"an unknown field", "", append(enc(func(e *wire.Encoder) { e.Bytes(1, item(1, []byte("s"))) }), enc(func(e *wire.Encoder) { e.Uint(9, 1) })...)},
	} {
		if _, err := UnmarshalLinkAccount(tc.b); !errors.Is(err, ErrLinkFrame) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("account payload, %s: %v, want ErrLinkFrame %q", tc.name, err, tc.want)
		}
	}

	mod := func(f func(l *LinkedDevice)) []byte {
		l := linkedDevice(t)
		f(&l)
		var e wire.Encoder
		e.Bytes(1, l.Cert.Marshal())
		r, err := MarshalBatch([]Op{l.Roster})
		if err != nil {
			t.Fatal(err)
		}
		e.Bytes(2, r)
		e.Bytes(3, l.Bundle)
		return e.B
	}
	otherX := bytes.Repeat([]byte{6}, identity.X25519KeySize)
	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"no bundle", "no certificate, roster entry or bundle", mod(func(l *LinkedDevice) { l.Bundle = nil })},
		{"a bundle too large", "", mod(func(l *LinkedDevice) { l.Bundle = make([]byte, MaxLinkBundle+1) })},
		{"another device's entry", "not the certified device's", mod(func(l *LinkedDevice) {
			id := identity.DeviceIDOf(otherX)
			l.Roster.Key = id[:]
			l.Roster.Value = RosterEntry{PeerID: l.Cert.PeerID, X25519: otherX, Name: "x", Added: t0}.Marshal()
		})},
		{"revoked", "calls itself revoked", mod(func(l *LinkedDevice) {
			e, _ := UnmarshalRosterEntry(l.Roster.Value)
			e.RevokedAt = t0.Add(time.Hour)
			l.Roster.Value = e.Marshal()
		})},
		{"written by another device", "written by another device", mod(func(l *LinkedDevice) { l.Roster.Stamp.Origin = identity.DeviceIDOf(otherX) })},
		{"a garbled certificate", "", mod(func(l *LinkedDevice) { l.Cert.Sig = nil })},
		{"two entries", "2 roster entries", enc(func(e *wire.Encoder) {
			l := linkedDevice(t)
			e.Bytes(1, l.Cert.Marshal())
			e.Bytes(2, two)
			e.Bytes(3, l.Bundle)
		})},
	} {
		if _, err := UnmarshalLinkedDevice(tc.b); !errors.Is(err, ErrLinkFrame) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("linked payload, %s: %v, want ErrLinkFrame %q", tc.name, err, tc.want)
		}
	}
}

// FuzzLinkPayloads: no input panics either decoder; what the account
// decoder reads encodes again, and what the linked decoder reads passes its
// own rules again.
func FuzzLinkPayloads(f *testing.F) {
	a := LinkAccount{Items: []LinkItem{{1, bytes.Repeat([]byte{1}, 32)}, {3, []byte("contact")}}, Roster: []Op{linkedDevice(f).Roster}}
	b, err := a.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	lb, err := linkedDevice(f).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(lb)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := UnmarshalLinkAccount(b); err == nil {
			if _, err := a.Marshal(); err != nil {
				t.Fatalf("an account payload read does not encode again: %v", err)
			}
		}
		if l, err := UnmarshalLinkedDevice(b); err == nil {
			re, err := l.Marshal()
			if err != nil {
				t.Fatalf("a linked payload read does not encode again: %v", err)
			}
			if _, err := UnmarshalLinkedDevice(re); err != nil {
				t.Fatalf("a linked payload read, encoded again, is refused: %v", err)
			}
		}
	})
}
