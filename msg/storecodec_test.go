package msg

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Golden binary encodings: a change to one of these is a schema change and
// needs a migration.
var (
	goldenMessage = Message{ID: "m1", Peer: "p", Direction: DirOut, Seq: 3, Body: []byte("hi"),
		SentAt: time.Unix(0, 5), At: time.Unix(0, 6), State: "sent"}
	goldenMessageHex = "0a026d3112017018022003" + "2a026869300a380c420473656e74"

	goldenOutbox = OutboxEntry{ID: "m1", Peer: "p", Envelope: []byte{2, 9}, Attempts: 1,
		NextAttempt: time.Unix(0, 64), CreatedAt: time.Unix(0, 0)}
	goldenOutboxHex = "0a026d311201701a02020920022880013000"
	// An entry for one device (a copy for a sibling): field 7.
	goldenDevOutbox = OutboxEntry{ID: "m1", Peer: "p", Dev: identity.DeviceID{1, 2, 3, 4, 5, 6, 7, 8},
		NextAttempt: time.Unix(0, 64), CreatedAt: time.Unix(0, 0)}
	goldenDevOutboxHex = "0a026d31120170288001300" + "03a080102030405060708"
	// A group carrier sealed for one device, its content kept (field 8),
	// with an attachment (field 9).
	goldenCarrierOutbox = OutboxEntry{ID: "m1", Peer: "p", Dev: identity.DeviceID{1, 2, 3, 4, 5, 6, 7, 8},
		Envelope: []byte{envGroupSealed, 9}, Content: []byte{8, 1}, File: []byte{7}, NextAttempt: time.Unix(0, 64), CreatedAt: time.Unix(0, 0)}
	goldenCarrierOutboxHex = "0a026d31120170" + "1a020409" + "2880013000" + "3a080102030405060708" + "42020801" + "4a0107"

	goldenConv    = Conversation{Peer: "p", NextSeq: 4, LastAt: time.Unix(0, -1), Unread: 2, Request: true}
	goldenConvHex = "0a01701004180120042801"
)

func TestCodecGolden(t *testing.T) {
	mb, err := marshalMessage(&goldenMessage)
	if err != nil || hex.EncodeToString(mb) != goldenMessageHex {
		t.Errorf("message = %x, %v; want %s", mb, err, goldenMessageHex)
	}
	ob, err := marshalOutbox(&goldenOutbox)
	if err != nil || hex.EncodeToString(ob) != goldenOutboxHex {
		t.Errorf("outbox = %x, %v; want %s", ob, err, goldenOutboxHex)
	}
	cb, err := marshalConversation(&goldenConv)
	if err != nil || hex.EncodeToString(cb) != goldenConvHex {
		t.Errorf("conversation = %x, %v; want %s", cb, err, goldenConvHex)
	}
	m, err := unmarshalMessage(mustHex(goldenMessageHex))
	if err != nil || !sameMessage(m, goldenMessage) {
		t.Errorf("decoded message = %+v, %v", m, err)
	}
	o, err := unmarshalOutbox(mustHex(goldenOutboxHex))
	if err != nil || !sameOutbox(o, goldenOutbox) {
		t.Errorf("decoded outbox = %+v, %v", o, err)
	}
	if db, err := marshalOutbox(&goldenDevOutbox); err != nil || hex.EncodeToString(db) != goldenDevOutboxHex {
		t.Errorf("outbox for a device = %x, %v; want %s", db, err, goldenDevOutboxHex)
	}
	if d, err := unmarshalOutbox(mustHex(goldenDevOutboxHex)); err != nil || !sameOutbox(d, goldenDevOutbox) {
		t.Errorf("decoded outbox for a device = %+v, %v", d, err)
	}
	if cb, err := marshalOutbox(&goldenCarrierOutbox); err != nil || hex.EncodeToString(cb) != goldenCarrierOutboxHex {
		t.Errorf("a sealed carrier's outbox entry = %x, %v; want %s", cb, err, goldenCarrierOutboxHex)
	}
	if c, err := unmarshalOutbox(mustHex(goldenCarrierOutboxHex)); err != nil || !sameOutbox(c, goldenCarrierOutbox) {
		t.Errorf("decoded sealed carrier's outbox entry = %+v, %v", c, err)
	}
	// The unix epoch is a time, not the zero time.
	if o.CreatedAt.IsZero() || o.CreatedAt.UnixNano() != 0 {
		t.Errorf("epoch CreatedAt decoded as %v", o.CreatedAt)
	}
	c, err := unmarshalConversation(mustHex(goldenConvHex))
	if err != nil || !sameConv(c, goldenConv) {
		t.Errorf("decoded conversation = %+v, %v", c, err)
	}
}

