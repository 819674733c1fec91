package msg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// rawPeer speaks the msg protocol by hand (no Service), to send what a
// hostile or broken peer would.
type rawPeer struct {
	*node
	self e2e.Identity
	set  e2e.SessionSet
}

func newRawPeer(t *testing.T, w *world) *rawPeer {
	n := newNode(t, w, nil)
	n.host = p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.PrivKey = n.key; c.Listen = p2ptest.ListenTCP })
	return &rawPeer{node: n, self: e2e.Identity{Signer: ed25519.NewKeyFromSeed(n.acct.Seed()), DH: n.dh}}
}

// frame seals text for b as a Deliver frame.
func (r *rawPeer) frame(t *testing.T, b *node, text string) (msgID, []byte) {
	t.Helper()
	return r.frameID(t, b, text, newMsgID())
}

// frameID is frame with the message id chosen by the caller.
func (r *rawPeer) frameID(t *testing.T, b *node, text string, id msgID) (msgID, []byte) {
	t.Helper()
	c := content{kind: contentText, seq: 1, sentAt: time.Now().UnixNano(), body: []byte(text)}
	f := r.seal(t, b, id, c)
	return id, f.marshal()
}

// seal encrypts c for b as the Deliver frame id.
func (r *rawPeer) seal(t *testing.T, b *node, id msgID, c content) deliverFrame {
	t.Helper()
	if r.set.Active() == nil {
		bundle, err := e2e.UnmarshalBundle(b.bundle)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.set.Initiate(r.self, b.acct.Public().Bytes(), bundle, nil); err != nil {
			t.Fatal(err)
		}
	}
	kind := uint64(kindRatchet)
	if a := r.set.Active(); a.Initiator() && !a.Confirmed() {
		kind = kindInitial
	}
	if c.kind != contentText {
		kind = kindReceipt // a control frame
	}
	ct, err := r.set.Encrypt(c.marshal(), messageAD(id, kind))
	if err != nil {
		t.Fatal(err)
	}
	return deliverFrame{id: id, sender: r.acct.Public().Bytes(), cert: r.cert.Marshal(), kind: kind, ciphertext: ct}
}

// sealBytes is seal, encoded.
func (r *rawPeer) sealBytes(t *testing.T, b *node, id msgID, c content) []byte {
	t.Helper()
	f := r.seal(t, b, id, c)
	return f.marshal()
}

func (r *rawPeer) open(t *testing.T, b *node) network.Stream {
	t.Helper()
	return r.openProto(t, b, ProtocolMsg)
}

