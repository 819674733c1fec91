package dht

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"

	"github.com/callsign/callsign/identity"
)

// TestRequestsAndRecordsCounted: a serving node counts each request it
// answers by kind, and each it refuses (a record that does not validate,
// a provider request, a message too large to read); its records held
// count the identity and handle records stored for the network.
func TestRequestsAndRecordsCounted(t *testing.T) {
	tn := newTestNet(t, 1, netOpts{tcp: true})
	d, hub := tn.nodes[0], tn.hosts[0].ID()
	p := kadPeer(t, tn.hosts[0])
	ctx := context.Background()

	count := func() map[string][2]uint64 {
		out := map[string][2]uint64{}
		for _, r := range d.Requests() {
			out[r.Kind] = [2]uint64{r.Served, r.Refused}
		}
		return out
	}
	if got := count(); len(got) != 7 || got["get_value"] != [2]uint64{} || got["unknown"] != [2]uint64{} {
		t.Fatalf("before any request: %v", got)
	}
	if r, err := d.Records(ctx); err != nil || r != (Records{}) {
		t.Fatalf("records before any put: %+v, %v", r, err)
	}

	now := tn.clock.Now()
	alice := key(t, "alice")
	idRaw, err := sealIdentity(alice, testIdentity(t, alice, now))
	if err != nil {
		t.Fatal(err)
	}
	_, hRaw := handleRec(t, alice, "alice", 1, now, now, 72*time.Hour)
	put := func(k string, v []byte) (*pb.Message, error) {
		m := pb.NewMessage(pb.Message_PUT_VALUE, []byte(k), 0)
		m.Record = &recpb.Record{Key: []byte(k), Value: v}
		return sendRaw(t, p, hub, framed(m))
	}
	hkey := handlePrefix + identity.HandleKey("alice")
	for _, tc := range []struct {
		what string
		send func() (*pb.Message, error)
		ok   bool
	}{
		{"ping", func() (*pb.Message, error) { return sendRaw(t, p, hub, framed(pb.NewMessage(pb.Message_PING, nil, 0))) }, true},
		{"find node", func() (*pb.Message, error) {
			return sendRaw(t, p, hub, framed(pb.NewMessage(pb.Message_FIND_NODE, []byte(hub), 0)))
		}, true},
		{"identity put", func() (*pb.Message, error) { return put(identityKey(alice.Public().ID()), idRaw) }, true},
		{"handle put", func() (*pb.Message, error) { return put(hkey, hRaw) }, true},
		{"get", func() (*pb.Message, error) {
			return sendRaw(t, p, hub, framed(pb.NewMessage(pb.Message_GET_VALUE, []byte(hkey), 0)))
		}, true},
		{"forged put", func() (*pb.Message, error) { return put(identityKey(alice.Public().ID()), []byte("forged")) }, false},
		{"providers", func() (*pb.Message, error) {
			return sendRaw(t, p, hub, framed(pb.NewMessage(pb.Message_GET_PROVIDERS, []byte(hkey), 0)))
		}, false},
		{"4 MiB", func() (*pb.Message, error) { return sendRaw(t, p, hub, binary.AppendUvarint(nil, 4<<20)) }, false},
	} {
		if _, err := tc.send(); (err == nil) != tc.ok {
			t.Fatalf("%s: answered %v (err %v), want %v", tc.what, err == nil, err, tc.ok)
		}
	}
	want := map[string][2]uint64{
		"put_value": {2, 1}, "get_value": {1, 0}, "find_node": {1, 0}, "ping": {1, 0},
		"get_providers": {0, 1}, "add_provider": {0, 0}, "unknown": {0, 1},
	}
	// The count follows the answer or the reset the client saw; poll for it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got, same := count(), true
		for k, v := range want {
			same = same && got[k] == v
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests counted (served, refused): %v\nwant %v", got, want)
		}
	}
	if r, err := d.Records(ctx); err != nil || r != (Records{Identities: 1, Handles: 1}) {
		t.Fatalf("records after an identity and a handle were put: %+v, %v", r, err)
	}
}
