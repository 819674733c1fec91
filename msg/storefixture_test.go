package msg

import (
	"context"
	"encoding/hex"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// testdata/schema8 is a data directory written by the store's own
// message accessors, before msg owned its storage (commit 2c0e81d, store
// schema 8), with writeFixture's data. schema8Plain is every entry of it,
// opened: the plaintext the old code wrote.
var schema8Plain = map[string]string{
	"contact/acct-a": "0a06616363742d611a05616c69636528e0a5b2c9c3bce5863130e0a5b2c9c3bce58631",
	"conv/acct-a":    "0a06616363742d61100318e0c58bb0e1bce586312002",
	"conv/acct-b":    "0a06616363742d6218e0bd8eddf7bce5863120042801",
	"meta/schema":    "08",
	"msg/acct-a\x00\x18\x86\xca\xf2\x93\xcb\xddpa1": "0a0261311206616363742d61180120022a0c68656c6c6f2066726f6d206130e0cd8883cbbce5863138e0f5debcd2bce58631",
	"msg/acct-a\x00\x18\x86\xca\xf2\xcff\xa7pa2":    "0a0261321206616363742d61180220012a046869206130e09db5f6d9bce5863138e09db5f6d9bce58631",
	"msg/acct-a\x00\x18\x86\xca\xf3\v\x01qpa3":      "0a0261331206616363742d61180220022a0e61726520796f752074686572653f30e0c58bb0e1bce5863138e0c58bb0e1bce58631",
	"msg/acct-a\x00\x18\x86\xca\xf3F\x9c;pa4":       "0a0261341206616363742d611802200330e0ede1e9e8bce5863138e0ede1e9e8bce58631",
	"msg/acct-b\x00\x18\x86\xca\xf3\xbd\xd1\xcfpb1": "0a0262311206616363742d62180120012a0961207265717565737430e095b8a3f0bce5863138e0bd8eddf7bce58631",
	"msgid/acct-a\x00a0":                            "001886caf258311370",
	"msgid/acct-a\x00a1":                            "011886caf293cbdd7072656164",
	"msgid/acct-a\x00a2":                            "021886caf2cf66a77064656c697665726564",
	"msgid/acct-a\x00a3":                            "031886caf30b017170067175657565647365616c656420656e76656c6f7065206133",
	"msgid/acct-a\x00a4":                            "031886caf3469c3b700473656e74",
	"msgid/acct-a\x00ctl-1":                         "001886caf382370570",
	"msgid/acct-b\x00b1":                            "011886caf3bdd1cf707265636569766564",
	"out/rcpt-1":                                    "0a06726370742d311206616363742d621a107265636569707420656e76656c6f7065200428e0e5e496ffbce5863130e0bd8eddf7bce58631",
	"petname/alice":                                 "616363742d61",
	"qstart/acct-a":                                 "1886caf30b017170",
	"sess/acct-a":                                   "726174636865742073746174652061",
}

var fixtureT = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func fixtureAt(s int) time.Time { return fixtureT.Add(time.Duration(s) * time.Second) }

// schema9Plain is what the migration makes of schema8Plain's messaging
// entries that schema 9 changed: the queued messages' envelopes move to
// copies for no device, their entries name it; the queue start goes (the
// test deletes it).
var schema9Plain = map[string]string{
	"msgid/acct-a\x00a3": "031886caf30b01717006717565756564" + "0000000000000000",
	"msgid/acct-a\x00a4": "031886caf3469c3b700473656e74" + "0000000000000000",
	"dq/acct-a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00a3": "7365616c656420656e76656c6f7065206133",
	"dq/acct-a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00a4": "",
}

// writeFixture writes the fixture's messaging data as schema 9 holds it
// (the old code's accessors of the same names wrote schema 8's): the
// queued messages as copies for no known device (the fixture's session is
// not one), no queue start, and no session (schema 9 keeps them per
// device).
func writeFixture(d *Data) error {
	at := fixtureAt
	for _, err := range []error{
		d.PutConversation(Conversation{Peer: "acct-a", NextSeq: 3, LastAt: at(4), Unread: 1}),
		d.PutConversation(Conversation{Peer: "acct-b", LastAt: at(7), Unread: 2, Request: true}),
		d.InsertMessage(Message{ID: "a0", Peer: "acct-a", Direction: DirIn, Seq: 1, Body: []byte("deleted later"), SentAt: at(0), At: at(1), State: StateReceived}),
		d.InsertMessage(Message{ID: "a1", Peer: "acct-a", Direction: DirIn, Seq: 2, Body: []byte("hello from a"), SentAt: at(1), At: at(2), State: StateRead}),
		d.InsertMessage(Message{ID: "a2", Peer: "acct-a", Direction: DirOut, Seq: 1, Body: []byte("hi a"), SentAt: at(3), At: at(3), State: StateDelivered}),
		d.InsertQueued(Message{ID: "a3", Peer: "acct-a", Direction: DirOut, Seq: 2, Body: []byte("are you there?"), SentAt: at(4), At: at(4), State: StateQueued}, Copy{Env: []byte("sealed envelope a3")}),
		d.InsertQueued(Message{ID: "a4", Peer: "acct-a", Direction: DirOut, Seq: 3, SentAt: at(5), At: at(5), State: StateSent}, Copy{}),
		d.PutSeen("acct-a", "ctl-1", at(6)),
		d.InsertMessage(Message{ID: "b1", Peer: "acct-b", Direction: DirIn, Seq: 1, Body: []byte("a request"), SentAt: at(6), At: at(7), State: StateReceived}),
		d.PutOutbox(OutboxEntry{ID: "rcpt-1", Peer: "acct-b", Envelope: []byte("receipt envelope"), Attempts: 2, NextAttempt: at(8), CreatedAt: at(7)}),
	} {
		if err != nil {
			return err
		}
	}
	return d.DeleteMessage("acct-a", "a0")
}

// msgPlain is every entry of msg's keyspace in db, opened, hex-encoded.
func msgPlain(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(tx *store.Tx) error {
		sp := tx.Space(store.SpaceMsg)
		for _, p := range []string{"conv/", "dq/", "msg/", "msgid/", "out/", "sess/"} {
			err := sp.Scan([]byte(p), nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
				v, err := val()
				out[string(k)] = hex.EncodeToString(v)
				return true, err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchema8DataDir: a data directory the old code wrote opens, migrates
// to schema 9, verifies clean but for its session (the fixture's is not a
// session set, so the move to per-device sets leaves it for Verify to
// name) and reads back through msg; and msg writes the same data as the
// very same bytes, key for key: moving the storage to msg changed no
// stored form.
func TestSchema8DataDir(t *testing.T) {
	dir := t.TempDir()
	err := filepath.WalkDir("testdata/schema8", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		to := filepath.Join(dir, strings.TrimPrefix(p, "testdata/schema8"))
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Options{Dir: dir, Checks: map[string]store.Check{store.SpaceMsg: Check}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var damage []store.Damage
	st, err := db.Verify(context.Background(), func(d store.Damage) { damage = append(damage, d) })
	if err != nil || len(damage) != 1 || st.Entries != len(schema8Plain)+1 { // -qstart/, +2 dq/
		t.Fatalf("Verify = %+v, %v, damage %v; want %d entries, one damaged", st, err, damage, len(schema8Plain)+1)
	}
	if d := damage[0]; d.Kind != store.KindSession || d.Peer != "acct-a" || !strings.Contains(d.Problem, "not filed under a device") {
		t.Fatalf("Verify's damage = %+v, want the unreadable schema-8 session", d)
	}
	want := map[string]string{}
	for k, v := range schema8Plain {
		if strings.HasPrefix(k, "contact/") || strings.HasPrefix(k, "petname/") || strings.HasPrefix(k, "meta/") {
			continue // the store's own
		}
		want[k] = v
	}
	for k, v := range schema9Plain {
		want[k] = v
	}
	delete(want, "qstart/acct-a")
	if got := msgPlain(t, db); !maps.Equal(got, want) {
		t.Fatalf("the old data dir's messaging entries:\n%v\nwant\n%v", got, want)
	}
	delete(want, "sess/acct-a") // not a session set: msg's accessors can't write it

	// Read through msg as the node does.
	db2 := testDB{db}
	ms, _, err := db2.Messages("acct-a", Page{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.ID+" "+m.Direction+" "+m.State+" "+string(m.Body))
	}
	if want := []string{"a1 in read hello from a", "a2 out delivered hi a", "a3 out queued are you there?", "a4 out sent "}; !slices.Equal(got, want) {
		t.Fatalf("messages of acct-a = %q, want %q", got, want)
	}
	err = db.View(func(tx *store.Tx) error {
		d := In(tx)
		for id, want := range map[string]IDUse{"a0": IDSeen, "ctl-1": IDSeen, "a1": IDSeen, "a2": IDOurs, "nope": IDFree} {
			if use, err := d.IDUse("acct-a", id); err != nil || use != want {
				t.Errorf("IDUse(%s) = %v, %v; want %v", id, use, err, want)
			}
		}
		if env, err := d.QueuedEnvelope("acct-a", identity.DeviceID{}, "a3"); err != nil || string(env) != "sealed envelope a3" {
			t.Errorf("QueuedEnvelope(a3) = %q, %v", env, err)
		}
		if qs, err := d.Queued(); err != nil || len(qs) != 2 || qs[0].ID != "a3" || qs[1].ID != "a4" || !qs[0].At.Equal(fixtureAt(4)) {
			t.Errorf("Queued = %+v, %v", qs, err)
		}
		if due, err := d.DueOutbox(fixtureAt(9), 0); err != nil || len(due) != 1 || due[0].ID != "rcpt-1" || due[0].Attempts != 2 || string(due[0].Envelope) != "receipt envelope" {
			t.Errorf("DueOutbox = %+v, %v", due, err)
		}
		if c, err := d.Conversation("acct-b"); err != nil || !c.Request || c.Unread != 2 || !c.LastAt.Equal(fixtureAt(7)) {
			t.Errorf("Conversation(acct-b) = %+v, %v", c, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The same data written by msg is the same bytes.
	fresh := memDB(t)
	if err := fresh.Update(func(tx *store.Tx) error { return writeFixture(In(tx)) }); err != nil {
		t.Fatal(err)
	}
	if got := msgPlain(t, fresh.DB); !maps.Equal(got, want) {
		t.Fatalf("msg writes\n%v\nwant the old code's\n%v", got, want)
	}
}
