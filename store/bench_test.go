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
)

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
