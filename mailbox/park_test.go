package mailbox

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// fileHost is a host with a files store and service: a sender's or a
// member's node, as far as files go.
type fileHost struct {
	h     host.Host
	store *files.Store
	svc   *files.Service
}

func newFileHost(t testing.TB, h host.Host) *fileHost {
	t.Helper()
	st, err := files.OpenStore(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := files.NewService(files.Config{Host: h, Store: st, AllowLimited: true})
	t.Cleanup(func() { svc.Close() })
	return &fileHost{h: h, store: st, svc: svc}
}

func (f *fileHost) add(t testing.TB, n int, seed byte) (files.Ref, []byte) {
	t.Helper()
	body := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(body)
	ref, err := f.store.Add(bytes.NewReader(body), "f.bin", "")
	if err != nil {
		t.Fatal(err)
	}
	return ref, body
}

// fetchParked fetches ref from the mailbox's parked files and reads it back.
func (f *fileHost) fetchParked(b *box, ref files.Ref) ([]byte, error) {
	f.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	if err := f.svc.FetchFrom(context.Background(), b.h.ID(), FileProtocol, ref, nil); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err := f.store.Read(&out, ref)
	return out.Bytes(), err
}

// parkRaw sends a park request for hash and size, then body (nil: none),
// and returns the first response's have and the last response (or the
// first, with no body); cut sends only the body and resets the stream.
func parkRaw(t *testing.T, from host.Host, b *box, token []byte, hash files.Hash, size int64, body []byte, cut bool) (int64, parkResponse) {
	t.Helper()
	st, err := p2p.Dial(context.Background(), from, b.h.ID(), ParkProtocol, true)
	if err != nil {
		t.Fatal(err)
	}
	// Done once the mailbox is done with the stream: a park that follows
	// at once must not find the file still arriving.
	defer waitParked(t, b, hash)
	defer st.Reset()
	if err := p2p.WriteFrame(st, parkRequest{token: token, hash: hash, size: size}.marshal()); err != nil {
		t.Fatal(err)
	}
	read := func() parkResponse {
		rb, err := p2p.ReadFrame(st, maxParkResponse)
		if err != nil {
			t.Fatal(err)
		}
		r, err := unmarshalParkResponse(rb)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := read()
	if body == nil || first.status != StatusOK {
		return first.have, first
	}
	if _, err := st.Write(body[first.have:]); err != nil {
		t.Fatal(err)
	}
	if cut {
		return first.have, first
	}
	return first.have, read()
}

// waitParked waits until the mailbox's handler of a park of hash is done.
func waitParked(t *testing.T, b *box, hash files.Hash) {
	t.Helper()
	for wait := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		b.srv.mu.Lock()
		done := !b.srv.arriving[hash]
		b.srv.mu.Unlock()
		if done {
			return
		}
		if time.Since(wait) > 30*time.Second {
			t.Fatal("the mailbox still receives a park of a stream closed 30 s ago")
		}
	}
}

// TestParkedFiles: a sender parks a file for an offline member; a park cut
// half way resumes where it stopped; only the member's devices fetch it,
// whole and matching its hash; a bad token, a file over the limit or the
// member's quota, and bytes that hash to another file are refused with
// nothing kept; a file that fills the member's quota makes room by
// deleting the member's oldest; parked files survive a restart and go
// when their time is up.
func TestParkedFiles(t *testing.T) {
	clk := &clock{t: time.Now()}
	b := newBox(t, func(c *Config) {
		c.FilesDir = filepath.Join(t.TempDir(), "parked")
		c.MaxFile = 8 << 20
		c.MaxFileBytes = 6 << 20
		c.FileExpiry = 7 * 24 * time.Hour
		c.Now = clk.now
	})
	bob := newMember(t, b)
	bob.register(t, b)
	carol := newMember(t, b)
	carol.register(t, b)
	senderHost := p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	senderHost.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	sender := newFileHost(t, senderHost)
	bobFiles := newFileHost(t, bob.h)
	carolFiles := newFileHost(t, carol.h)
	ctx := context.Background()
	tok := bob.token(b, clk.now())

	ref, body := sender.add(t, 3<<20, 1)
	if _, err := bobFiles.fetchParked(b, ref); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("a file not parked: %v, want not found", err)
	}
	if err := Park(ctx, senderHost, b.h.ID(), make([]byte, TokenSize), sender.store, ref.Hash); refusal(err) != StatusNotMember {
		t.Fatalf("a park for no member: %v", err)
	}

	// Cut half way, then resumed from there.
	f, size, err := sender.store.Sealed(ref.Hash)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := os.ReadFile(f.Name())
	f.Close()
	half := size / 2
	if have, r := parkRaw(t, senderHost, b, tok, ref.Hash, size, sealed[:half], true); have != 0 || r.status != StatusOK {
		t.Fatalf("the first park: have %d, %v", have, r.status)
	}
	// What arrived before the cut stays, and the next park starts there.
	if have, _ := parkRaw(t, senderHost, b, tok, ref.Hash, size, nil, false); have <= 0 || have > half || have != b.srv.fileStore.Partial(ref.Hash) {
		t.Fatalf("after a park cut at %d bytes the mailbox says it holds %d (%d on disk)", half, have, b.srv.fileStore.Partial(ref.Hash))
	}
	if _, err := bobFiles.fetchParked(b, ref); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("half a file fetched: %v, want not found", err)
	}
	if st := b.srv.ParkedFiles(); st != (Parked{Partial: 1}) {
		t.Fatalf("half a file parked counts as %+v, want one partial", st)
	}
	if err := Park(ctx, senderHost, b.h.ID(), tok, sender.store, ref.Hash); err != nil {
		t.Fatal(err)
	}
	if st := b.srv.ParkedFiles(); st != (Parked{Files: 1, Bytes: size}) {
		t.Fatalf("parked: %+v; want 1 file of %d bytes", st, size)
	}

	// Only the member's devices fetch it.
	if _, err := carolFiles.fetchParked(b, ref); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("another member fetched Bob's file: %v", err)
	}
	stranger := newFileHost(t, p2ptest.NewHost(t, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP }))
	if _, err := stranger.fetchParked(b, ref); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("a stranger fetched Bob's file: %v", err)
	}
	got, err := bobFiles.fetchParked(b, ref)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Bob fetched %d bytes (%v), want the %d sent", len(got), err, len(body))
	}
	// Parked again: held once.
	if err := Park(ctx, senderHost, b.h.ID(), tok, sender.store, ref.Hash); err != nil {
		t.Fatal(err)
	}
	if st := b.srv.ParkedFiles(); st != (Parked{Files: 1, Bytes: size}) {
		t.Fatalf("parked twice: %+v", st)
	}

	// Refusals keep nothing.
	big, _ := sender.add(t, 9<<20, 2)
	if err := Park(ctx, senderHost, b.h.ID(), tok, sender.store, big.Hash); refusal(err) != StatusTooLarge {
		t.Fatalf("a file over the limit: %v", err)
	}
	huge, _ := sender.add(t, 7<<20, 3)
	if err := Park(ctx, senderHost, b.h.ID(), tok, sender.store, huge.Hash); refusal(err) != StatusOverQuota {
		t.Fatalf("a file over Bob's quota: %v", err)
	}
	other, _ := sender.add(t, 1<<20, 4)
	if _, r := parkRaw(t, senderHost, b, tok, other.Hash, files.SealedSize(1<<20), sealed[:files.SealedSize(1<<20)], false); r.status != StatusMalformed {
		t.Fatalf("bytes of another file: %v %q", r.status, r.reason)
	}
	if st := b.srv.ParkedFiles(); st != (Parked{Files: 1, Bytes: size}) {
		t.Fatalf("after the refusals: %+v; want 1 file of %d bytes", st, size)
	}
	if left, _ := filepath.Glob(filepath.Join(b.cfg.FilesDir, "*")); len(left) != 1 {
		t.Fatalf("after the refusals the mailbox's files directory holds %q", left)
	}

	// Bob's quota full, the oldest goes to make room.
	clk.add(time.Minute)
	more, moreBody := sender.add(t, 4<<20, 5)
	if err := Park(ctx, senderHost, b.h.ID(), tok, sender.store, more.Hash); err != nil {
		t.Fatalf("a file that fills Bob's quota: %v", err)
	}
	if st := b.srv.ParkedFiles(); st != (Parked{Files: 1, Bytes: files.SealedSize(4 << 20)}) {
		t.Fatalf("after making room: %+v", st)
	}
	if left, _ := filepath.Glob(filepath.Join(b.cfg.FilesDir, "*")); len(left) != 1 {
		t.Fatalf("after making room the mailbox's files directory holds %q", left)
	}
	if err := bobFiles.store.Remove(ref.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := bobFiles.fetchParked(b, ref); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("the file that made room is still served: %v", err)
	}

	// A restart keeps it; its time up, it goes.
	b.close()
	b.open()
	bob.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
	if got, err := bobFiles.fetchParked(b, more); err != nil || !bytes.Equal(got, moreBody) {
		t.Fatalf("after the mailbox's restart Bob fetched %d bytes: %v", len(got), err)
	}
	clk.add(7*24*time.Hour + time.Minute)
	b.srv.sweepFiles()
	if st := b.srv.ParkedFiles(); st != (Parked{}) {
		t.Fatalf("parked after their time: %+v", st)
	}
	if left, _ := filepath.Glob(filepath.Join(b.cfg.FilesDir, "*")); len(left) != 0 {
		t.Fatalf("expired files left on disk: %q", left)
	}
}

