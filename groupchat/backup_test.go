package groupchat

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/store"
)

type item struct {
	kind byte
	body []byte
}

// backup is d's groups as a backup carries them.
func backup(t *testing.T, d *dev, messages bool) []item {
	t.Helper()
	return exported(t, d, func(tx *store.Tx, fn func(byte, []byte) error) error { return ExportBackup(tx, messages, fn) })
}

// exported is what export gives of d's store.
func exported(t *testing.T, d *dev, export func(*store.Tx, func(byte, []byte) error) error) []item {
	t.Helper()
	var items []item
	err := d.db.View(func(tx *store.Tx) error {
		return export(tx, func(kind byte, body []byte) error {
			items = append(items, item{kind, slices.Clone(body)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// restore imports items into a new store as a restore does, and checks
// them whole for self.
func restore(t *testing.T, n *net, self identity.AccountPub, items []item) (*store.DB, error) {
	db := n.db()
	return db, db.Update(func(tx *store.Tx) error {
		for _, it := range items {
			if !IsBackupKind(it.kind) {
				t.Fatalf("an item of kind %d", it.kind)
			}
			if err := ImportBackup(tx, it.kind, it.body); err != nil {
				return err
			}
		}
		return FinishImport(tx, self)
	})
}

// TestGroupBackup: Alice's machine is gone and her account is restored
// from a backup onto a new device: it is in the groups she joined, with
// their history when the backup has messages, and holds the invitation
// she had not answered, not the group she left. It reads what members
// send from then on (asking them for their keys), and they read what it
// sends.
func TestGroupBackup(t *testing.T) {
	n := newNet(t)
	alice, bob, carol, dave := n.account("alice"), n.account("bob"), n.account("carol"), n.account("dave")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Friends")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub(), carol.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Info](t)(carol.svc.Join(carol.ctx(), g))
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("one"), nil))
	n.deliver()
	must[Message](t)(bob.svc.Send(bob.ctx(), g, []byte("two"), nil))
	n.deliver()
	pending := must[Info](t)(dave.svc.Create(dave.ctx(), "Pending")).ID
	must[Info](t)(dave.svc.Invite(dave.ctx(), pending, alice.pub()))
	left := must[Info](t)(bob.svc.Create(bob.ctx(), "Left")).ID
	must[Info](t)(bob.svc.Invite(bob.ctx(), left, alice.pub()))
	n.deliver()
	must[Info](t)(alice.svc.Leave(alice.ctx(), left))
	n.deliver()

	if items := backup(t, alice, false); slices.ContainsFunc(items, func(it item) bool { return it.kind == store.PortableGroupMessage }) {
		t.Fatal("a backup without messages holds a group's messages")
	}
	items := backup(t, alice, true)
	db, err := restore(t, n, alice.pub(), items)
	if err != nil {
		t.Fatal(err)
	}
	// The old device is gone; the restored one takes its place.
	n.mu.Lock()
	n.accts[alice.acct()] = nil
	n.mu.Unlock()
	restored := n.deviceOn("alice/restored", alice.key, db)

	all := must[[]Info](t)(restored.svc.Groups())
	status := map[group.ID]Status{}
	for _, in := range all {
		status[in.ID] = in.Status
	}
	if len(all) != 2 || status[g] != Joined || status[pending] != Invited {
		t.Fatalf("the restored device's groups: %v; want Friends joined and Pending an invitation", status)
	}
	if got := restored.memberNames(g); !slices.Equal(got, bob.memberNames(g)) {
		t.Fatalf("the restored device sees %q, Bob %q", got, bob.memberNames(g))
	}
	if got, want := restored.texts(g), []string{"alice: one", "bob: two"}; !slices.Equal(got, want) {
		t.Fatalf("the restored history: %q, want %q", got, want)
	}

	must[Message](t)(bob.svc.Send(bob.ctx(), g, []byte("three"), nil))
	n.settle()
	must[Message](t)(restored.svc.Send(restored.ctx(), g, []byte("four"), nil))
	n.settle()
	want := []string{"alice: one", "bob: two", "bob: three", "alice: four"}
	for _, d := range []*dev{restored, bob, carol} {
		if got := d.texts(g); !slices.Equal(got, want) {
			t.Fatalf("%s has %q, want %q", d, got, want)
		}
	}
	must[Info](t)(restored.svc.Join(restored.ctx(), pending))
	n.settle()
	if got := dave.memberNames(pending); !slices.Equal(got, []string{"dave", "alice"}) && !slices.Equal(got, []string{"alice", "dave"}) {
		t.Fatalf("Pending's members after the restored device joined: %q", got)
	}
	for _, r := range n.refused() {
		t.Fatalf("refused: %q", r)
	}
}

// TestGroupBackupHostile: a backup's group items are checked as strictly
// as the store reads them: a forged operation, a log missing its start, a
// group that does not name the account, an item of a group the backup
// does not hold, a group the account left and a mangled item are each
// store.ErrInvalid; an unknown kind store.ErrPortableKind.
func TestGroupBackupHostile(t *testing.T) {
	n := newNet(t)
	alice, bob := n.account("alice"), n.account("bob")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Friends")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub()))
	n.deliver()
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("one"), nil))
	items := backup(t, alice, true)
	if _, err := restore(t, n, alice.pub(), items); err != nil {
		t.Fatalf("the backup as made: %v", err)
	}
	of := func(kind byte) int {
		return slices.IndexFunc(items, func(it item) bool { return it.kind == kind })
	}
	changed := func(i int, body []byte) []item {
		c := slices.Clone(items)
		c[i].body = body
		return c
	}
	without := func(kind byte) []item {
		return slices.DeleteFunc(slices.Clone(items), func(it item) bool { return it.kind == kind })
	}
	create := slices.IndexFunc(items, func(it item) bool {
		o, err := group.Unmarshal(it.body)
		return it.kind == store.PortableGroupOp && err == nil && o.Kind == group.Create
	})
	op := items[of(store.PortableGroupOp)].body
	forged := slices.Clone(op)
	forged[len(forged)-1] ^= 1
	dec := wire.NewDecoder(items[of(store.PortableGroup)].body, errCorrupt)
	dec.Fixed(1, len(group.ID{}))
	r, err := unmarshalRec(dec.Bytes(2, 1, maxItemValue))
	if err != nil || dec.End() != nil {
		t.Fatalf("a group's record in the backup: %v %v", err, dec.End())
	}
	r.status = Left
	leftRec := groupItem(g, r.marshal())
	stranger, err := identity.GenerateAccountKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		self  identity.AccountPub
		items []item
	}{
		"a forged operation":          {alice.pub(), changed(of(store.PortableGroupOp), forged)},
		"a log without its start":     {alice.pub(), slices.Delete(slices.Clone(items), create, create+1)},
		"a group without the account": {stranger.Public(), items},
		"a group's record missing":    {alice.pub(), without(store.PortableGroup)},
		"a group the account left":    {alice.pub(), changed(of(store.PortableGroup), leftRec)},
		"a mangled item":              {alice.pub(), changed(of(store.PortableGroupMessage), items[of(store.PortableGroupMessage)].body[:5])},
	} {
		if _, err := restore(t, n, tc.self, tc.items); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want %v", name, err, store.ErrInvalid)
		}
	}
	db := n.db()
	err = db.Update(func(tx *store.Tx) error { return ImportBackup(tx, 99, []byte{1}) })
	if !errors.Is(err, store.ErrPortableKind) {
		t.Errorf("an item of an unknown kind: %v, want %v", err, store.ErrPortableKind)
	}

	// A link stores operations and messages as they come and checks the
	// groups when its history is over; when they do not check out,
	// ForgetAll drops everything of them, a few keys a transaction.
	db = n.db()
	for _, it := range without(store.PortableGroup) {
		if err := db.Update(func(tx *store.Tx) error { return ImportBackup(tx, it.kind, it.body) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Update(func(tx *store.Tx) error { return FinishImport(tx, alice.pub()) }); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a link's groups without their records: %v, want %v", err, store.ErrInvalid)
	}
	for i, more := 0, true; more; i++ {
		if err := db.Update(func(tx *store.Tx) (err error) { more, err = ForgetAll(tx, 2); return err }); err != nil || i == 1000 {
			t.Fatalf("ForgetAll, %d times: %v", i+1, err)
		}
	}
	var keys int
	err = db.View(func(tx *store.Tx) error {
		return in(tx).sp.Scan(pfxAll, nil, false, func([]byte, func() ([]byte, error)) (bool, error) { keys++; return true, nil })
	})
	if err != nil || keys != 0 {
		t.Fatalf("after ForgetAll the store holds %d keys of groups (%v)", keys, err)
	}
}

// TestGroupLinkHistory: a device being linked gets every group the account
// is in, whole, and the messages that arrived since the history's start.
func TestGroupLinkHistory(t *testing.T) {
	n := newNet(t)
	alice, bob := n.account("alice"), n.account("bob")
	g := must[Info](t)(alice.svc.Create(alice.ctx(), "Friends")).ID
	must[Info](t)(alice.svc.Invite(alice.ctx(), g, bob.pub()))
	n.deliver()
	must[Info](t)(bob.svc.Join(bob.ctx(), g))
	must[Message](t)(alice.svc.Send(alice.ctx(), g, []byte("old"), nil))
	n.deliver()
	since := time.Now()
	must[Message](t)(bob.svc.Send(bob.ctx(), g, []byte("recent"), nil))
	n.deliver()
	items := exported(t, alice, func(tx *store.Tx, fn func(byte, []byte) error) error { return ExportLinkHistory(tx, since, fn) })
	db, err := restore(t, n, alice.pub(), items)
	if err != nil {
		t.Fatal(err)
	}
	linked := n.deviceOn("alice/laptop", alice.key, db)
	if got, want := linked.texts(g), []string{"bob: recent"}; !slices.Equal(got, want) {
		t.Fatalf("the linked device's history: %q, want %q", got, want)
	}
	if got := linked.memberNames(g); !slices.Equal(got, alice.memberNames(g)) {
		t.Fatalf("the linked device sees %q, Alice's first %q", got, alice.memberNames(g))
	}
}