// openProto opens a raw stream of proto from r to b.
func (r *rawPeer) openProto(t *testing.T, b *node, proto protocol.ID) network.Stream {
	t.Helper()
	r.host.Peerstore().AddAddrs(b.host.ID(), b.host.Addrs(), time.Hour)
	st, err := r.host.NewStream(context.Background(), b.host.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	st.SetDeadline(time.Now().Add(20 * time.Second))
	return st
}

func exchange(t *testing.T, st network.Stream, frame []byte) ackFrame {
	t.Helper()
	if err := p2p.WriteFrame(st, frame); err != nil {
		t.Fatal(err)
	}
	b, err := p2p.ReadFrame(st, ackMax11)
	if err != nil {
		t.Fatalf("read ack: %v", err)
	}
	a, err := unmarshalAck(b, v11)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTamperedRefusedReplayDuplicate(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, nil)
	b.start()
	r := newRawPeer(t, w)
	st := r.open(t, b)

	id, good := r.frame(t, b, "genuine words")
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0x01 // last byte of the ciphertext's tag
	a := exchange(t, st, bad)
	if a.id != id || a.status != statusRefused || !strings.HasPrefix(a.reason, "session:") {
		t.Fatalf("ack for tampered frame = %+v, want refused with a session reason", a)
	}
	if got := b.messages(r.id()); len(got) != 0 {
		t.Fatalf("tampered message stored: %v", got)
	}
	if seen, _ := b.db.Seen(string(r.id()), id.String()); seen {
		t.Fatal("tampered frame marked its id seen: the genuine one would be dropped")
	}
	if _, err := b.db.Conversation(string(r.id())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conversation created by a tampered frame: %v", err)
	}

	// The same stream still works: the genuine frame is stored.
	if a := exchange(t, st, good); a.status != statusStored {
		t.Fatalf("genuine frame after a tampered one: %+v", a)
	}
	// Replayed on the same stream and on a new one: duplicate, shown once.
	if a := exchange(t, st, good); a.status != statusDuplicate {
		t.Fatalf("replayed frame: %+v, want duplicate", a)
	}
	st2 := r.open(t, b)
	if a := exchange(t, st2, good); a.status != statusDuplicate {
		t.Fatalf("replayed frame on a new stream: %+v, want duplicate", a)
	}
	if got := b.incoming(r.id()); len(got) != 1 || string(got[0].Body) != "genuine words" {
		t.Fatalf("b holds %v, want the genuine message once", got)
	}
	if ev := b.eventsOf(EventMessage); len(ev) != 1 {
		t.Fatalf("%d message events, want 1", len(ev))
	}

	// The same ciphertext under a new id fails: the id is bound into it.
	f, err := unmarshalDeliver(good, 1<<20, v11)
	if err != nil {
		t.Fatal(err)
	}
	f.id = newMsgID()
	if a := exchange(t, st, f.marshal()); a.status != statusRefused {
		t.Fatalf("ciphertext replayed under a new id: %+v, want refused", a)
	}

	// A certificate for another peer is refused.
	other := newNode(t, w, nil)
	f2 := deliverFrame{id: newMsgID(), sender: other.acct.Public().Bytes(), cert: other.cert.Marshal(), kind: kindRatchet, ciphertext: f.ciphertext}
	if a := exchange(t, st, f2.marshal()); a.status != statusRefused || a.reason != "certificate is for another peer" {
		t.Fatalf("frame with another peer's certificate: %+v", a)
	}
	if got := b.incoming(r.id()); len(got) != 1 {
		t.Fatalf("b holds %d messages, want 1", len(got))
	}
}

// TestOwnMessageIDRefused: a peer that sends a message under the id of a
// message we sent them is refused, and our message stays as it was.
func TestOwnMessageIDRefused(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, nil)
	b.start()
	r := newRawPeer(t, w)
	mine := b.send(r.node, "mine, not yours")
	id, err := parseMsgID(mine.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := r.open(t, b)
	_, f := r.frameID(t, b, "overwrite attempt", id)
	if a := exchange(t, st, f); a.id != id || a.status != statusRefused || a.reason != "message id already in use" {
		t.Fatalf("ack for a frame reusing our id = %+v, want refused: message id already in use", a)
	}
	got, err := b.db.Message(string(r.id()), mine.ID)
	if err != nil || string(got.Body) != "mine, not yours" || got.Direction != DirOut {
		t.Fatalf("our message after the attempt = %q %s, %v", got.Body, got.Direction, err)
	}
	if in := b.incoming(r.id()); len(in) != 0 {
		t.Fatalf("b stored %d incoming messages, want none", len(in))
	}
	if ev := b.eventsOf(EventMessage); len(ev) != 0 {
		t.Fatalf("%d message events, want none", len(ev))
	}
	// The session is intact: a genuine message on the same stream is stored.
	if _, f := r.frame(t, b, "genuine"); exchange(t, st, f).status != statusStored {
		t.Fatal("genuine frame after the refused one was not stored")
	}
	if in := b.incoming(r.id()); len(in) != 1 || string(in[0].Body) != "genuine" {
		t.Fatalf("b holds %v, want the genuine message", in)
	}
}

func TestGarbageAndOversizedFramesReset(t *testing.T) {
	a, b := pair(t, nil)
	w := a.w
	r := newRawPeer(t, w)

	expectReset := func(st network.Stream, what string, code network.StreamErrorCode) {
		t.Helper()
		_, err := p2p.ReadFrame(st, ackMax11)
		got, ok := p2p.CodeOf(err)
		if !ok || got != code {
			t.Fatalf("%s: read = %v, want a reset with %s", what, err, p2p.CodeName(code))
		}
	}
	st := r.open(t, b)
	p2p.WriteFrame(st, []byte("this is not a protobuf message"))
	expectReset(st, "garbage frame", p2p.CodeBadRequest)

	st = r.open(t, b)
	var hdr [10]byte
	n := binary.PutUvarint(hdr[:], uint64(maxDeliverFrame(DefaultMaxMessage)+1))
	st.Write(hdr[:n])
	st.Write(make([]byte, 1024))
	expectReset(st, "oversized frame", p2p.CodeTooLarge)

	st = r.open(t, b)
	st.Write([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80})
	expectReset(st, "overlong length", p2p.CodeBadRequest)

	// The host keeps serving.
	m := a.send(b, "still here")
	check.Until(t, 10*time.Second, "delivery after garbage", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
}

func TestFloodRateLimited(t *testing.T) {
	const rate, burst = 200, 50
	a, b := pair(t, func(c *Config) { c.PeerRate, c.PeerBurst = rate, burst })
	r := newRawPeer(t, a.w)
	st := r.open(t, b)
	_, f := r.frame(t, b, strings.Repeat("flood ", 200))
	if a := exchange(t, st, f); a.status != statusStored {
		t.Fatalf("first frame: %+v", a)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var acks atomic.Int64
	var wg sync.WaitGroup
	const flood = 1500 * time.Millisecond
	start := time.Now()
	st.SetDeadline(start.Add(flood))
	wg.Go(func() {
		br := bufio.NewReader(st)
		for {
			if _, err := p2p.ReadFrame(br, ackMax11); err != nil {
				return
			}
			acks.Add(1)
		}
	})
	wg.Go(func() {
		// Write as fast as the stream takes it: 40 MiB of duplicates.
		bw := bufio.NewWriterSize(st, 1<<20)
		for range (40 << 20) / len(f) {
			if p2p.WriteFrame(bw, f) != nil {
				return
			}
		}
		bw.Flush()
	})
	// Another peer is still served while the flood runs.
	m := a.send(b, "normal traffic")
	check.Until(t, 5*time.Second, "a's message during the flood", func() bool { return a.state(b.id(), m.ID) == StateDelivered })

	time.Sleep(time.Until(start.Add(flood * 8 / 10)))
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	wg.Wait()
	elapsed := time.Since(start)

	limit := int64(rate*elapsed.Seconds()) + burst + maxBatch
	t.Logf("%d frames acked in %v (limit %d); heap %d -> %d MiB", acks.Load(), elapsed, limit, before.HeapInuse>>20, during.HeapInuse>>20)
	if got := acks.Load(); got > limit || got < rate/2 {
		t.Fatalf("%d frames acked in %v; want at most %d (rate %d/s, burst %d) and some", got, elapsed, limit, rate, burst)
	}
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 48<<20 {
		t.Fatalf("heap grew by %d MiB during a 40 MiB flood", grew>>20)
	}
	if got := b.incoming(r.id()); len(got) != 1 {
		t.Fatalf("flood of duplicates stored %d messages, want 1", len(got))
	}
}

func TestDeliveryOverCircuitRelay(t *testing.T) {
	w := newWorld()
	relayHost := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Public = true; c.Listen = p2ptest.ListenTCP })
	relayInfo := peer.AddrInfo{ID: relayHost.ID(), Addrs: relayHost.Addrs()}

	a := newNode(t, w, nil)
	b := newNode(t, w, nil)
	b.hostMod = func(c *p2p.HostConfig) { c.Listen = []string{} } // reachable only through the relay
	a.start()
	b.start()
	if len(b.host.Addrs()) != 0 {
		t.Fatalf("b listens on %v", b.host.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.host.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b.host, relayInfo); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	w.mu.Lock()
	b.relays = []peer.AddrInfo{relayInfo}
	w.mu.Unlock()

	m := a.send(b, "through the relay")
	check.Until(t, 15*time.Second, "relayed delivery", func() bool { return a.state(b.id(), m.ID) == StateDelivered })
	if got := b.incoming(a.id()); len(got) != 1 || string(got[0].Body) != "through the relay" {
		t.Fatalf("b holds %v", got)
	}
	conns := a.host.Network().ConnsToPeer(b.host.ID())
	if len(conns) == 0 {
		t.Fatal("no connection from a to b")
	}
	for _, c := range conns {
		if !c.Stat().Limited || !strings.Contains(c.RemoteMultiaddr().String(), "p2p-circuit") {
			t.Fatalf("connection %s is not relayed", c.RemoteMultiaddr())
		}
	}
}

// sniffer is a recipient device without a Service: it records every byte
// the sender writes on ProtocolMsg, acks each Deliver as stored, and can
// decrypt with its own prekeys to prove the bytes were the message.
type sniffer struct {
	*node
	self e2e.Identity
	st   *e2e.PrekeyState
	mu   sync.Mutex
	wire []byte
	dels []deliverFrame
}

func newSniffer(t *testing.T, w *world) *sniffer {
	n := newNode(t, w, nil)
	n.host = p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.PrivKey = n.key; c.Listen = p2ptest.ListenTCP })
	s := &sniffer{node: n, self: e2e.Identity{Signer: ed25519.NewKeyFromSeed(n.acct.Seed()), DH: n.dh}}
	st, err := e2e.NewPrekeyState(s.self, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.st = st
	if n.bundle, err = e2e.MarshalBundle(st.Bundle()); err != nil {
		t.Fatal(err)
	}
	n.host.SetStreamHandler(ProtocolMsg, func(st network.Stream) {
		defer st.Close()
		rd := io.TeeReader(st, writerFunc(func(p []byte) { s.mu.Lock(); s.wire = append(s.wire, p...); s.mu.Unlock() }))
		for {
			b, err := p2p.ReadFrame(rd, 1<<20)
			if err != nil {
				return
			}
			f, err := unmarshalDeliver(b, 1<<20, v11)
			if err != nil {
				st.Reset()
				return
			}
			s.mu.Lock()
			s.dels = append(s.dels, f)
			s.mu.Unlock()
			a := ackFrame{id: f.id, status: statusStored}
			p2p.WriteFrame(st, a.marshal())
		}
	})
	return s
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestNoPlaintextOnWireOrDisk(t *testing.T) {
	const canary = "ZEBRA-canary-plaintext-31337"
	w := newWorld()
	a, b := newNode(t, w, nil), newNode(t, w, nil)
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	sn := newSniffer(t, w)
	a.host.Peerstore().AddAddrs(sn.host.ID(), sn.host.Addrs(), time.Hour)

	// On the wire: what the sender writes on the msg stream.
	m := a.send(sn.node, canary)
	check.Until(t, 10*time.Second, "the sniffer's ack", func() bool { return a.state(sn.id(), m.ID) == StateDelivered })
	sn.mu.Lock()
	wire, dels := bytes.Clone(sn.wire), sn.dels
	sn.mu.Unlock()
	if len(dels) != 1 {
		t.Fatalf("sniffer saw %d Deliver frames, want 1", len(dels))
	}
	if bytes.Contains(wire, []byte(canary)) {
		t.Fatal("plaintext on the wire")
	}
	// The bytes were the message: the recipient's keys open them.
	var set e2e.SessionSet
	pt, _, err := set.Decrypt(sn.self, sn.st, a.acct.Public().Bytes(), dels[0].ciphertext, messageAD(dels[0].id, dels[0].kind), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := unmarshalContent(pt, DefaultMaxMessage); err != nil || string(c.body) != canary {
		t.Fatalf("sniffed frame decrypts to %q, %v", c.body, err)
	}

	// On disk: a real delivery, then both stores closed and searched.
	m2 := a.send(b, canary)
	check.Until(t, 10*time.Second, "delivery", func() bool { return a.state(b.id(), m2.ID) == StateDelivered })
	if got := b.incoming(a.id()); len(got) != 1 || string(got[0].Body) != canary {
		t.Fatalf("b holds %v", got)
	}
	a.stop()
	b.stop()
	files := 0
	for _, dir := range []string{a.dir, b.dir} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if bytes.Contains(data, []byte(canary)) {
				t.Errorf("plaintext in %s", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 4 {
		t.Fatalf("searched only %d files", files)
	}
}

// TestForeignSessionRefused: a device's certificate names its X25519 identity key; a first
// message whose session was started with another key (signed by the same account, as any
// device of it could) is refused, nothing is stored, and the right key then works.
func TestForeignSessionRefused(t *testing.T) {
	w := newWorld()
	b := newNode(t, w, nil)
	b.start()
	r := newRawPeer(t, w)
	own := r.self.DH
	other, err := e2e.GenerateDHKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.self.DH = other
	st := r.open(t, b)
	id, f := r.frame(t, b, "from a key the certificate does not name")
	if a := exchange(t, st, f); a.id != id || a.status != statusRefused || a.reason != reasonForeignSession {
		t.Fatalf("ack = %+v, want refused: %s", a, reasonForeignSession)
	}
	if seen, _ := b.db.Seen(string(r.id()), id.String()); seen {
		t.Fatal("refused frame marked its id seen")
	}
	if _, err := b.db.Conversation(string(r.id())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conversation created by a refused frame: %v", err)
	}
	r.self.DH, r.set = own, e2e.SessionSet{}
	if _, f := r.frame(t, b, "genuine"); exchange(t, st, f).status != statusStored {
		t.Fatal("a first message from the certified key was not stored")
	}
	if in := b.incoming(r.id()); len(in) != 1 || string(in[0].Body) != "genuine" {
		t.Fatalf("b holds %v, want the genuine message alone", in)
	}
}

// TestSiblingFrames: another device of this account may send copies of
// the messages it sent, nothing else; nobody else may send a copy. Each
// refusal stores nothing.
func TestSiblingFrames(t *testing.T) {
	w := newWorld()
	a, bob := newNode(t, w, nil), newNode(t, w, nil)
	a.start()
	bob.start()
	n := linkDevice(t, a, nil)
	n.host = p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.PrivKey = n.key; c.Listen = p2ptest.ListenTCP })
	sib := &rawPeer{node: n, self: e2e.Identity{Signer: ed25519.NewKeyFromSeed(n.acct.Seed()), DH: n.dh}}
	copyTo := func(to identity.AccountID, text string) content {
		return content{kind: contentCopy, seq: 1, sentAt: time.Now().UnixNano(), body: []byte(text), to: to.Hash()}
	}
	st := sib.open(t, a)

	_, f := sib.frame(t, a, "a text from my own account")
	if ack := exchange(t, st, f); ack.status != statusRefused || ack.reason != reasonNotCopy {
		t.Fatalf("a sibling's text: ack %+v, want refused: %s", ack, reasonNotCopy)
	}
	f = sib.sealBytes(t, a, newMsgID(), copyTo(a.id(), "to myself"))
	if ack := exchange(t, st, f); ack.status != statusRefused || ack.reason != "malformed content" {
		t.Fatalf("a copy of a message to this account: ack %+v, want refused", ack)
	}
	if cs, err := a.db.Conversations(); err != nil || len(cs) != 0 {
		t.Fatalf("conversations after the refusals: %+v, %v", cs, err)
	}

	id := newMsgID()
	f = sib.sealBytes(t, a, id, copyTo(bob.id(), "to Bob"))
	if ack := exchange(t, st, f); ack.status != statusStored {
		t.Fatalf("a copy: ack %+v, want stored", ack)
	}
	got := a.messages(bob.id())
	if len(got) != 1 || got[0].ID != id.String() || got[0].Direction != DirOut || got[0].State != StateSent || string(got[0].Body) != "to Bob" {
		t.Fatalf("conversation with Bob = %+v, want the copy, sent", got)
	}
	if ack := exchange(t, st, f); ack.status != statusDuplicate {
		t.Fatalf("the copy again: ack %+v, want duplicate", ack)
	}
	again := sib.sealBytes(t, a, id, copyTo(bob.id(), "to Bob"))
	if ack := exchange(t, st, again); ack.status != statusDuplicate {
		t.Fatalf("the copy sealed again: ack %+v, want duplicate", ack)
	}
	if got := a.messages(bob.id()); len(got) != 1 {
		t.Fatalf("conversation with Bob = %+v, want the copy once", got)
	}

	// Anyone else's copy is refused: it would put words in this account's
	// mouth.
	other := newRawPeer(t, w)
	ost := other.open(t, a)
	f = other.sealBytes(t, a, newMsgID(), copyTo(bob.id(), "forged"))
	if ack := exchange(t, ost, f); ack.status != statusRefused || ack.reason != reasonSiblingOnly {
		t.Fatalf("another account's copy: ack %+v, want refused: %s", ack, reasonSiblingOnly)
	}
	if got := a.messages(bob.id()); len(got) != 1 {
		t.Fatalf("conversation with Bob = %+v after a forged copy", got)
	}
	f = other.sealBytes(t, a, newMsgID(), content{kind: contentRead, ids: []msgID{id}, to: bob.id().Hash()})
	if ack := exchange(t, ost, f); ack.status != statusRefused || ack.reason != reasonSiblingOnly {
		t.Fatalf("another account's read: ack %+v, want refused: %s", ack, reasonSiblingOnly)
	}
	if got := a.messages(other.id()); len(got) != 0 {
		t.Fatalf("the forged copy's sender has a conversation: %+v", got)
	}

	// A sibling's read of a message this device does not have, or of one
	// it sent, changes nothing.
	f = sib.sealBytes(t, a, newMsgID(), content{kind: contentRead, ids: []msgID{newMsgID(), id}, to: bob.id().Hash()})
	if ack := exchange(t, st, f); ack.status != statusStored {
		t.Fatalf("a sibling's read: ack %+v, want stored", ack)
	}
	if got := a.messages(bob.id()); len(got) != 1 || got[0].State != StateSent {
		t.Fatalf("conversation with Bob = %+v after a read of an outgoing message", got)
	}

	// No call signals between siblings yet: the lane is reset.
	sst := sib.openProto(t, a, ProtocolSignal)
	sig := sib.sealBytes(t, a, newMsgID(), content{kind: contentSignal, body: []byte("ring")})
	if err := p2p.WriteFrame(sst, sig); err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.ReadFrame(sst, ackMax11); err == nil {
		t.Fatal("a sibling's signal was answered")
	}
}
