package dht

import (
	"bytes"
	"testing"
	"time"

	"github.com/callsign/callsign/identity"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// fuzzSeeds returns golden encodings to start the fuzzers from.
func fuzzSeeds(f *testing.F) (handle, ident []byte) {
	k, h := goldenHandle(f)
	handle = mustSealHandle(f, k, h)
	k, id := goldenIdentity(f)
	ident = mustSealIdentity(f, k, id)
	return handle, ident
}

// fuzzSeedV2 is the golden kind-3 identity record.
func fuzzSeedV2(f *testing.F) []byte {
	k, id := goldenIdentityV2(f)
	return mustSealIdentity(f, k, id)
}

func FuzzEnvelope(f *testing.F) {
	h, i := fuzzSeeds(f)
	f.Add(h)
	f.Add(i)
	f.Add(fuzzSeedV2(f))
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := unmarshalEnvelope(b, MaxIdentityRecordSize)
		if err != nil {
			return
		}
		if len(e.Payload)+len(e.Signature) > len(b) {
			t.Fatal("decoded more than the input")
		}
		if !bytes.Equal(e.marshal(), b) {
			t.Fatal("envelope has a second encoding")
		}
	})
}

func FuzzHandlePayload(f *testing.F) {
	h, _ := fuzzSeeds(f)
	e, _ := unmarshalEnvelope(h, MaxHandleRecordSize)
	f.Add(e.Payload)
	f.Add(append(bytes.Clone(e.Payload), 0x88, 0x01, 0x05)) // an addition: refused
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := unmarshalHandle(b)
		if err != nil {
			return
		}
		if !bytes.Equal(w.marshal(), b) {
			t.Fatalf("handle payload has a second encoding: %x", b)
		}
		if r, err := w.fromWire(); err == nil {
			if w2, err := r.toWire(); err != nil || !bytes.Equal(w2.marshal(), b) {
				t.Fatalf("domain round trip changed the payload: %v", err)
			}
		}
	})
}

// FuzzIdentityPayload: both kinds of identity payload (1 and 3) decode
// within their caps, have one encoding, and convert to the domain type and
// back to the same bytes.
func FuzzIdentityPayload(f *testing.F) {
	_, i := fuzzSeeds(f)
	for _, raw := range [][]byte{i, fuzzSeedV2(f)} {
		e, _ := unmarshalEnvelope(raw, MaxIdentityRecordSize)
		f.Add(e.Payload)
		f.Add(append(bytes.Clone(e.Payload), 0x88, 0x01, 0x05)) // an addition: refused
		p := bytes.Clone(e.Payload)
		p[1] = byte(kindNewest + 1) // a newer kind: refused
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := unmarshalIdentity(b)
		if err != nil {
			return
		}
		if len(w.Devices) > maxDevices || len(w.Entries) > maxDevices || len(w.Revoked) > maxRevoked ||
			len(w.Handles) > maxHandles || len(w.Attestations) > maxAttestations ||
			len(w.Mailboxes) > maxPeerAddrs || len(w.Relays) > maxPeerAddrs {
			t.Fatal("cap exceeded")
		}
		if w.Kind == kindIdentityV2 && (w.Devices != nil || w.Prekeys != nil) ||
			w.Kind == kindIdentity && (w.Entries != nil || w.Revoked != nil) {
			t.Fatalf("kind %d payload with the other kind's fields 6 or 7", w.Kind)
		}
		if !bytes.Equal(w.marshal(), b) {
			t.Fatalf("identity payload has a second encoding: %x", b)
		}
		if r, err := w.fromWire(); err == nil {
			if r.MultiDevice() != (w.Kind == kindIdentityV2) {
				t.Fatalf("kind %d read as MultiDevice %v", w.Kind, r.MultiDevice())
			}
			if w2, err := r.toWire(); err != nil || !bytes.Equal(w2.marshal(), b) {
				t.Fatalf("domain round trip changed the payload: %v", err)
			}
		}
	})
}

// FuzzValidate feeds arbitrary values to both validators as a storing node
// would see them.
func FuzzValidate(f *testing.F) {
	h, i := fuzzSeeds(f)
	i3 := fuzzSeedV2(f)
	k := key(f, "golden")
	_, hkey, _, _ := parseName("golden")
	ikey := identityKey(k.Public().ID())
	f.Add(hkey, h)
	f.Add(ikey, i)
	f.Add(ikey, i3)
	c := newChecker(func() time.Time { return goldenNow }, identity.TestPoW)
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		if r, err := c.handle(key, b, goldenNow, 0); err == nil {
			if r.Owner.IsZero() || !r.Expires.After(goldenNow) {
				t.Fatal("accepted a record without owner or expired")
			}
		}
		if r, err := c.identity(key, b, goldenNow, 0); err == nil {
			if len(r.Devices) == 0 || !r.Expires.After(goldenNow) {
				t.Fatal("accepted an identity without device or expired")
			}
		}
		_, _ = handleValidator{c: c}.Select(key, [][]byte{b, h})
		_, _ = identityValidator{c: c}.Select(key, [][]byte{b, i, i3})
	})
}

// FuzzKadAnswer feeds a GET_VALUE answer as read from a stream to the
// sender's reader and the answer checks.
func FuzzKadAnswer(f *testing.F) {
	_, ident := fuzzSeeds(f)
	const key = "/csid/fuzz"
	_, pk, err := libp2pcrypto.GenerateEd25519Key(bytes.NewReader(make([]byte, 64)))
	if err != nil {
		f.Fatal(err)
	}
	pid, err := peer.IDFromPublicKey(pk)
	if err != nil {
		f.Fatal(err)
	}
	addr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")
	m := pb.NewMessage(pb.Message_GET_VALUE, []byte(key), 0)
	m.Record = &recpb.Record{Key: []byte(key), Value: ident}
	m.CloserPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: pid, Addrs: []multiaddr.Multiaddr{addr}}})
	var golden bytes.Buffer
	if err := writeMsg(&golden, m); err != nil {
		f.Fatal(err)
	}
	f.Add(golden.Bytes())
	m.Record = nil
	golden.Reset()
	_ = writeMsg(&golden, m)
	f.Add(golden.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := readMsg(bytes.NewReader(b), maxResponseSize)
		if err != nil {
			return
		}
		value, closer, err := parseGetValue(resp, key)
		if err != nil {
			return
		}
		if len(value) > MaxIdentityRecordSize || len(closer) > maxCloserPeers {
			t.Fatalf("answer beyond its caps: %d bytes, %d peers", len(value), len(closer))
		}
		if len(value) > len(b) {
			t.Fatal("value larger than the input")
		}
	})
}
