package files

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func TestSealOpen(t *testing.T) {
	key := &[KeySize]byte{1, 2, 3}
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 5} {
		pt := randomBytes(n, uint64(n))
		var sealed bytes.Buffer
		size, h, err := Seal(&sealed, bytes.NewReader(pt), key, -1)
		if err != nil {
			t.Fatal(err)
		}
		if size != int64(sealed.Len()) || size != SealedSize(int64(n)) || PlainSize(size) != int64(n) {
			t.Errorf("%d bytes: sealed %d, buffer %d, SealedSize %d, PlainSize back %d", n, size, sealed.Len(), SealedSize(int64(n)), PlainSize(size))
		}
		if h2, _ := hashOf(bytes.NewReader(sealed.Bytes())); h2 != h {
			t.Errorf("%d bytes: the hash is not the sealed bytes'", n)
		}
		var out bytes.Buffer
		if _, err := Open(&out, bytes.NewReader(sealed.Bytes()), key); err != nil || !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("%d bytes: Open: %v, plaintext equal %v", n, err, bytes.Equal(out.Bytes(), pt))
		}
	}

	pt := randomBytes(3*ChunkSize+5, 9)
	var sealed bytes.Buffer
	if _, _, err := Seal(&sealed, bytes.NewReader(pt), key, -1); err != nil {
		t.Fatal(err)
	}
	s := sealed.Bytes()
	flipped := bytes.Clone(s)
	flipped[ChunkSize+100] ^= 1
	swapped := slicesConcat(s[sealedChunk:2*sealedChunk], s[:sealedChunk], s[2*sealedChunk:])
	for name, c := range map[string]struct {
		b   []byte
		key *[KeySize]byte
	}{
		"a byte changed":             {flipped, key},
		"cut at a chunk boundary":    {s[:2*sealedChunk], key},
		"cut inside a chunk":         {s[:len(s)-1], key},
		"two chunks swapped":         {swapped, key},
		"another key":                {s, &[KeySize]byte{9}},
		"the last chunk left out":    {s[:3*sealedChunk], key},
		"empty":                      {nil, key},
		"a chunk past the last one":  {slicesConcat(s, s[:sealedChunk]), key},
		"shorter than one chunk tag": {s[:tagSize-1], key},
	} {
		if _, err := Open(io.Discard, bytes.NewReader(c.b), c.key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open: %v, want ErrCorrupt", name, err)
		}
	}
	if _, _, err := Seal(io.Discard, bytes.NewReader(pt), key, int64(len(pt)-1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Seal over the limit: %v, want ErrTooLarge", err)
	}
	for _, n := range []int64{1, tagSize + 1, sealedChunk + 1, sealedChunk + tagSize - 1} {
		if p := PlainSize(n); p >= 0 && SealedSize(p) != n {
			t.Errorf("PlainSize(%d) = %d, which seals to %d", n, p, SealedSize(p))
		}
	}
}

func slicesConcat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestRef(t *testing.T) {
	r := Ref{Hash: Hash{1}, Key: [KeySize]byte{2}, Size: 12345, Name: "photo 1.jpg", Type: "image/jpeg", Thumb: []byte{0xff, 0xd8}, DurationMS: 0}
	got, err := UnmarshalRef(r.Marshal())
	if err != nil || got.Name != r.Name || got.Size != r.Size || got.Hash != r.Hash || got.Key != r.Key || !bytes.Equal(got.Thumb, r.Thumb) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []Ref{
		{Name: "../etc/passwd", Type: "text/plain"},
		{Name: "a\x00b", Type: "text/plain"},
		{Name: "..", Type: "text/plain"},
		{Name: " x", Type: "text/plain"},
		{Name: "x", Type: "text/html; charset=utf-8"},
		{Name: "x", Type: "nonsense"},
		{Name: "x", Type: "text/plain", DurationMS: -1},
		{Name: "", Type: "text/plain"},
	} {
		if _, err := UnmarshalRef(bad.Marshal()); !errors.Is(err, ErrMalformedRef) {
			t.Errorf("UnmarshalRef(%+v): %v, want ErrMalformedRef", bad, err)
		}
	}
}

