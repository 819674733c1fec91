package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4/y"
)

// integrityStore writes n messages over three conversations to a new
// store in a temp dir and closes it. Every other body is 1.5 KiB (in the
// value log); the others are short (in the tables, inline).
func integrityStore(t *testing.T, n int) (string, []Message) {
	t.Helper()
	dir := t.TempDir()
	db := openT(t, dir, nil)
	var msgs []Message
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		body := fmt.Appendf(nil, "message %d, ", i)
		if i%2 == 0 {
			body = bytes.Repeat(body, 1536/len(body)+1)
		}
		m := Message{ID: fmt.Sprintf("m%05d", i), Peer: fmt.Sprint("peer", i%3), Direction: []string{DirIn, DirOut}[i%5%2],
			Seq: uint64(i + 1), Body: body, SentAt: at.Add(-time.Second), At: at, State: "delivered"}
		msgs = append(msgs, m)
	}
	for i := 0; i < n; i += 200 {
		err := db.Update(func(tx *Tx) error {
			for _, m := range msgs[i:min(i+200, n)] {
				if err := tx.PutMessage(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for p := range 3 {
		if err := db.PutContact(Contact{Account: fmt.Sprint("peer", p), Petname: fmt.Sprint("pet", p), AddedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, msgs
}

// copyStore copies a closed store's data directory to a new temp dir.
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		info, _ := d.Info()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// storeFiles lists the files of one kind (".vlog", ".sst") in a data dir's store.
func storeFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, dbDirName, "*"+ext))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s files in %s: %v", ext, dir, err)
	}
	return paths
}

// flipBits flips one bit at each offset of the file.
func flipBits(t *testing.T, path string, offsets []int64, r *rand.Rand) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range offsets {
		var b [1]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 1 << r.IntN(8)
		if _, err := f.WriteAt(b[:], off); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// checkReads reads every message by id and every conversation page by
// page. Each message reads back exactly as written, or its read fails
// with a *CorruptError naming it; a page either holds exactly what was
// written or fails with ErrCorrupt. It returns the ids of the damaged
// messages.
func checkReads(t *testing.T, db *DB, msgs []Message) map[string]bool {
	t.Helper()
	damaged := map[string]bool{}
	for _, m := range msgs {
		got, err := db.Message(m.Peer, m.ID)
		switch {
		case err == nil:
			if !sameMessage(got, m) || got.State != m.State || got.Seq != m.Seq || got.Direction != m.Direction {
				t.Fatalf("message %s reads back altered: %.60q (state %q), want %.60q (state %q)", m.ID, got.Body, got.State, m.Body, m.State)
			}
		case IsCorrupt(err):
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), m.ID) {
				t.Fatalf("message %s: corruption error does not name it: %v", m.ID, err)
			}
			damaged[m.ID] = true
		default:
			t.Fatalf("message %s: %v, want the message or ErrCorrupt", m.ID, err)
		}
	}
	byID := map[string]Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	for p := range 3 {
		cursor := ""
		for {
			page, next, err := db.Messages(fmt.Sprint("peer", p), Page{Cursor: cursor, Limit: 50})
			if err != nil {
				if !IsCorrupt(err) {
					t.Fatalf("page of peer%d: %v, want ErrCorrupt", p, err)
				}
				break // a damaged message in the page; the page is refused
			}
			for _, got := range page {
				if want, ok := byID[got.ID]; !ok || !sameMessage(got, want) || got.State != want.State {
					t.Fatalf("page of peer%d shows message %s altered", p, got.ID)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return damaged
}

// verifyDamage runs Verify and returns the ids of the messages it names,
// and everything it reported.
func verifyDamage(t *testing.T, verify func(report func(Damage)) (VerifyStats, error)) (map[string]bool, []Damage, VerifyStats) {
	t.Helper()
	var all []Damage
	st, err := verify(func(d Damage) { all = append(all, d) })
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if st.Damaged != len(all) {
		t.Fatalf("Verify counted %d, reported %d", st.Damaged, len(all))
	}
	ids := map[string]bool{}
	for _, d := range all {
		if d.Kind == KindMessage || d.Kind == KindMessageIndex {
			ids[d.ID] = true
		}
	}
	return ids, all, st
}

// TestFlippedValueLog flips bits at random offsets of the value log of a
// closed store, reopens it, and checks that every message reads back as
// written or is reported damaged, never altered; that each flipped bit
// damages at most the one value it hit (badger would otherwise truncate
// the file at the first); and that Verify names exactly the damaged ones.
func TestFlippedValueLog(t *testing.T) {
	base, msgs := integrityStore(t, 600)
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			dir := copyStore(t, base)
			r := rand.New(rand.NewPCG(seed, 1))
			vlog := storeFiles(t, dir, ".vlog")[0]
			size := fileSize(t, vlog)
			flips := 4
			var offs []int64
			for range flips {
				offs = append(offs, vlogHeaderSize+r.Int64N(size-vlogHeaderSize))
			}
			flipBits(t, vlog, offs, r)
			db, err := Open(context.Background(), Options{Dir: dir, Checks: testChecks})
			if err != nil {
				// Damage the store cannot frame: refused, named.
				var ce *CorruptError
				if !errors.As(err, &ce) || !strings.HasSuffix(vlog, ce.File) {
					t.Fatalf("Open after flips at %v: %v, want a *CorruptError naming %s", offs, err, filepath.Base(vlog))
				}
				t.Logf("flips at %v: Open refused: %v", offs, err)
				return
			}
			defer db.Close()
			damaged := checkReads(t, db, msgs)
			if len(damaged) > flips {
				t.Errorf("%d flipped bits damaged %d messages, want at most one each", flips, len(damaged))
			}
			named, all, st := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) { return db.Verify(context.Background(), report) })
			for id := range damaged {
				if !named[id] {
					t.Errorf("message %s fails to read but Verify does not name it (it named %v)", id, all)
				}
			}
			for id := range named {
				if !damaged[id] {
					t.Errorf("Verify names message %s, which reads back as written", id)
				}
			}
			if st.Kinds[KindMessage] != len(msgs)-len(damaged) && st.Kinds[KindMessage] != len(msgs) {
				t.Errorf("Verify read %d messages of %d", st.Kinds[KindMessage], len(msgs))
			}
			t.Logf("flips at %v: %d messages damaged, Verify: %d entries, %d damaged: %v", offs, len(damaged), st.Entries, len(all), all[:min(len(all), 2)])
		})
	}
}

// TestFlippedTables flips bits in the table file of a closed store: at
// random offsets, and in its footer and index. The store refuses to open
// (badger would skip the damaged block silently, and a compaction would
// drop what follows it), with a *CorruptError naming the file, never a
// panic; Verify names the damaged blocks and the entries they held, and
// checks every other entry.
func TestFlippedTables(t *testing.T) {
	base, msgs := integrityStore(t, 600)
	sst := storeFiles(t, base, ".sst")
	if len(sst) != 1 {
		t.Fatalf("%d table files, want 1", len(sst))
	}
	size := fileSize(t, sst[0])
	cases := map[string][]int64{
		"checksum length": {size - 1},
		"index checksum":  {size - 6},
		"index":           {size - 200},
		"first block":     {10},
	}
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 4 {
		cases[fmt.Sprint("random", i)] = []int64{r.Int64N(size), r.Int64N(size)}
	}
	for name, offs := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyStore(t, base)
			flipBits(t, filepath.Join(dir, dbDirName, filepath.Base(sst[0])), offs, r)
			_, err := Open(context.Background(), Options{Dir: dir})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != filepath.Base(sst[0]) || !IsCorrupt(err) {
				t.Fatalf("Open after flips at %v: %v, want a *CorruptError naming %s", offs, err, filepath.Base(sst[0]))
			}
			if strings.Count(err.Error(), "open store") != 1 {
				t.Errorf("error repeats its operation: %q", err)
			}
			named, all, st := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) {
				return Verify(context.Background(), Options{Dir: dir, Checks: testChecks}, report)
			})
			blocks := 0
			for _, d := range all {
				if d.File == filepath.Base(sst[0]) {
					blocks++
				}
			}
			if blocks == 0 {
				t.Fatalf("Verify does not name %s: %v", filepath.Base(sst[0]), all)
			}
			t.Logf("flips at %v: %v; Verify: %d entries walked (%s), %d messages named, %v", offs, err, st.Entries, st.Partial, len(named), all[:min(len(all), 4)])
		})
	}
	// The store itself is fine: it opens, and every message reads back.
	db := openT(t, copyStore(t, base), nil)
	if damaged := checkReads(t, db, msgs); len(damaged) != 0 {
		t.Fatalf("undamaged store: %d damaged messages", len(damaged))
	}
}