func sameMessage(a, b Message) bool {
	return a.ID == b.ID && a.Peer == b.Peer && a.Direction == b.Direction && a.Seq == b.Seq &&
		bytes.Equal(a.Body, b.Body) && a.SentAt.Equal(b.SentAt) && a.SentAt.IsZero() == b.SentAt.IsZero() &&
		a.At.Equal(b.At) && a.State == b.State
}

func sameConv(a, b Conversation) bool {
	return a.Peer == b.Peer && a.NextSeq == b.NextSeq && a.LastAt.Equal(b.LastAt) && a.LastAt.IsZero() == b.LastAt.IsZero() &&
		a.Unread == b.Unread && a.Request == b.Request
}

func sameOutbox(a, b OutboxEntry) bool {
	return a.ID == b.ID && a.Peer == b.Peer && a.Dev == b.Dev && bytes.Equal(a.Envelope, b.Envelope) && bytes.Equal(a.Content, b.Content) && bytes.Equal(a.File, b.File) && a.Attempts == b.Attempts &&
		a.NextAttempt.Equal(b.NextAttempt) && a.CreatedAt.Equal(b.CreatedAt) && a.CreatedAt.IsZero() == b.CreatedAt.IsZero()
}

// TestCodecStrict feeds the decoders every way a value can be malformed or
// non-canonical; each must be refused with errCorrupt.
func TestCodecStrict(t *testing.T) {
	long := strings.Repeat("x", maxIDLen+1)
	cases := map[string]string{
		"empty":              "",
		"truncated tag":      "80",
		"truncated bytes":    "0a056d31",
		"out of order":       "1201700a026d31",
		"repeated field":     "0a026d310a026d32",
		"unknown field":      "0a026d311201701802380c4801",
		"wrong wire type":    "08011201701802380c",
		"non-minimal varint": "0a026d3112017018820038 0c",
		"non-minimal tag":    "8a00026d31",
		"non-minimal length": "0a82006d311201701802380c",
		"zero varint":        "0a026d31120170180220 00380c",
		"empty bytes":        "0a0012017018 02380c",
		"bad direction":      "0a026d311201701803380c",
		"missing time":       "0a026d3112017018 02",
		"long id":            "0a" + hex.EncodeToString(binary.AppendUvarint(nil, uint64(len(long)))) + hex.EncodeToString([]byte(long)) + "120170180238 0c",
		"state not utf8":     "0a026d311201701802380c4201ff",
		"truncated varint":   "0a026d311201701802380c5080",
	}
	for name, h := range cases {
		b := mustHex(strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalMessage(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalMessage(%x) = %v, want errCorrupt", name, b, err)
		}
	}
	// A minimal valid message, to show the cases above fail for their own reason.
	if _, err := unmarshalMessage(mustHex("0a026d311201701802380c")); err != nil {
		t.Fatalf("minimal message: %v", err)
	}
	for name, h := range map[string]string{
		"no next attempt":   "0a026d31120170",
		"negative attempts": "0a026d311201702001 2802",
		"empty":             "",
		"zero device":       "0a026d3112017028800130003a080000000000000000",
		"short device":      "0a026d3112017028800130003a0701020304050607",
	} {
		b := mustHex(strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalOutbox(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalOutbox(%x) = %v, want errCorrupt", name, b, err)
		}
	}
	for name, h := range map[string]string{
		"no peer":        "1004",
		"request flag 2": "0a01702802",
		"unread too big": "0a0170 20 80808080 20",
	} {
		b := mustHex(strings.ReplaceAll(h, " ", ""))
		if _, err := unmarshalConversation(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalConversation(%x) = %v, want errCorrupt", name, b, err)
		}
	}
}

func TestCodecLimits(t *testing.T) {
	db := openDB(t, t.TempDir())
	big := make([]byte, maxBodySize+1)
	if err := db.PutMessage(Message{ID: "a", Peer: "p", Direction: DirIn, Body: big}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("oversized body: %v", err)
	}
	if err := db.PutOutbox(OutboxEntry{ID: "a", Peer: "p", NextAttempt: t0, Envelope: make([]byte, maxEnvelopeLen+1)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("oversized envelope: %v", err)
	}
	if err := db.PutMessage(Message{ID: "a", Peer: "p", Direction: DirIn, At: t0, SentAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("sent time out of range: %v", err)
	}
	// The largest body round-trips, and so does a sender clock at the epoch.
	body := bytes.Repeat([]byte{7}, maxBodySize)
	m := Message{ID: "b", Peer: "p", Direction: DirIn, Body: body, SentAt: time.Unix(0, 0), At: t0}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	got, err := db.Message("p", "b")
	if err != nil || !sameMessage(got, m) {
		t.Fatalf("max body message = %v", err)
	}
}

func FuzzStoredValues(f *testing.F) {
	for _, h := range []string{goldenMessageHex, goldenOutboxHex, goldenDevOutboxHex, goldenConvHex, "0a026d311201701802380c", "00188a4e0c34af0000", "03188a4e0c34af00000473656e7402aa", goldenConvHex + "880105"} {
		f.Add(mustHex(h))
	}
	for _, m := range []Message{
		{ID: "a", Peer: "p", Direction: DirOut, At: time.Unix(5, 0), Body: []byte("x"), Action: &Action{Kind: ActionReact, Target: "t", Emoji: "👍"}},
		{ID: "b", Peer: "p", Direction: DirIn, At: time.Unix(5, 0), Body: []byte("y"), ReplyTo: "a", Edited: true,
			Reactions: []Reaction{{Dir: DirIn, Emoji: "❤️"}, {Dir: DirOut, Emoji: "👍"}}},
		{ID: "c", Peer: "p", Direction: DirIn, At: time.Unix(5, 0), Deleted: true},
	} {
		b, err := marshalMessage(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := unmarshalMessage(b); err == nil {
			out, err := marshalMessage(&m)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("message %x re-encodes as %x, %v", b, out, err)
			}
		}
		if e, err := unmarshalOutbox(b); err == nil {
			out, err := marshalOutbox(&e)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("outbox %x re-encodes as %x, %v", b, out, err)
			}
			due, err := outboxDue(b)
			if err != nil || string(due.id) != e.ID || due.dev != e.Dev || !due.next.Equal(e.NextAttempt) {
				t.Fatalf("outboxDue(%x) = %q %v %v %v", b, due.id, due.dev, due.next, err)
			}
		}
		if ix, err := unmarshalIndex(b); err == nil {
			var out []byte
			out, err = ix.marshal()
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("index %x re-encodes as %x, %v", b, out, err)
			}
		}
		if c, err := unmarshalConversation(b); err == nil {
			out, err := marshalConversation(&c)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("conversation %x re-encodes as %x, %v", b, out, err)
			}
		}
	})
}

