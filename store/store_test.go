package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"
)

// productionKDF is kdfParams as the package sets it, saved before TestMain
// cheapens it for the rest of the suite.
var productionKDF = kdfParams

func TestMain(m *testing.M) {
	// Argon2id at its production cost (64 MiB, t=3) would dominate the
	// suite; TestPassphraseDefaults checks the production parameters.
	kdfParams = argonParams{Time: 1, MemoryKiB: 1024, Lanes: 1}
	goleak.VerifyTestMain(m)
}

func openT(t *testing.T, dir string, pass []byte) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{Dir: dir, Passphrase: pass, Checks: testChecks})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func memT(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{InMemory: true, Checks: testChecks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// hashDir maps every file under dir to the SHA-256 of its contents and mode.
func hashDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[p] = "dir " + info.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%x %s %d", sha256.Sum256(b), info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameDir(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed: %q -> %q", p, h, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleData(t *testing.T, db *DB) {
	t.Helper()
	if err := db.PutSecrets(Secrets{AccountSeed: []byte("seed-bytes"), DeviceKey: []byte("dev"), X25519: []byte("x"), Prekeys: []byte("pk")}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutContact(Contact{Account: "acct1", PubKey: []byte{1, 2, 3}, Petname: "bob", AddedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMessage(Message{ID: "m1", Peer: "acct1", Direction: DirIn, Seq: 1, Body: []byte("hi"), SentAt: t0, At: t0}); err != nil {
		t.Fatal(err)
	}
}

func checkSample(t *testing.T, db *DB) {
	t.Helper()
	s, err := db.Secrets()
	if err != nil || string(s.AccountSeed) != "seed-bytes" || string(s.Prekeys) != "pk" {
		t.Fatalf("secrets after reopen = %+v, %v", s, err)
	}
	c, err := db.ContactByPetname("bob")
	if err != nil || c.Account != "acct1" || !c.AddedAt.Equal(t0) {
		t.Fatalf("contact after reopen = %+v, %v", c, err)
	}
	m, err := db.Message("acct1", "m1")
	if err != nil || string(m.Body) != "hi" {
		t.Fatalf("message after reopen = %+v, %v", m, err)
	}
}

func TestReopenKeyFile(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	if got := db.Encryption(); got != EncryptionKeyFile {
		t.Fatalf("Encryption() = %q, want keyfile", got)
	}
	sampleData(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != keySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d bytes", st.Mode(), st.Size(), keySize)
	}
	if _, err := os.Stat(filepath.Join(dir, saltFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("salt file exists in a key-file store: %v", err)
	}
	db = openT(t, dir, nil)
	checkSample(t, db)
}

func TestReopenPassphrase(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("correct horse battery staple")
	db := openT(t, dir, pass)
	if got := db.Encryption(); got != EncryptionPassphrase {
		t.Fatalf("Encryption() = %q, want passphrase", got)
	}
	sampleData(t, db)
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, keyFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("key file exists in a passphrase store: %v", err)
	}
	db = openT(t, dir, pass)
	checkSample(t, db)
}

func TestWrongPassphraseTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, []byte("right"))
	sampleData(t, db)
	db.Close()

	before := hashDir(t, dir)
	_, err := Open(context.Background(), Options{Dir: dir, Passphrase: []byte("wrong")})
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Open with wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	sameDir(t, before, hashDir(t, dir))

	db = openT(t, dir, []byte("right"))
	checkSample(t, db)
}

func TestPassphraseModeMismatch(t *testing.T) {
	kf := t.TempDir()
	openT(t, kf, nil).Close()
	before := hashDir(t, kf)
	_, err := Open(context.Background(), Options{Dir: kf, Passphrase: []byte("x")})
	if !errors.Is(err, ErrHasKeyFile) {
		t.Fatalf("passphrase on key-file store: %v, want ErrHasKeyFile", err)
	}
	sameDir(t, before, hashDir(t, kf))

	pf := t.TempDir()
	openT(t, pf, []byte("x")).Close()
	before = hashDir(t, pf)
	_, err = Open(context.Background(), Options{Dir: pf})
	if !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("no passphrase on passphrase store: %v, want ErrNeedPassphrase", err)
	}
	sameDir(t, before, hashDir(t, pf))

	_, err = Open(context.Background(), Options{Dir: t.TempDir(), Passphrase: []byte{}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty passphrase: %v, want ErrInvalid", err)
	}
	_, err = Open(context.Background(), Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("no Dir: %v, want ErrInvalid", err)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, nil).Close()
	kp := filepath.Join(dir, keyFileName)
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(kp, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(context.Background(), Options{Dir: dir})
		if !errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("mode %#o: %v, want ErrKeyFileMode", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %#o: error %q has no chmod hint", mode, err)
		}
	}
	os.Chmod(kp, 0o400)
	openT(t, dir, nil).Close()
}

func TestForeignKeyFile(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	sampleData(t, db)
	db.Close()
	kp := filepath.Join(dir, keyFileName)
	os.Remove(kp)
	if err := os.WriteFile(kp, bytes.Repeat([]byte{7}, keySize), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashDir(t, dir)
	_, err := Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("foreign key file: %v, want ErrKeyMismatch", err)
	}
	sameDir(t, before, hashDir(t, dir))

	// Key material gone but data present: refuse rather than create a new key.
	os.Remove(kp)
	_, err = Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("missing key file: %v, want ErrKeyMissing", err)
	}
	if _, err := os.Stat(kp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created a new key file for an existing store")
	}
}

func TestCorruptSaltFile(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, []byte("p")).Close()
	sp := filepath.Join(dir, saltFileName)
	b, _ := os.ReadFile(sp)
	for name, mut := range map[string]func([]byte) []byte{
		"short":      func(b []byte) []byte { return b[:20] },
		"magic":      func(b []byte) []byte { b[0] ^= 1; return b },
		"huge-mem":   func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], 1<<31); return b },
		"zero-time":  func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0); return b },
		"reserved":   func(b []byte) []byte { b[17] = 1; return b },
		"zero-lanes": func(b []byte) []byte { b[16] = 0; return b },
	} {
		os.WriteFile(sp, mut(bytes.Clone(b)), 0o600)
		_, err := Open(context.Background(), Options{Dir: dir, Passphrase: []byte("p")})
		if err == nil || errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: Open = %v, want a salt file error", name, err)
		}
	}
	// A flipped check byte is indistinguishable from a wrong passphrase.
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	os.WriteFile(sp, c, 0o600)
	if _, err := Open(context.Background(), Options{Dir: dir, Passphrase: []byte("p")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("bad check: %v", err)
	}
}