// pair is a sender's and a recipient's node: real libp2p hosts on loopback,
// each with a store and the file service.
type pair struct {
	from, to     host.Host
	fromS, toS   *Store
	fromSv, toSv *Service
}

func newPair(t testing.TB, limit int64) *pair {
	t.Helper()
	p := &pair{}
	p.from, p.to = p2ptest.NewHost(t, nil), p2ptest.NewHost(t, nil)
	var err error
	if p.fromS, err = OpenStore(filepath.Join(t.TempDir(), "from"), limit); err != nil {
		t.Fatal(err)
	}
	if p.toS, err = OpenStore(filepath.Join(t.TempDir(), "to"), limit); err != nil {
		t.Fatal(err)
	}
	p.fromSv = NewService(Config{Host: p.from, Store: p.fromS, Allow: func(id peer.ID, _ Hash) bool { return id == p.to.ID() }})
	p.toSv = NewService(Config{Host: p.to, Store: p.toS})
	t.Cleanup(func() { p.fromSv.Close(); p.toSv.Close() })
	p2ptest.Connect(t, p.to, p.from)
	return p
}

// TestFetchResumes: a download cut half way keeps what arrived, resumes
// from there (the holder is asked from that offset) and arrives whole,
// matching its hash.
func TestFetchResumes(t *testing.T) {
	p := newPair(t, 0)
	pt := randomBytes(5<<20+123, 1)
	ref, err := p.fromS.Add(bytes.NewReader(pt), "clip.webm", "audio/webm")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = p.toSv.Fetch(ctx, p.from.ID(), ref, func(have, total int64) {
		if have > total/2 {
			cancel()
		}
	})
	cancel()
	if err == nil {
		t.Fatal("the cut download reports success")
	}
	half := p.toS.Partial(ref.Hash)
	if half <= 0 || half >= SealedSize(ref.Size) || p.toS.Has(ref.Hash) {
		t.Fatalf("after the cut: %d bytes held of %d, whole file present %v", half, SealedSize(ref.Size), p.toS.Has(ref.Hash))
	}
	var first int64 = -1
	err = p.toSv.Fetch(context.Background(), p.from.ID(), ref, func(have, _ int64) {
		if first < 0 {
			first = have
		}
	})
	if err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if first <= half {
		t.Errorf("the resumed fetch started again from the start (first progress at %d, %d held)", first, half)
	}
	var out bytes.Buffer
	if err := p.toS.Read(&out, ref); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("the file read back: %v, equal %v", err, bytes.Equal(out.Bytes(), pt))
	}
	if p.toS.Partial(ref.Hash) != 0 {
		t.Errorf("a partial download is left beside the whole file")
	}
	// Fetching a file held already moves nothing.
	if err := p.toSv.Fetch(context.Background(), p.from.ID(), ref, func(int64, int64) { t.Error("fetched again") }); err != nil {
		t.Error(err)
	}
}

