package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// valueCodecs are the schema-8 encodings of the values that were JSON:
// each with a value that sets every field, and the golden bytes of that
// value, so a change to a byte form shows up here as well as in the
// schema-7 migration test.
var valueCodecs = []struct {
	name   string
	golden string
	enc    func() ([]byte, error)
	dec    func([]byte) (any, error)
	want   any
}{
	{"claim", "0a05616c696365", func() ([]byte, error) { return marshalClaim(&HandleClaim{Name: "alice"}) },
		func(b []byte) (any, error) { return unmarshalClaim(b) }, HandleClaim{Name: "alice"}},
	{"listen ports", "08a11f10a21f", func() ([]byte, error) { return marshalListenPorts(&wantPorts) },
		func(b []byte) (any, error) { return unmarshalListenPorts(b) }, wantPorts},
	{"call settings", "0a0876657269666965641001180122082f746d702f726563" +
		"2a0e0a0561636374311205616c6c6f77" + "2a0d0a056163637432120464656e79",
		func() ([]byte, error) { return marshalCallSettings(&wantCallSettings) },
		func(b []byte) (any, error) { return unmarshalCallSettings(b) }, wantCallSettings},
	{"contact", "", func() ([]byte, error) { return marshalContact(&wantContacts[0]) },
		func(b []byte) (any, error) {
			c, err := unmarshalContact(b)
			c.AddedAt, c.PinnedAt = utc(c.AddedAt), utc(c.PinnedAt)
			return c, err
		},
		wantContacts[0]},
	{"call", "", func() ([]byte, error) { return marshalCall(&wantCalls[0]) },
		func(b []byte) (any, error) { c, err := unmarshalCall(b); c.Start = utc(c.Start); return c, err }, wantCalls[0]},
	{"mailbox member", "", func() ([]byte, error) { return marshalMailboxMember(&wantMember) },
		func(b []byte) (any, error) {
			m, err := unmarshalMailboxMember(b)
			m.Registered = utc(m.Registered)
			return m, err
		}, wantMember},
	{"mailbox device", "0a0570656572311001", func() ([]byte, error) { return marshalMailboxDevice(&wantDevice) },
		func(b []byte) (any, error) { return unmarshalMailboxDevice(b) }, wantDevice},
}

// wantDevice is a MailboxDevice as stored (its account and id are in its key).
var wantDevice = MailboxDevice{Peer: []byte("peer1"), First: true}

// TestValueCodecs: every value reads back as written, its bytes are the
// golden ones where given, and a field the schema does not have, even one
// in the additions range, makes the value corrupt (one byte form).
func TestValueCodecs(t *testing.T) {
	for _, c := range valueCodecs {
		b, err := c.enc()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.golden != "" && hex.EncodeToString(b) != c.golden {
			t.Errorf("%s: %x, want %s", c.name, b, c.golden)
		}
		got, err := c.dec(b)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: read back %+v, %v\nwant %+v", c.name, got, err, c.want)
		}
		if _, err := c.dec(append(b, 0x88, 0x01, 0x05)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s with an addition: %v, want ErrCorrupt", c.name, err)
		}
		if _, err := c.dec([]byte(`{"a":1}`)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s as JSON: %v, want ErrCorrupt", c.name, err)
		}
	}
	// Rules are written in account order, whatever the map's order; read
	// out of order, they are corrupt.
	r := CallSettings{Rules: map[string]string{"b": "deny", "a": "allow"}}
	b, _ := marshalCallSettings(&r)
	if hex.EncodeToString(b) != "2a0a0a01611205616c6c6f772a090a0162120464656e79" {
		t.Errorf("rules: %x", b)
	}
	swapped, _ := hex.DecodeString("2a090a0162120464656e792a0a0a01611205616c6c6f77")
	if _, err := unmarshalCallSettings(swapped); !errors.Is(err, ErrCorrupt) {
		t.Errorf("rules out of order: %v, want ErrCorrupt", err)
	}
	if err := memT(t).PutCallSettings(CallSettings{Rules: map[string]string{"a": ""}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an empty rule: %v, want ErrInvalid", err)
	}
}

// reencode decodes b as a T and encodes what it read; ok is false when b
// does not decode.
func reencode[T any](dec func([]byte) (T, error), enc func(*T) ([]byte, error)) func(b []byte) (out []byte, ok bool, err error) {
	return func(b []byte) ([]byte, bool, error) {
		v, err := dec(b)
		if err != nil {
			return nil, false, nil
		}
		out, err := enc(&v)
		return out, true, err
	}
}

var reencoders = map[string]func(b []byte) (out []byte, ok bool, err error){
	"claim":          reencode(unmarshalClaim, marshalClaim),
	"listen ports":   reencode(unmarshalListenPorts, marshalListenPorts),
	"call settings":  reencode(unmarshalCallSettings, marshalCallSettings),
	"contact":        reencode(unmarshalContact, marshalContact),
	"call":           reencode(unmarshalCall, marshalCall),
	"mailbox member": reencode(unmarshalMailboxMember, marshalMailboxMember),
	"mailbox device": reencode(unmarshalMailboxDevice, marshalMailboxDevice),
}

// FuzzValueCodecs: whatever decodes as one of the schema-8 values
// re-encodes to the same bytes (one byte form), and nothing panics.
func FuzzValueCodecs(f *testing.F) {
	for _, c := range valueCodecs {
		b, err := c.enc()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, 0x88, 0x01, 0x05))
	}
	f.Add([]byte(`{"policy":"everyone"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, re := range reencoders {
			out, ok, err := re(b)
			if ok && (err != nil || !bytes.Equal(out, b)) {
				t.Fatalf("%s %x re-encodes as %x, %v", name, b, out, err)
			}
		}
	})
}
