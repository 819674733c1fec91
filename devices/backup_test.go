package devices

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-backup-golden", false, "rewrite testdata/backup-v1.golden")

// testBackupParams are the cheapest a reader accepts, with small chunks so
// that a few kilobytes cross several chunk boundaries.
var testBackupParams = BackupParams{Time: 1, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 4 << 10}

var testPassphrase = []byte("correct horse battery staple")

// memoDerive makes Argon2id run once per (passphrase, salt, parameters)
// for the test and counts the runs asked for.
func memoDerive(t testing.TB) *int {
	var mu sync.Mutex
	memo := map[string][]byte{}
	calls := 0
	real := deriveBackupSecret
	deriveBackupSecret = func(pass, salt []byte, p BackupParams) []byte {
		mu.Lock()
		defer mu.Unlock()
		calls++
		k := fmt.Sprintf("%x/%x/%v", pass, salt, p)
		if s, ok := memo[k]; ok {
			return s
		}
		s := real(pass, salt, p)
		memo[k] = s
		return s
	}
	t.Cleanup(func() { deriveBackupSecret = real })
	return &calls
}

type item struct {
	kind byte
	body []byte
}

func writeBackup(t testing.TB, salt []byte, items []item) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw, err := newBackupWriter(&buf, testPassphrase, testBackupParams, time.Unix(1_764_892_800, 0), salt)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := bw.Add(it.kind, it.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readBackup(b []byte, pass []byte) ([]item, error) {
	bk, err := OpenBackup(bytes.NewReader(b), int64(len(b)), pass)
	if err != nil {
		return nil, err
	}
	if _, err := bk.Verify(); err != nil {
		return nil, err
	}
	var out []item
	err = bk.Each(func(kind byte, body []byte) error {
		out = append(out, item{kind, body})
		return nil
	})
	return out, err
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// TestBackupRoundTrip: items of every awkward size (empty, one byte, a
// chunk less its item head, exactly filling the last chunk with End, many
// chunks, the largest allowed) come back in order and unchanged.
func TestBackupRoundTrip(t *testing.T) {
	memoDerive(t)
	cs := int(testBackupParams.ChunkSize)
	fill := 2*cs - 2*backupItemHeadSize - backupItemHeadSize - backupEndSize // two items and End fill two chunks exactly
	cases := map[string][]item{
		"no items":      nil,
		"empty item":    {{1, nil}},
		"one byte":      {{2, []byte{0}}},
		"one chunk":     {{3, pattern(cs-backupItemHeadSize, 1)}},
		"end on a seam": {{4, pattern(fill-100, 2)}, {5, pattern(100, 3)}},
		"many chunks":   {{6, pattern(5*cs+17, 4)}, {255, []byte("last kind")}, {7, pattern(cs, 5)}},
		"largest":       {{8, pattern(MaxBackupItem, 6)}},
	}
	for name, items := range cases {
		t.Run(name, func(t *testing.T) {
			b := writeBackup(t, bytes.Repeat([]byte{1}, 16), items)
			if name == "end on a seam" && (len(b)-backupHeaderSize)%(cs+backupTagSize) != 0 {
				t.Fatalf("the case does not end on a chunk seam: %d bytes", len(b))
			}
			got, err := readBackup(b, testPassphrase)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(items) {
				t.Fatalf("%d items back, want %d", len(got), len(items))
			}
			for i := range items {
				if got[i].kind != items[i].kind || !bytes.Equal(got[i].body, items[i].body) {
					t.Errorf("item %d: kind %d, %d bytes; want kind %d, %d bytes", i, got[i].kind, len(got[i].body), items[i].kind, len(items[i].body))
				}
			}
			bk, _ := OpenBackup(bytes.NewReader(b), int64(len(b)), testPassphrase)
			if !bk.Created().Equal(time.Unix(1_764_892_800, 0)) {
				t.Errorf("created %v", bk.Created())
			}
		})
	}
}

// TestBackupGolden: the format does not drift. testdata/backup-v1.golden
// was written by this code and opened by an independent implementation
// (Python's cryptography: Argon2id, HKDF, ChaCha20-Poly1305; the script is
// in the file's comment below) before it was kept.
//
//	from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
//	from cryptography.hazmat.primitives.kdf.hkdf import HKDF
//	from cryptography.hazmat.primitives.hashes import SHA256
//	from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
//	import hashlib, struct
//	b = open("testdata/backup-v1.golden", "rb").read(); h = b[:71]
//	assert h[:8] == b"CSBACKUP" and hashlib.sha256(h[:63]).digest()[:8] == h[63:71]
//	t, m, p, cs = struct.unpack(">I", h[10:14])[0], struct.unpack(">I", h[14:18])[0], h[18], struct.unpack(">I", h[59:63])[0]
//	s = Argon2id(salt=h[19:35], length=32, iterations=t, lanes=p, memory_cost=m).derive(b"correct horse battery staple")
//	hk = lambda info, n: HKDF(SHA256(), n, None, info).derive(s)
//	assert hk(b"callsign/v1/backup-key-check", 16) == h[35:51]
//	a, rest, pt, i = ChaCha20Poly1305(hk(b"callsign/v1/backup-key", 32)), b[71:], b"", 0
//	while rest:
//	    c, rest = rest[:cs + 16], rest[cs + 16:]
//	    pt += a.decrypt(struct.pack(">QI", i, 0 if rest else 1), c, h); i += 1
//	# items: kind, BE32 length, body; End: kind 0, count, SHA-256 of the items before it
func TestBackupGolden(t *testing.T) {
	memoDerive(t)
	items := []item{{1, []byte("account")}, {3, []byte("contact: bob")}, {7, pattern(5000, 9)}}
	b := writeBackup(t, []byte("0123456789abcdef"), items)
	path := filepath.Join("testdata", "backup-v1.golden")
	if *updateGolden {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("the writer's bytes differ from %s (%d bytes, want %d)", path, len(b), len(want))
	}
	got, err := readBackup(want, testPassphrase)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2].body, items[2].body) {
		t.Fatalf("golden file: %d items, %v", len(got), err)
	}
}