func TestMessageIndex(t *testing.T) {
	b, err := marshalIndex(t0, DirOut, "sent")
	if err != nil {
		t.Fatal(err)
	}
	want := "02" + hex.EncodeToString(be64(t0)) + "73656e74"
	if hex.EncodeToString(b) != want {
		t.Fatalf("index = %x, want %s", b, want)
	}
	ix, err := unmarshalIndex(b)
	if err != nil || ix.marker() || ix.dir != DirOut || ix.state != "sent" || !ix.at.Equal(t0) {
		t.Fatalf("decoded index = %+v, %v", ix, err)
	}
	if ix, err := unmarshalIndex(b[:9]); err != nil || ix.state != "" || ix.dir != DirOut {
		t.Fatalf("index without a state = %+v, %v", ix, err)
	}
	// A seen-only marker: 0x00 and the time first seen.
	mb := marshalSeen(t0)
	if want := "00" + hex.EncodeToString(be64(t0)); hex.EncodeToString(mb) != want {
		t.Fatalf("marker = %x, want %s", mb, want)
	}
	if ix, err := unmarshalIndex(mb); err != nil || !ix.marker() || !ix.at.Equal(t0) {
		t.Fatalf("decoded marker = %+v, %v", ix, err)
	}
	for name, bad := range map[string][]byte{
		"marker short":   mb[:8],
		"marker long":    append(bytes.Clone(mb), 0),
		"marker < 1970":  append([]byte{0}, 0x80, 0, 0, 0, 0, 0, 0, 0),
		"index < 1970":   append([]byte{2, 0x80, 0, 0, 0, 0, 0, 0, 0}, "sent"...),
		"index ≥ 2262":   append([]byte{1, 0x7f, 0xff, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30}, "sent"...),
		"empty":          {},
		"short time":     b[:8],
		"unknown kind":   append([]byte{3}, b[1:]...),
		"schema-3 form":  append([]byte{0x10}, append([]byte("msg/p\x00........m1"), 2)...),
		"state not utf8": append(bytes.Clone(b[:9]), 0xff),
		"state too long": append(bytes.Clone(b[:9]), strings.Repeat("s", maxStateLen+1)...),
	} {
		if _, err := unmarshalIndex(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: unmarshalIndex(%x) = %v, want errCorrupt", name, bad, err)
		}
	}
	if _, err := marshalIndex(time.Time{}, DirIn, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("marshalIndex(zero time) = %v, want store.ErrInvalid", err)
	}

}