// BenchmarkPark moves a 64 MiB file over loopback TCP: park is a sender
// parking it at a mailbox (Park: the request, the sealed bytes to the
// mailbox's disk, its hash, fsync, the rename), fetch the member fetching
// it from there (files' fetch on FileProtocol), and direct, in the same
// run, the member fetching it from the sender itself (files.Service.Fetch),
// the way the file goes when both are online. MB/s is what to compare.
//
//	go test ./mailbox -run '^$' -bench Park -benchtime 5x
func BenchmarkPark(b *testing.B) {
	bx := newBox(b, func(c *Config) { c.FilesDir = filepath.Join(b.TempDir(), "parked") })
	bob := newMember(b, bx)
	bob.register(b, bx)
	senderHost := p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
	senderHost.Peerstore().AddAddrs(bx.h.ID(), bx.h.Addrs(), time.Hour)
	sender := newFileHost(b, senderHost)
	bobFiles := newFileHost(b, bob.h)
	bob.h.Peerstore().AddAddrs(senderHost.ID(), senderHost.Addrs(), time.Hour)
	ref, _ := sender.add(b, 64<<20, 9)
	sealed := files.SealedSize(ref.Size)
	ctx := context.Background()
	tok := bob.token(bx, time.Now())
	acct := [32]byte(bob.acct.Public().Bytes())

	b.Run("park", func(b *testing.B) {
		b.SetBytes(sealed)
		for b.Loop() {
			b.StopTimer()
			bx.srv.unpark(acct, ref.Hash)
			b.StartTimer()
			if err := Park(ctx, senderHost, bx.h.ID(), tok, sender.store, ref.Hash); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fetch", func(b *testing.B) {
		b.SetBytes(sealed)
		for b.Loop() {
			b.StopTimer()
			bobFiles.store.Remove(ref.Hash)
			b.StartTimer()
			if err := bobFiles.svc.FetchFrom(ctx, bx.h.ID(), FileProtocol, ref, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(sealed)
		for b.Loop() {
			b.StopTimer()
			bobFiles.store.Remove(ref.Hash)
			b.StartTimer()
			if err := bobFiles.svc.Fetch(ctx, senderHost.ID(), ref, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
