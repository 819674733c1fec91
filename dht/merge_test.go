package dht

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
)

// oneDevice is a kind-1 record of k with the device named n and a bundle
// of its own bytes.
func oneDevice(tb testing.TB, k *identity.AccountKey, n string, now time.Time) *IdentityRecord {
	tb.Helper()
	r := testIdentity(tb, k, now)
	r.Devices = []identity.DeviceCert{testDevice(tb, k, n, now)}
	r.Prekeys = bytes.Repeat([]byte(n[:1]), 80)
	return r
}

// A device publishing the account's record keeps the devices another
// device of the account put in the network's record, with their bundles;
// its own entry is its own, a revoked device stays out, and a sibling's
// certificate close to its expiry is issued again (docs/DEVICES.md §0.4).
func TestMergeDevices(t *testing.T) {
	k := key(t, "alice")
	now := time.Unix(1_800_000_000, 0)
	laptop, phone := oneDevice(t, k, "laptop", now), oneDevice(t, k, "phone", now)

	t.Run("a second device", func(t *testing.T) {
		r := *phone
		if err := mergeDevices(k, &r, laptop, now); err != nil {
			t.Fatal(err)
		}
		if !r.MultiDevice() || len(r.Devices) != 2 || r.Prekeys != nil {
			t.Fatalf("merged record: kind 3 %v, %d devices, prekeys %d B; want kind 3 with 2 and none", r.MultiDevice(), len(r.Devices), len(r.Prekeys))
		}
		for i, c := range r.Devices {
			want := phone.Prekeys
			if c.DeviceID() == laptop.Devices[0].DeviceID() {
				want = laptop.Prekeys
			}
			if !bytes.Equal(r.Bundles[i], want) {
				t.Errorf("device %s carries another device's bundle", c.DeviceID())
			}
		}
		if err := r.checkOrder(); err != nil {
			t.Fatal(err)
		}
		if _, err := sealIdentity(k, &r); err != nil {
			t.Fatalf("the merged record does not seal: %v", err)
		}
		// The laptop publishes next: it keeps the phone, and its own
		// entry (a rotated bundle) replaces the network's.
		l := *laptop
		l.Prekeys = bytes.Repeat([]byte("L"), 80)
		if err := mergeDevices(k, &l, &r, now); err != nil {
			t.Fatal(err)
		}
		if len(l.Devices) != 2 {
			t.Fatalf("the laptop's record lists %d devices, want 2", len(l.Devices))
		}
		for i, c := range l.Devices {
			if c.DeviceID() == laptop.Devices[0].DeviceID() && !bytes.Equal(l.Bundles[i], bytes.Repeat([]byte("L"), 80)) {
				t.Error("the laptop's own rotated bundle lost to the network's older one")
			}
		}
	})

	t.Run("one device stays kind 1", func(t *testing.T) {
		r := *laptop
		if err := mergeDevices(k, &r, laptop, now); err != nil {
			t.Fatal(err)
		}
		if r.MultiDevice() || !bytes.Equal(r.Prekeys, laptop.Prekeys) {
			t.Fatal("an account on one device does not publish kind 1 as before")
		}
	})

	t.Run("revoked stays out", func(t *testing.T) {
		net := identityV2(t, k, now, 40, []string{"laptop", "phone"}, nil)
		r := *laptop
		r.Revoked = []identity.DeviceID{revokedID("phone")}
		if err := mergeDevices(k, &r, net, now); err != nil {
			t.Fatal(err)
		}
		if ids := r.deviceIDs(); len(ids) != 1 || ids[0] != revokedID("laptop") {
			t.Fatalf("devices %v, want the laptop alone", ids)
		}
		// The revocation in the network's record holds for a device that
		// publishes without knowing it.
		net2 := identityV2(t, k, now, 40, []string{"laptop"}, []string{"phone"})
		tab := oneDevice(t, k, "tablet", now)
		if err := mergeDevices(k, tab, net2, now); err != nil {
			t.Fatal(err)
		}
		if len(tab.Revoked) != 1 || !tab.MultiDevice() || len(tab.Devices) != 2 {
			t.Fatalf("tablet's record: %d revoked, %d devices; want the phone revoked and 2 devices", len(tab.Revoked), len(tab.Devices))
		}
	})

	t.Run("a restored device replaces the others", func(t *testing.T) {
		net := identityV2(t, k, now, 40, []string{"laptop", "phone"}, []string{"tablet"})
		r := *oneDevice(t, k, "desktop", now)
		r.revokeOthers(net)
		if err := mergeDevices(k, &r, net, now); err != nil {
			t.Fatal(err)
		}
		if ids := r.deviceIDs(); len(ids) != 1 || ids[0] != revokedID("desktop") {
			t.Fatalf("devices %v, want the desktop alone", ids)
		}
		if len(r.Revoked) != 3 || r.checkOrder() != nil {
			t.Fatalf("revoked %v, want laptop, phone and tablet in order", r.Revoked)
		}
		if _, err := sealIdentity(k, &r); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an expiring sibling certificate is renewed", func(t *testing.T) {
		old := oneDevice(t, k, "laptop", now)
		c, err := identity.IssueDeviceCert(k, old.Devices[0].PeerID, old.Devices[0].X25519, now.Add(-300*24*time.Hour), now.Add(10*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		old.Devices[0] = c
		r := *phone
		if err := mergeDevices(k, &r, old, now); err != nil {
			t.Fatal(err)
		}
		for _, d := range r.Devices {
			if d.DeviceID() == c.DeviceID() && d.Expires.Sub(now) < siblingCertTTL-time.Hour {
				t.Fatalf("the laptop's certificate expires in %v, not renewed", d.Expires.Sub(now))
			}
		}
	})

	t.Run("a ninth device", func(t *testing.T) {
		net := identityV2(t, k, now, 40, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, nil)
		r := *phone
		if err := mergeDevices(k, &r, net, now); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("merge into a full record: %v, want ErrTooLarge", err)
		}
	})
}

// Over a network: the phone, linked to the laptop's account, publishes a
// record with its own device alone; the record read back lists both, and
// the laptop's republish keeps the phone.
func TestPublishKeepsSiblings(t *testing.T) {
	tn, k, laptop, phone := laptopAndPhone(t)
	ctx := context.Background()
	pub, err := tn.nodes[1].PublishIdentity(ctx, k, phone)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.Devices) != 2 {
		t.Fatalf("the phone published %d devices, want the laptop's and its own", len(pub.Devices))
	}
	pub, err = tn.nodes[0].PublishIdentity(ctx, k, laptop)
	if err != nil {
		t.Fatal(err)
	}
	reader := tn.nodes[5]
	reader.cache.clear()
	got, err := reader.ResolveIdentity(ctx, k.Public().ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != pub.Seq || len(got.Devices) != 2 || !got.MultiDevice() {
		t.Fatalf("a reader resolves seq %d with %d devices (kind 3 %v), want seq %d with both devices", got.Seq, len(got.Devices), got.MultiDevice(), pub.Seq)
	}
}

// A record with fewer devices that reached most of the closest peers
// last (a device that published before it read the newest record) does
// not make the next publisher drop a device: every answer is merged, not
// only the newest.
func TestPublishMergesEveryAnswer(t *testing.T) {
	tn, k, laptop, phone := laptopAndPhone(t)
	ctx, now := context.Background(), tn.clock.Now()
	both, err := tn.nodes[1].PublishIdentity(ctx, k, phone)
	if err != nil || len(both.Devices) != 2 {
		t.Fatalf("the phone's record: %v, %v", both, err)
	}
	// The laptop's record alone, newer, on all closest peers but two.
	lone := *laptop
	lone.Seq = both.Seq + 1
	raw, err := sealIdentity(k, &lone)
	if err != nil {
		t.Fatal(err)
	}
	dkey := identityKey(k.Public().ID())
	for _, i := range tn.closestNodes(dkey, len(tn.nodes))[2:] {
		plant(t, tn.nodes[i], dkey, raw)
	}
	// A third device of the account publishes from a node that published
	// nothing before.
	tablet := oneDevice(t, k, "tablet", now)
	pub, err := tn.nodes[5].PublishIdentity(ctx, k, tablet)
	if err != nil {
		t.Fatal(err)
	}
	if ids := pub.deviceIDs(); len(ids) != 3 {
		t.Fatalf("the tablet published %d devices, want laptop, phone and itself", len(ids))
	}
}

// laptopAndPhone is a test network where Alice's laptop published her
// record, and her phone's record, not published yet.
func laptopAndPhone(t *testing.T) (tn *testNet, k *identity.AccountKey, laptop, phone *IdentityRecord) {
	t.Helper()
	tn = newTestNet(t, 12, netOpts{})
	k = key(t, "alice")
	now := tn.clock.Now()
	laptop, phone = oneDevice(t, k, "laptop", now), oneDevice(t, k, "phone", now)
	if _, err := tn.nodes[0].PublishIdentity(context.Background(), k, laptop); err != nil {
		t.Fatal(err)
	}
	return tn, k, laptop, phone
}

// The records a device presigns for keepers (Presign) carry the devices
// its publication merged, not its own alone: a keeper that publishes one
// while the device is away keeps every sibling in the record.
func TestPresignKeepsSiblings(t *testing.T) {
	tn, k, _, phone := laptopAndPhone(t)
	d := tn.nodes[1]
	d.SetOwned(k, phone, nil)
	if _, err := d.PublishIdentity(context.Background(), k, phone); err != nil {
		t.Fatal(err)
	}
	raw, err := d.Presign()
	if err != nil {
		t.Fatal(err)
	}
	req, err := OpenKeepRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, kr := range req.Records {
		r, err := openIdentity(kr.Raw)
		if err != nil {
			continue // a handle record
		}
		n++
		if len(r.Devices) != 2 {
			t.Fatalf("a presigned record (seq %d) lists %d devices, want the laptop's and the phone's", r.Seq, len(r.Devices))
		}
	}
	if n == 0 {
		t.Fatal("nothing presigned")
	}
}