// errorIn reports whether err is one of the reader's errors.
func errorIn(err error, want ...error) bool {
	for _, w := range want {
		if errors.Is(err, w) {
			return true
		}
	}
	return false
}

// rehead returns b with its header changed by edit and its checksum made
// right again: what a tamperer, not damage, would write.
func rehead(b []byte, edit func(h []byte)) []byte {
	c := bytes.Clone(b)
	edit(c[:backupHeaderSize])
	sum := sha256.Sum256(c[:63])
	copy(c[63:71], sum[:8])
	return c
}

// TestBackupHostile: whatever was done to the file, reading it ends in a
// clear error before an item is handed on (Verify); a damaged header and
// absurd parameters are refused before Argon2id runs.
func TestBackupHostile(t *testing.T) {
	calls := memoDerive(t)
	cs := int(testBackupParams.ChunkSize) + backupTagSize
	good := writeBackup(t, bytes.Repeat([]byte{2}, 16), []item{{1, pattern(9000, 1)}, {2, []byte("b")}})
	if n := (len(good) - backupHeaderSize + cs - 1) / cs; n != 3 {
		t.Fatalf("the file has %d chunks, the cases want 3", n)
	}
	verify := func(b []byte, pass []byte) error {
		_, err := readBackup(b, pass)
		return err
	}
	if err := verify(good, testPassphrase); err != nil {
		t.Fatal(err)
	}

	t.Run("wrong passphrase", func(t *testing.T) {
		if err := verify(good, []byte("correct horse battery stapler")); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("every header byte flipped", func(t *testing.T) {
		before := *calls
		for i := range backupHeaderSize {
			for _, x := range []byte{0x01, 0x80} {
				b := bytes.Clone(good)
				b[i] ^= x
				err := verify(b, testPassphrase)
				if !errorIn(err, ErrBackupDamaged, ErrBackupNewer) || (errors.Is(err, ErrBackupNewer) && i != 8) {
					t.Errorf("byte %d ^ %#x: %v", i, x, err)
				}
			}
		}
		if *calls != before {
			t.Errorf("Argon2id ran %d times for damaged headers, want 0", *calls-before)
		}
	})
	t.Run("header rewritten", func(t *testing.T) {
		for name, tc := range map[string]struct {
			edit   func(h []byte)
			want   error
			derive bool
		}{
			"version 2":      {func(h []byte) { h[8] = 2 }, ErrBackupNewer, false},
			"version 0":      {func(h []byte) { h[8] = 0 }, ErrBackupDamaged, false},
			"kdf 2":          {func(h []byte) { h[9] = 2 }, ErrBackupNewer, false},
			"m = 2^32-1 KiB": {func(h []byte) { binary.BigEndian.PutUint32(h[14:], 1<<32-1) }, ErrBackupDamaged, false},
			"m = 8 KiB":      {func(h []byte) { binary.BigEndian.PutUint32(h[14:], 8) }, ErrBackupDamaged, false},
			"t = 0":          {func(h []byte) { binary.BigEndian.PutUint32(h[10:], 0) }, ErrBackupDamaged, false},
			"t = 1000":       {func(h []byte) { binary.BigEndian.PutUint32(h[10:], 1000) }, ErrBackupDamaged, false},
			"p = 0":          {func(h []byte) { h[18] = 0 }, ErrBackupDamaged, false},
			"chunk 1 byte":   {func(h []byte) { binary.BigEndian.PutUint32(h[59:], 1) }, ErrBackupDamaged, false},
			"chunk 1 GiB":    {func(h []byte) { binary.BigEndian.PutUint32(h[59:], 1<<30) }, ErrBackupDamaged, false},
			// Accepted by the bounds: the key check or the chunks say no.
			"another salt":   {func(h []byte) { h[20] ^= 1 }, ErrWrongPassphrase, true},
			"created moved":  {func(h []byte) { h[55] ^= 1 }, ErrBackupDamaged, true},
			"chunk 8 KiB":    {func(h []byte) { binary.BigEndian.PutUint32(h[59:], 8<<10) }, ErrBackupDamaged, true},
			"key check flip": {func(h []byte) { h[40] ^= 1 }, ErrWrongPassphrase, true},
		} {
			before := *calls
			if err := verify(rehead(good, tc.edit), testPassphrase); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
			if ran := *calls != before; ran != tc.derive {
				t.Errorf("%s: Argon2id ran %v, want %v", name, ran, tc.derive)
			}
		}
	})
	t.Run("cut", func(t *testing.T) {
		for n := 0; n < len(good); n++ {
			err := verify(good[:n], testPassphrase)
			seam := n >= backupHeaderSize && (n-backupHeaderSize)%cs == 0
			switch {
			case err == nil:
				t.Fatalf("cut to %d of %d bytes: read whole", n, len(good))
			case seam && !errors.Is(err, ErrBackupTruncated):
				t.Errorf("cut at a chunk seam (%d bytes): %v, want truncated", n, err)
			case !errorIn(err, ErrBackupTruncated, ErrBackupDamaged):
				t.Errorf("cut to %d bytes: %v", n, err)
			}
		}
	})
	t.Run("every byte flipped", func(t *testing.T) {
		for i := backupHeaderSize; i < len(good); i++ {
			b := bytes.Clone(good)
			b[i] ^= 1 << (i % 8)
			if err := verify(b, testPassphrase); !errors.Is(err, ErrBackupDamaged) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	})
	t.Run("chunks moved", func(t *testing.T) {
		c := func(i int) []byte { return good[backupHeaderSize+i*cs : min(len(good), backupHeaderSize+(i+1)*cs)] }
		head := good[:backupHeaderSize]
		other := writeBackup(t, bytes.Repeat([]byte{2}, 16), []item{{1, pattern(9000, 5)}, {2, []byte("b")}})
		for name, b := range map[string][]byte{
			"bytes after the end":   append(bytes.Clone(good), 0),
			"a chunk appended":      append(bytes.Clone(good), c(0)...),
			"swapped":               bytes.Join([][]byte{head, c(1), c(0), c(2)}, nil),
			"middle dropped":        bytes.Join([][]byte{head, c(0), c(2)}, nil),
			"another file's chunk":  bytes.Join([][]byte{head, other[backupHeaderSize : backupHeaderSize+cs], c(1), c(2)}, nil),
			"the final chunk twice": bytes.Join([][]byte{head, c(0), c(1), c(2), c(2)}, nil),
		} {
			if err := verify(b, testPassphrase); !errorIn(err, ErrBackupDamaged) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("plaintext", func(t *testing.T) {
		end := func(count uint64, items ...[]byte) []byte {
			e := binary.BigEndian.AppendUint32([]byte{0}, backupEndSize)
			e = binary.BigEndian.AppendUint64(e, count)
			sum := sha256.Sum256(bytes.Join(items, nil))
			return append(e, sum[:]...)
		}
		it := func(kind byte, body string) []byte {
			return append(binary.BigEndian.AppendUint32([]byte{kind}, uint32(len(body))), body...)
		}
		for name, pt := range map[string][]byte{
			"no End":              it(1, "x"),
			"nothing":             nil,
			"End miscounted":      append(it(1, "x"), end(2, it(1, "x"))...),
			"End's digest":        append(it(1, "x"), end(1, it(1, "y"))...),
			"End short":           {0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0},
			"bytes after End":     append(append(it(1, "x"), end(1, it(1, "x"))...), 1),
			"an item after End":   append(append(it(1, "x"), end(1, it(1, "x"))...), it(1, "x")...),
			"an item over 16 MiB": binary.BigEndian.AppendUint32([]byte{1}, MaxBackupItem+1),
			"an item cut short":   append(binary.BigEndian.AppendUint32([]byte{1}, 10), "abc"...),
		} {
			var got int
			bk := sealed(t, pt)
			err := bk.Each(func(byte, []byte) error { got++; return nil })
			if !errors.Is(err, ErrBackupDamaged) {
				t.Errorf("%s: %v", name, err)
			}
			if _, err := bk.Verify(); !errors.Is(err, ErrBackupDamaged) {
				t.Errorf("%s: Verify %v", name, err)
			}
		}
	})
}

// sealed is a backup whose plaintext is pt, as a writer that breaks the
// format would seal it.
func sealed(t testing.TB, pt []byte) *Backup {
	t.Helper()
	var buf bytes.Buffer
	bw, err := newBackupWriter(&buf, testPassphrase, testBackupParams, time.Unix(1_764_892_800, 0), bytes.Repeat([]byte{3}, 16))
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.write(pt); err != nil {
		t.Fatal(err)
	}
	if err := bw.seal(true); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	bk, err := OpenBackup(bytes.NewReader(b), int64(len(b)), testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

// TestBackupWriterRefuses: parameters a reader would refuse, End's kind,
// an item over the limit and an empty passphrase are refused when written.
func TestBackupWriterRefuses(t *testing.T) {
	memoDerive(t)
	for _, p := range []BackupParams{
		{Time: 0, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 4 << 10},
		{Time: 1, MemoryKiB: 1 << 10, Lanes: 1, ChunkSize: 4 << 10},
		{Time: 1, MemoryKiB: 64 << 10, Lanes: 17, ChunkSize: 4 << 10},
		{Time: 1, MemoryKiB: 64 << 10, Lanes: 1, ChunkSize: 8 << 20},
	} {
		if _, err := NewBackupWriter(&bytes.Buffer{}, testPassphrase, p, time.Now()); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if DefaultBackupParams.check() != nil {
		t.Errorf("the default parameters are out of range")
	}
	if _, err := NewBackupWriter(&bytes.Buffer{}, nil, testBackupParams, time.Now()); err == nil {
		t.Errorf("an empty passphrase accepted")
	}
	bw, err := NewBackupWriter(&bytes.Buffer{}, testPassphrase, testBackupParams, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bw.Add(0, nil) == nil || bw.Add(1, make([]byte, MaxBackupItem+1)) == nil {
		t.Errorf("End's kind or an oversize item accepted")
	}
}

// TestBackupSalted: two backups of the same items under the same
// passphrase share no salt and no chunk.
func TestBackupSalted(t *testing.T) {
	memoDerive(t)
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		bw, err := NewBackupWriter(buf, testPassphrase, testBackupParams, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := bw.Add(1, []byte("same")); err != nil || bw.Close() != nil {
			t.Fatal(err)
		}
	}
	if bytes.Equal(a.Bytes()[19:35], b.Bytes()[19:35]) || bytes.Equal(a.Bytes()[backupHeaderSize:], b.Bytes()[backupHeaderSize:]) {
		t.Errorf("two backups share a salt or their chunks")
	}
}

// FuzzBackupPlaintext: whatever a backup's sealed plaintext holds, reading
// it does not panic, and what reads is what a writer of its items writes:
// one form per backup.
func FuzzBackupPlaintext(f *testing.F) {
	memoDerive(f)
	r := rand.New(rand.NewPCG(1, 2))
	for _, items := range [][]item{nil, {{1, []byte("a")}}, {{2, pattern(5000, 1)}, {9, nil}}} {
		f.Add(plaintextOf(f, items))
	}
	f.Add(pattern(r.IntN(100), 0))
	f.Fuzz(func(t *testing.T, pt []byte) {
		bk := sealed(t, pt)
		var items []item
		if err := bk.Each(func(kind byte, body []byte) error { items = append(items, item{kind, body}); return nil }); err != nil {
			if !errors.Is(err, ErrBackupDamaged) {
				t.Fatalf("an error that is not damage: %v", err)
			}
			return
		}
		if re := plaintextOf(t, items); !bytes.Equal(re, pt) {
			t.Fatalf("read %d items from %d bytes that write back as %d bytes", len(items), len(pt), len(re))
		}
	})
}

// plaintextOf is the plaintext a writer seals for items: the items, then
// End. (A writer whose chunk never fills keeps it all in its buffer.)
func plaintextOf(t testing.TB, items []item) []byte {
	t.Helper()
	bw := &BackupWriter{size: 1 << 30, digest: sha256.New()}
	for _, it := range items {
		if err := bw.Add(it.kind, it.body); err != nil {
			t.Fatal(err)
		}
	}
	end := binary.BigEndian.AppendUint32([]byte{backupEnd}, backupEndSize)
	end = binary.BigEndian.AppendUint64(end, bw.items)
	return append(bw.buf, bw.digest.Sum(end)...)
}
