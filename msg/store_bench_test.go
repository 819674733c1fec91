package msg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/cputime"
	"github.com/callsign/callsign/store"
)

// BenchmarkDeliveryUpdate measures what the messaging layer does per
// outgoing message: session state + a 1 KiB message + the outbox entry
// holding its sealed envelope, in one Update on an encrypted on-disk store.
func BenchmarkDeliveryUpdate(b *testing.B) {
	db, err := store.Open(context.Background(), store.Options{Dir: b.TempDir()})
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
	defer cputime.PerOp(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			id := strconv.FormatInt(i, 10)
			peer := fmt.Sprint("peer", i%16)
			err := db.Update(func(tx *store.Tx) error {
				d := In(tx)
				if err := d.PutSession(peer, testDev, state); err != nil {
					return err
				}
				now := time.Now()
				if err := d.PutMessage(Message{ID: id, Peer: peer, Direction: DirOut, Seq: uint64(i), Body: body, SentAt: now, At: now}); err != nil {
					return err
				}
				return d.PutOutbox(OutboxEntry{ID: id, Peer: peer, Envelope: env, NextAttempt: now, CreatedAt: now})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
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

// BenchmarkReadMessages reads from a store of 20,000 messages (half of
// them 1 KiB, in the value log), once the caches are warm: "get" reads
// one message by id (its index entry, then the message), "page" reads a
// page of 50 messages of one conversation, newest first.
func BenchmarkReadMessages(b *testing.B) {
	dir := benchStore(b, 10_000)
	sdb, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer sdb.Close()
	db := testDB{sdb}
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		defer cputime.PerOp(b)()
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
		defer cputime.PerOp(b)()
		i := 0
		for b.Loop() {
			if _, _, err := db.Messages(fmt.Sprint("peer", i%16), Page{Limit: 50, Newest: true}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// benchStore writes n messages with 1 KiB bodies (value log) and n with
// 64-byte bodies (inline in the tables) over 16 conversations, in Updates
// of 100, and closes the store.
func benchStore(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	long, short := bytes.Repeat([]byte{'m'}, 1024), bytes.Repeat([]byte{'s'}, 64)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2*n; i += 100 {
		err := db.Update(func(tx *store.Tx) error {
			d := In(tx)
			for j := i; j < min(i+100, 2*n); j++ {
				at := t0.Add(time.Duration(j) * time.Millisecond)
				body := long
				if j%2 == 1 {
					body = short
				}
				m := Message{ID: fmt.Sprint("m", j), Peer: fmt.Sprint("peer", j%16), Direction: DirIn, Seq: uint64(j), Body: body, SentAt: at, At: at, State: "received"}
				if err := d.PutMessage(m); err != nil {
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