// logEntries frames the entries of a value log file.
func logEntries(t *testing.T, path string) ([]byte, []logEntry) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logEntry
	for off := vlogHeaderSize; ; {
		e, ok := parseLogEntry(b, off)
		if !ok || !e.crcOK {
			break
		}
		out = append(out, e)
		off = e.end
	}
	if len(out) < 100 {
		t.Fatalf("only %d entries in %s", len(out), path)
	}
	return b, out
}

// TestValueLogFraming damages what badger's replay of the newest value
// log depends on besides the CRCs: an entry's flags (one that marks it
// part of a transaction that never ends) and its length. badger would cut
// the file there, and lose every value after it; the store refuses to
// open instead, naming the file, and changes nothing. Damage to an
// entry's copy of its key leaves its value readable. A torn last
// transaction (a crash while writing it) is cut off as badger does, and
// its messages are reported damaged.
func TestValueLogFraming(t *testing.T) {
	base, msgs := integrityStore(t, 600)
	vlogName := filepath.Base(storeFiles(t, base, ".vlog")[0])
	_, entries := logEntries(t, filepath.Join(base, dbDirName, vlogName))
	mid := entries[len(entries)/2]
	cases := map[string]func(path string){
		"transaction flag": func(path string) { xorByte(t, path, int64(mid.off), bitTxn) },
		"key length":       func(path string) { xorByte(t, path, int64(mid.off+2), 0x20) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyStore(t, base)
			path := filepath.Join(dir, dbDirName, vlogName)
			damage(path)
			before := hashDir(t, filepath.Join(dir, dbDirName))
			_, err := Open(context.Background(), Options{Dir: dir})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != vlogName {
				t.Fatalf("Open: %v, want a *CorruptError naming %s", err, vlogName)
			}
			sameDir(t, before, hashDir(t, filepath.Join(dir, dbDirName)))
			_, all, _ := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) {
				return Verify(context.Background(), Options{Dir: dir, Checks: testChecks}, report)
			})
			if len(all) != 1 || all[0].Kind != KindValueLog || all[0].File != vlogName {
				t.Fatalf("Verify reported %v, want the value log", all)
			}
			t.Logf("%v", err)
		})
	}
	t.Run("key bytes", func(t *testing.T) {
		dir := copyStore(t, base)
		xorByte(t, filepath.Join(dir, dbDirName, vlogName), int64(mid.end-4-len(mid.kv)+1), 0x04)
		db := openT(t, dir, nil)
		if damaged := checkReads(t, db, msgs); len(damaged) != 0 {
			t.Fatalf("%d messages damaged; the value itself was intact", len(damaged))
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		dir := copyStore(t, base)
		path := filepath.Join(dir, dbDirName, vlogName)
		last := entries[len(entries)-1]
		if err := os.Truncate(path, int64(last.off+3)); err != nil {
			t.Fatal(err)
		}
		db := openT(t, dir, nil)
		damaged := checkReads(t, db, msgs)
		if len(damaged) == 0 || len(damaged) > 200 {
			t.Fatalf("%d messages damaged by cutting the last transaction, want 1 to 200 (one transaction)", len(damaged))
		}
		named, _, _ := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) { return db.Verify(context.Background(), report) })
		if len(named) != len(damaged) {
			t.Fatalf("Verify names %d messages, %d are damaged", len(named), len(damaged))
		}
	})
}

