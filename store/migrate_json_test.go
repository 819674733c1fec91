package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The schema-7 JSON of each kind of value, byte for byte as the schema-7
// accessors wrote it (encoding/json over the types and tags of then), and
// what each must read back as after the migration to schema 8.
var (
	v7t1 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	v7t2 = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

	v7Values = []struct {
		key, json string
	}{
		{"claim/alice", `{"name":"alice","nonce":12345,"seq":3,"claimed_at":"2026-01-02T03:04:05.000000006Z"}`},
		{"claim/bob", `{"name":"bob","nonce":0,"seq":0,"claimed_at":"0001-01-01T00:00:00Z"}`},
		{"conf/listen-ports", `{"tcp":4001,"quic":4002}`},
		{"contact/acct1", `{"account":"acct1","pubkey":"AQID","petname":"pet1","handle":"alice","added_at":"2026-01-02T03:04:05.000000006Z","pinned_at":"2026-02-03T04:05:06Z","key_changed":true,"seen_pubkey":"BAU=","verified":true,"following":true,"blocked":true,"accepted":true}`},
		{"contact/acct2", `{"account":"acct2","pubkey":"Bgc=","added_at":"2026-01-02T03:04:05.000000006Z","pinned_at":"2026-01-02T03:04:05.000000006Z"}`},
		{"call/" + string(be64(v7t2)) + "c1", `{"id":"c1","peer":"acct1","direction":"out","start":"2026-02-03T04:05:06Z","duration":61000000000,"end_reason":"hangup","path":"relay","packets_sent":100,"packets_received":99,"bytes_sent":12000,"bytes_received":11000,"loss":0.01,"rtt":35000000,"blocked":true}`},
		{"call/" + string(be64(v7t1)) + "c0", `{"id":"c0","peer":"acct2","direction":"in","start":"2026-01-02T03:04:05.000000006Z","duration":0,"end_reason":"missed","path":"","packets_sent":0,"packets_received":0,"bytes_sent":0,"bytes_received":0,"loss":0,"rtt":0}`},
		{"mbox/m/" + string(bytes.Repeat([]byte{7}, 32)), `{"account":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","peers":["cGVlcjE=","cGVlcjI="],"registered":"2026-02-03T04:05:06Z","count":2,"bytes":300,"next":5}`},
		{"set/calls", `{"policy":"verified","always_relay":true,"autoanswer":true,"record_dir":"/tmp/rec","rules":{"acct1":"allow","acct2":"deny"}}`},
	}

	wantClaims = []HandleClaim{
		{Name: "alice", Nonce: 12345, Seq: 3, ClaimedAt: v7t1},
		{Name: "bob"},
	}
	wantPorts    = ListenPorts{TCP: 4001, QUIC: 4002}
	wantContacts = []Contact{
		{Account: "acct1", PubKey: []byte{1, 2, 3}, Petname: "pet1", Handle: "alice", AddedAt: v7t1, PinnedAt: v7t2,
			KeyChanged: true, SeenPubKey: []byte{4, 5}, Verified: true, Following: true, Blocked: true, Accepted: true},
		{Account: "acct2", PubKey: []byte{6, 7}, AddedAt: v7t1, PinnedAt: v7t1},
	}
	wantCalls = []Call{ // newest first
		{ID: "c1", Peer: "acct1", Direction: "out", Start: v7t2, Duration: 61 * time.Second, EndReason: "hangup", Path: "relay",
			PacketsSent: 100, PacketsReceived: 99, BytesSent: 12000, BytesReceived: 11000, Loss: 0.01, RTT: 35 * time.Millisecond, Blocked: true},
		{ID: "c0", Peer: "acct2", Direction: "in", Start: v7t1, EndReason: "missed"},
	}
	wantMember = MailboxMember{Account: bytes.Repeat([]byte{7}, 32), Peers: [][]byte{[]byte("peer1"), []byte("peer2")},
		Registered: v7t2, Count: 2, Bytes: 300, Next: 5}
	wantCallSettings = CallSettings{Policy: "verified", AlwaysRelay: true, AutoAnswer: true, RecordDir: "/tmp/rec",
		Rules: map[string]string{"acct1": "allow", "acct2": "deny"}}
)

