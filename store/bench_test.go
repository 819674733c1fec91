package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/cputime"
)

// cpuPerOp reports the process's CPU time per operation (badger's
// goroutines included): on a shared, loaded machine wall time mostly
// measures waiting for a core. Call the result when the timed part ends.
func cpuPerOp(b *testing.B) func() {
	start := cputime.Process()
	return func() {
		if d := cputime.Process() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkDeliveryUpdate measures what the messaging layer does per
// outgoing message: session state + a 1 KiB message + the outbox entry
// holding its sealed envelope, in one Update on an encrypted on-disk store.
func BenchmarkDeliveryUpdate(b *testing.B) {
	db, err := Open(context.Background(), Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := bytes.Repeat([]byte{'m'}, 1024)
	env := bytes.Repeat([]byte{'e'}, 1024+200)
	state := bytes.Repeat([]byte{'s'}, 512)
	var n atomic.Int64
	b.SetBytes(1024)
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			id := strconv.FormatInt(i, 10)
			peer := fmt.Sprint("peer", i%16)
			err := db.Update(func(tx *Tx) error {
				if err := tx.PutSession(peer, state); err != nil {
					return err
				}
				now := time.Now()
				if err := tx.PutMessage(Message{ID: id, Peer: peer, Direction: DirOut, Seq: uint64(i), Body: body, SentAt: now, At: now}); err != nil {
					return err
				}
				return tx.PutOutbox(OutboxEntry{ID: id, Peer: peer, Envelope: env, NextAttempt: now, CreatedAt: now})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

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

// BenchmarkMessageCodec encodes and decodes a 1 KiB Message in the binary
// form (schema 2) beside the JSON form schema 1 used, in the same run.
func BenchmarkMessageCodec(b *testing.B) {
	now := time.Now()
	m := Message{ID: "0123456789abcdef0123456789abcdef", Peer: "cs1qexampleaccountidexampleaccountid", Direction: DirOut,
		Seq: 1234, Body: bytes.Repeat([]byte{'m'}, 1024), SentAt: now, At: now, State: "delivered"}
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := marshalMessage(&m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := unmarshalMessage(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			var out Message
			if err := json.Unmarshal(v, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
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

// BenchmarkReadMessages reads from a store of 20,000 messages (half of
// them 1 KiB, in the value log), once the caches are warm: "get" reads
// one message by id (its index entry, then the message), "page" reads a
// page of 50 messages of one conversation, newest first.
func BenchmarkReadMessages(b *testing.B) {
	dir := benchStore(b, 10_000)
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			j := i * 7919 % 20_000
			if _, err := db.Message(fmt.Sprint("peer", j%16), fmt.Sprint("m", j)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("page", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			if _, _, err := db.Messages(fmt.Sprint("peer", i%16), Page{Limit: 50, Newest: true}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkOpen opens and closes a store of 2 × 25,000 messages (25,000 of
// 1 KiB in the value log), reporting what Open costs beyond badger's own
// work; since schema 7 that includes checking every table block and the
// newest value log file (store/files.go).
func BenchmarkOpen(b *testing.B) {
	dir := benchStore(b, 25_000)
	b.ResetTimer()
	defer cpuPerOp(b)()
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
	defer cpuPerOp(b)()
	for b.Loop() {
		sv := s.seal(k, v)
		if _, err := s.open(nil, k, sv); err != nil {
			b.Fatal(err)
		}
	}
}