func TestPassphraseDefaults(t *testing.T) {
	// The documented cost (store/doc.go; OWASP's second option): a
	// weaker default makes a stolen data directory cheaper to crack.
	p := argonParams{Time: 3, MemoryKiB: 64 * 1024, Lanes: 4}
	if productionKDF != p {
		t.Fatalf("new stores use Argon2id %+v, want %+v", productionKDF, p)
	}
	s := &saltFile{params: p}
	got, err := parseSaltFile(s.marshal())
	if err != nil || got.params != p {
		t.Fatalf("round trip of default params: %+v, %v", got, err)
	}
	// The production default, restored for this one store.
	old := kdfParams
	kdfParams = productionKDF
	defer func() { kdfParams = old }()
	dir := t.TempDir()
	start := time.Now()
	openT(t, dir, []byte("pw")).Close()
	t.Logf("open with Argon2id t=3 m=64MiB p=4: %v", time.Since(start))
	b, _ := os.ReadFile(filepath.Join(dir, saltFileName))
	sf, err := parseSaltFile(b)
	if err != nil || sf.params != p {
		t.Fatalf("salt file params %+v, %v; want %+v", sf, err, p)
	}
}

// TestNoPlaintextOnDisk writes distinctive strings, then greps every file
// for them, both while open (WAL/memtable files) and after close (tables).
func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	secrets := [][]byte{
		[]byte("Zebulon-Quartermaine-petname"),
		[]byte("acct-ZQXJ-distinctive-account"),
		[]byte("the eagle lands at midnight, bring the vellum"),
		[]byte("SEEDSEEDSEED-distinctive-secret"),
	}
	big := bytes.Repeat([]byte("LARGEBODY-distinctive "), 200) // > value threshold: value log
	if err := db.PutContact(Contact{Account: string(secrets[1]), Petname: string(secrets[0])}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSecrets(Secrets{AccountSeed: secrets[3]}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		body := secrets[2]
		if i%2 == 1 {
			body = big
		}
		if err := db.PutMessage(Message{ID: fmt.Sprint(i), Peer: string(secrets[1]), Direction: DirOut, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	grep := func(when string) {
		t.Helper()
		n := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			n += len(b)
			for _, s := range append(secrets, []byte("LARGEBODY-distinctive")) {
				if bytes.Contains(b, s) {
					t.Errorf("%s: %s contains plaintext %q", when, p, s)
				}
			}
			return nil
		})
		if n < 10_000 {
			t.Fatalf("%s: only %d bytes on disk; the data was not written", when, n)
		}
	}
	if err := db.bdb.Sync(); err != nil {
		t.Fatal(err)
	}
	grep("while open")
	db.Close()
	grep("after close")
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, nil).Close()
	key, err := readKeyFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, dbDirName)).
		WithEncryptionKey(key).WithIndexCacheSize(1 << 20).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	var v uint64
	bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keySchema)
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error { v, err = decodeSchema(s, b); return err })
	})
	if v != currentSchema {
		t.Fatalf("stored schema %d, want %d", v, currentSchema)
	}
	bdb.Update(func(txn *badger.Txn) error { return txn.Set(keySchema, encodeSchema(s, currentSchema+1)) })
	bdb.Close()

	_, err = Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open newer schema: %v, want ErrSchemaTooNew", err)
	}
	// The failed open released badger's lock: a second try fails the same way.
	if _, err = Open(context.Background(), Options{Dir: dir}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("second Open: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	bdb, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	log := slog.New(slog.DiscardHandler)
	if err := checkSchema(bdb, 1, nil, nil, log); err != nil { // fresh: writes 1
		t.Fatal(err)
	}
	var ran []uint64
	hooks := map[uint64]migration{
		1: func(txn *badger.Txn) error { ran = append(ran, 1); return txn.Set([]byte("set/m1"), []byte("a")) },
		2: func(txn *badger.Txn) error { ran = append(ran, 2); return txn.Set([]byte("set/m2"), []byte("b")) },
		3: func(txn *badger.Txn) error { ran = append(ran, 3); return errors.New("boom") },
	}
	if err := checkSchema(bdb, 3, hooks, nil, log); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ran) != "[1 2]" {
		t.Fatalf("hooks ran %v, want [1 2]", ran)
	}
	if err := checkSchema(bdb, 3, hooks, nil, log); err != nil || len(ran) != 2 {
		t.Fatalf("second check at the same version ran hooks again: %v %v", ran, err)
	}
	// A failing hook leaves the version where it was.
	if err := checkSchema(bdb, 4, hooks, nil, log); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing hook: %v", err)
	}
	if err := checkSchema(bdb, 3, hooks, nil, log); err != nil {
		t.Fatalf("version moved past a failed migration: %v", err)
	}
	if err := checkSchema(bdb, 5, map[uint64]migration{}, nil, log); err == nil {
		t.Fatal("missing hook: no error")
	}
}

func TestInUseAndClose(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	_, err := Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.PutSetting("a", []byte("b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, _, err := db.GetSetting("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Options{Dir: dir}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with canceled ctx: %v", err)
	}
}

type recHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *recHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recHandler) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogsRouted(t *testing.T) {
	h := &recHandler{}
	db, err := Open(context.Background(), Options{Dir: t.TempDir(), Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	found := false
	for _, r := range h.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "src" && a.Value.String() == "badger" {
				found = true
				if r.Level > slog.LevelDebug {
					t.Errorf("badger info log at %v: %q", r.Level, r.Message)
				}
			}
			return true
		})
	}
	if !found {
		t.Fatal("no badger log reached the slog logger")
	}
}