// TestFetchRefuses is the bad input for attachments: a file whose
// bytes don't match its hash, a file over the limit, a file the holder
// doesn't have or won't give this peer. Nothing of any is kept.
func TestFetchRefuses(t *testing.T) {
	p := newPair(t, 1<<20)
	ref, err := p.fromS.Add(bytes.NewReader(randomBytes(300<<10, 2)), "a.bin", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A holder that serves other bytes under the hash.
	bogus := ref
	bogus.Hash[0] ^= 1
	data, _ := os.ReadFile(p.fromS.path(ref.Hash))
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p.fromS.path(bogus.Hash), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.toSv.Fetch(ctx, p.from.ID(), bogus, nil); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("other bytes under the hash: %v, want ErrHashMismatch", err)
	}
	// A reference whose size disagrees with the holder's file.
	wrongSize := ref
	wrongSize.Size--
	if err := p.toSv.Fetch(ctx, p.from.ID(), wrongSize, nil); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("a size that disagrees: %v, want ErrHashMismatch", err)
	}
	// Over this node's limit: refused before a byte moves.
	big := ref
	big.Size = 2 << 20
	if err := p.toSv.Fetch(ctx, p.from.ID(), big, func(int64, int64) { t.Error("bytes moved") }); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := p.fromS.Add(bytes.NewReader(make([]byte, 1<<20+1)), "big", ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("adding a file over the limit: %v, want ErrTooLarge", err)
	}
	// Not held; not for this peer (the sender's node asks the recipient,
	// which serves only its own peer's files).
	missing := ref
	missing.Hash = Hash{7}
	if err := p.toSv.Fetch(ctx, p.from.ID(), missing, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("a file the holder does not have: %v, want ErrNotFound", err)
	}
	if _, err := p.toS.Add(bytes.NewReader([]byte("x")), "x", ""); err != nil {
		t.Fatal(err)
	}
	other := p2ptest.NewHost(t, nil)
	otherS, err := OpenStore(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	otherSv := NewService(Config{Host: other, Store: otherS})
	defer otherSv.Close()
	p2ptest.Connect(t, other, p.from)
	if err := otherSv.Fetch(ctx, p.from.ID(), ref, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("a file fetched by a peer the holder does not give it to: %v, want ErrNotFound", err)
	}
	if otherS.Partial(ref.Hash) != 0 {
		t.Errorf("the refused peer kept a partial file")
	}
	for _, h := range []Hash{bogus.Hash, wrongSize.Hash, big.Hash, missing.Hash} {
		if p.toS.Has(h) || p.toS.Partial(h) != 0 {
			t.Errorf("%v: something was kept", h)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p.toS.path(Hash{})))
	if len(entries) != 1 { // the "x" added above
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the recipient's store holds %v", names)
	}
}

// TestServeRefusesMalformed: a request that does not parse resets the
// stream and the service keeps serving.
func TestServeRefusesMalformed(t *testing.T) {
	p := newPair(t, 0)
	ref, err := p.fromS.Add(bytes.NewReader([]byte("hello")), "h.txt", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, req := range [][]byte{{0xff, 0xff}, append(marshalRequest(ref.Hash, 0), 0x18, 0x01), marshalRequest(ref.Hash, SealedSize(ref.Size)+1)} {
		s, err := p.to.NewStream(ctx, p.from.ID(), Protocol)
		if err != nil {
			t.Fatal(err)
		}
		if err := p2p.WriteFrame(s, req); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(s)
		if len(b) > 0 {
			if st, _, err := unmarshalResponse(b[1:]); err != nil || st == statusOK {
				t.Errorf("request %x: answered %x", req, b)
			}
		}
		s.Reset()
	}
	if err := p.toSv.Fetch(ctx, p.from.ID(), ref, nil); err != nil {
		t.Errorf("after malformed requests: %v", err)
	}
}

func FuzzUnmarshalRef(f *testing.F) {
	r := Ref{Hash: Hash{1}, Key: [KeySize]byte{2}, Size: 5, Name: "a.ogg", Type: "audio/ogg", DurationMS: 3000}
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRef(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("accepted bytes re-encode differently")
		}
	})
}

func FuzzOpen(f *testing.F) {
	key := &[KeySize]byte{3}
	var sealed bytes.Buffer
	Seal(&sealed, bytes.NewReader(randomBytes(ChunkSize+10, 3)), key, -1)
	f.Add(sealed.Bytes())
	f.Add(sealed.Bytes()[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Open(io.Discard, bytes.NewReader(b), key)
		if err == nil && PlainSize(int64(len(b))) != n {
			t.Fatalf("opened %d sealed bytes into %d", len(b), n)
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add(marshalRequest(Hash{1}, 77))
	f.Add(marshalResponse(statusOK, 1000))
	f.Fuzz(func(t *testing.T, b []byte) {
		unmarshalRequest(b)
		unmarshalResponse(b)
	})
}