// schema7Store writes a store in dir as schema 7 left it: the values of
// v7Values as sealed JSON, a petname, a raw setting, a message (binary
// since schema 2, untouched by the migration), and extra more contacts
// written as schema 7 wrote them. It returns the message.
func schema7Store(t *testing.T, dir string, extra int) Message {
	t.Helper()
	db := openT(t, dir, nil)
	m := Message{ID: "m1", Peer: "acct1", Direction: DirIn, Seq: 1, Body: []byte("hello"), SentAt: v7t1, At: v7t2}
	if err := db.PutMessage(m); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, s := rawBadger(t, dir)
	defer bdb.Close()
	wb := bdb.NewWriteBatch()
	set := func(k, v string) {
		if err := wb.Set([]byte(k), s.seal([]byte(k), []byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range v7Values {
		set(v.key, v.json)
	}
	set("petname/pet1", "acct1")
	set("set/theme", "dark")
	for i := range extra {
		a := fmt.Sprintf("bulk%04d", i)
		set("contact/"+a, fmt.Sprintf(`{"account":%q,"pubkey":"AQID","added_at":"2026-01-02T03:04:05Z","pinned_at":"2026-01-02T03:04:05Z","following":true}`, a))
	}
	if err := wb.Set(keySchema, encodeSchema(s, 7)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	return m
}

// utc returns t in UTC, as the migrated values are compared.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// checkSchema8 opens the migrated store in dir and reads every value back.
func checkSchema8(t *testing.T, dir string, msg Message, extra int) {
	t.Helper()
	db := openT(t, dir, nil)
	defer db.Close()

	claims, err := db.Claims()
	for i := range claims {
		claims[i].ClaimedAt = utc(claims[i].ClaimedAt)
	}
	if err != nil || !reflect.DeepEqual(claims, wantClaims) {
		t.Errorf("claims = %+v, %v\nwant %+v", claims, err, wantClaims)
	}
	if p, err := db.ListenPorts(); err != nil || p != wantPorts {
		t.Errorf("listen ports = %+v, %v", p, err)
	}
	for _, want := range wantContacts {
		c, err := db.Contact(want.Account)
		c.AddedAt, c.PinnedAt = utc(c.AddedAt), utc(c.PinnedAt)
		if err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("contact = %+v, %v\nwant %+v", c, err, want)
		}
	}
	if c, err := db.ContactByPetname("pet1"); err != nil || c.Account != "acct1" {
		t.Errorf("contact by petname = %+v, %v", c, err)
	}
	all, err := db.Contacts()
	if err != nil || len(all) != len(wantContacts)+extra {
		t.Errorf("%d contacts, %v; want %d", len(all), err, len(wantContacts)+extra)
	}
	for _, c := range all {
		if bytes.HasPrefix([]byte(c.Account), []byte("bulk")) && (!c.Following || !bytes.Equal(c.PubKey, []byte{1, 2, 3})) {
			t.Errorf("bulk contact = %+v", c)
			break
		}
	}
	var calls []Call
	err = db.View(func(tx *Tx) error { calls, err = tx.Calls(0); return err })
	for i := range calls {
		calls[i].Start = utc(calls[i].Start)
	}
	if err != nil || !reflect.DeepEqual(calls, wantCalls) {
		t.Errorf("calls = %+v, %v\nwant %+v", calls, err, wantCalls)
	}
	var member MailboxMember
	err = db.View(func(tx *Tx) error { member, err = tx.MailboxMember(wantMember.Account); return err })
	member.Registered = utc(member.Registered)
	if err != nil || !reflect.DeepEqual(member, wantMember) {
		t.Errorf("mailbox member = %+v, %v\nwant %+v", member, err, wantMember)
	}
	if cs, err := db.CallSettings(); err != nil || !reflect.DeepEqual(cs, wantCallSettings) {
		t.Errorf("call settings = %+v, %v\nwant %+v", cs, err, wantCallSettings)
	}
	if _, ok, err := db.GetSetting("calls"); ok || err != nil {
		t.Errorf("the JSON call settings are still a setting: %v, %v", ok, err)
	}
	if v, ok, err := db.GetSetting("theme"); !ok || err != nil || string(v) != "dark" {
		t.Errorf("setting theme = %q, %v, %v", v, ok, err)
	}
	if got, err := db.Message(msg.Peer, msg.ID); err != nil || string(got.Body) != "hello" {
		t.Errorf("message = %+v, %v", got, err)
	}
	if _, err := db.Verify(context.Background(), func(d Damage) { t.Errorf("Verify after the migration: %v", d) }); err != nil {
		t.Error(err)
	}
}

// rawEntries maps every key of the closed store in dir to its raw
// (sealed) value. Sealing draws a fresh nonce, so a value written again,
// even unchanged, shows up as a different value.
func rawEntries(t *testing.T, dir string) map[string]string {
	t.Helper()
	bdb, s := rawBadger(t, dir)
	defer bdb.Close()
	out := map[string]string{}
	err := bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			k := it.Item().KeyCopy(nil)
			if pv, err := s.open(nil, k, v); err == nil && isJSONValue(pv) {
				return fmt.Errorf("%q is still JSON: %s", k, pv)
			}
			out[string(k)] = hex.EncodeToString(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateJSONValues opens a schema-7 data directory, whose claims,
// listen ports, contacts, call log, mailbox member and call settings are
// JSON, and reads every value back from its binary form; a second open
// writes nothing.
func TestMigrateJSONValues(t *testing.T) {
	dir := t.TempDir()
	msg := schema7Store(t, dir, 0)
	checkSchema8(t, dir, msg, 0)
	first := rawEntries(t, dir)
	if _, ok := first[string(keyCallSettingsV7)]; ok {
		t.Error("set/calls is left behind")
	}
	checkSchema8(t, dir, msg, 0)
	if second := rawEntries(t, dir); !reflect.DeepEqual(first, second) {
		for k, v := range second {
			if first[k] != v {
				t.Errorf("the second open rewrote %q", k)
			}
		}
		t.Fatalf("the second open changed the store (%d entries, then %d)", len(first), len(second))
	}
}

// TestMigrateJSONValuesInterrupted stops the migration after a batch, as
// a crash would, with more contacts than a batch converts: the next Open
// finishes it, and nothing converted before the crash is read as JSON.
func TestMigrateJSONValuesInterrupted(t *testing.T) {
	dir := t.TempDir()
	extra := migrateBatchEntries + 100
	msg := schema7Store(t, dir, extra)
	bdb, s := rawBadger(t, dir)
	crash := errors.New("crash")
	calls := 0
	hooks := map[uint64]migration{7: func(txn *badger.Txn) error {
		if calls++; calls == 2 {
			return crash
		}
		return migrateJSONValues(txn, s)
	}}
	if err := checkSchema(bdb, 8, hooks, s, slog.New(slog.DiscardHandler)); !errors.Is(err, crash) {
		bdb.Close()
		t.Fatalf("interrupted migration: %v", err)
	}
	converted, left := 0, 0
	bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfxContact
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := it.Item().ValueCopy(nil)
			pv, err := s.open(nil, it.Item().Key(), v)
			switch {
			case err != nil:
				t.Errorf("%q does not open: %v", it.Item().Key(), err)
			case isJSONValue(pv):
				left++
			default:
				converted++
			}
		}
		return nil
	})
	bdb.Close()
	if converted == 0 || left == 0 {
		t.Fatalf("after the crash: %d contacts converted, %d JSON; want both", converted, left)
	}
	checkSchema8(t, dir, msg, extra)
}
