package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/cputime"
)

// BenchmarkIdleMemory opens a fresh encrypted store and reports the heap and
// RSS it holds while idle.
func BenchmarkIdleMemory(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rss0 := rssBytes()
		db, err := Open(context.Background(), Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		db.PutSetting("x", []byte("y"))
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rssBytes()-rss0)/(1<<20), "rss-MiB")
		db.Close()
	}
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// benchStore writes n messages with 1 KiB bodies (value log) and n with
// 64-byte bodies (inline in the tables) over 16 conversations, in Updates
// of 100, and closes the store.
func benchStore(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	long, short := bytes.Repeat([]byte{'m'}, 1024), bytes.Repeat([]byte{'s'}, 64)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2*n; i += 100 {
		err := db.Update(func(tx *Tx) error {
			for j := i; j < min(i+100, 2*n); j++ {
				at := t0.Add(time.Duration(j) * time.Millisecond)
				body := long
				if j%2 == 1 {
					body = short
				}
				m := Message{ID: fmt.Sprint("m", j), Peer: fmt.Sprint("peer", j%16), Direction: DirIn, Seq: uint64(j), Body: body, SentAt: at, At: at, State: "received"}
				if err := tx.PutMessage(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkOpen opens and closes a store of 2 × 25,000 messages (25,000 of
// 1 KiB in the value log), reporting what Open costs beyond badger's own
// work; since schema 7 that includes checking every table block and the
// newest value log file (store/files.go).
func BenchmarkOpen(b *testing.B) {
	dir := benchStore(b, 25_000)
	b.ResetTimer()
	defer cputime.PerOp(b)()
	for range b.N {
		db, err := Open(context.Background(), Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal seals and opens one 1 KiB value (seal.go), what schema 7
// adds to every value written and read.
func BenchmarkSeal(b *testing.B) {
	s, err := newSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	k := []byte("msg/cs1qexampleaccountidexampleaccountid\x00\x00\x00\x00\x00\x00\x00\x00\x010123456789abcdef")
	v := bytes.Repeat([]byte{'m'}, 1024)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	defer cputime.PerOp(b)()
	for b.Loop() {
		sv := s.seal(k, v)
		if _, err := s.open(nil, k, sv); err != nil {
			b.Fatal(err)
		}
	}
}