func xorByte(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// FuzzLogFile feeds arbitrary bytes to the value log framing Open walks
// before badger opens a store (parseLogEntry, resyncLog, txnBreak): they
// must never panic, whatever the file holds.
func FuzzLogFile(f *testing.F) {
	entry := []byte{0, 0, 3, 2, 0, 'k', 'e', 'y', 'v', 'v'}
	entry = binary.BigEndian.AppendUint32(entry, crc32.Checksum(entry, y.CastagnoliCrcTable))
	head := make([]byte, vlogHeaderSize)
	f.Add(append(append(bytes.Clone(head), entry...), entry...))
	f.Add(append(bytes.Clone(head), 0x40, 0, 9, 1, 0))
	f.Add(append(bytes.Clone(head), 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < vlogHeaderSize {
			return
		}
		lf := &logFile{name: "fuzz.vlog", b: b, baseIV: b[8:vlogHeaderSize]}
		var entries []logEntry
		for off := vlogHeaderSize; off < len(b); {
			e, ok := parseLogEntry(b, off)
			if !ok {
				resyncLog(b, off+1)
				break
			}
			if e.end <= off || e.end > len(b) || e.klen > len(e.kv) {
				t.Fatalf("entry at %d framed as %+v", off, e)
			}
			entries = append(entries, e)
			off = e.end
		}
		txnBreak(lf, entries)
	})
}

// TestStartupScansPassOverDamage: the scans the messaging layer runs when
// it starts (the outbox, the queued messages) pass over a damaged entry
// instead of failing, so one damaged entry cannot keep the node from
// starting; Verify names it.
func TestStartupScansPassOverDamage(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, nil)
	env := bytes.Repeat([]byte{'e'}, 2048) // envelopes go to the value log, short bodies do not
	for i, id := range []string{"q1", "q2"} {
		at := t0.Add(time.Duration(i) * time.Second)
		err := db.Update(func(tx *Tx) error {
			return tx.InsertQueued(Message{ID: id, Peer: "p", Direction: DirOut, Body: []byte("hi"), SentAt: at, At: at}, env)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutOutbox(OutboxEntry{ID: "receipt", Peer: "p", Envelope: env, NextAttempt: t0, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	path := storeFiles(t, dir, ".vlog")[0]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var big []logEntry
	for off := vlogHeaderSize; ; {
		e, ok := parseLogEntry(b, off)
		if !ok {
			break
		}
		if len(e.kv) > 2048 {
			big = append(big, e)
		}
		off = e.end
	}
	if len(big) != 3 {
		t.Fatalf("%d large value log entries, want 3 (two queued messages, one outbox entry)", len(big))
	}
	xorByte(t, path, int64(big[0].end-100), 0x01) // q1's queued copy
	xorByte(t, path, int64(big[2].end-100), 0x01) // the outbox entry

	db = openT(t, dir, nil)
	err = db.View(func(tx *Tx) error {
		qs, err := tx.Queued()
		if err != nil || len(qs) != 1 || qs[0].ID != "q2" {
			return fmt.Errorf("Queued = %+v, %v; want q2 alone", qs, err)
		}
		due, err := tx.DueOutbox(t0.Add(time.Hour), 0)
		if err != nil || len(due) != 0 {
			return fmt.Errorf("DueOutbox = %+v, %v; want none", due, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, all, _ := verifyDamage(t, func(report func(Damage)) (VerifyStats, error) { return db.Verify(context.Background(), report) })
	kinds := map[string]bool{}
	for _, d := range all {
		kinds[d.Kind+" "+d.ID] = true
	}
	if !kinds[KindQueuedCopy+" q1"] || !kinds[KindOutbox+" receipt"] {
		t.Fatalf("Verify reported %v, want q1's queued copy and the outbox entry", all)
	}
}
