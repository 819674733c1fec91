package msg

import (
	"fmt"
	"testing"
	"time"

	"github.com/callsign/callsign/store"
)

// benchHistory is a history the size of a busy year: 10,000 messages of
// 200 bytes in 20 conversations.
const (
	benchConvs = 20
	benchMsgs  = 10000
)

func fillHistory(b *testing.B, db testDB) {
	b.Helper()
	body := make([]byte, 200)
	for c := range benchConvs {
		peer := fmt.Sprintf("csa1peer%02d", c)
		err := db.Update(func(tx *store.Tx) error {
			d := In(tx)
			if err := d.PutConversation(Conversation{Peer: peer, LastAt: t0}); err != nil {
				return err
			}
			for i := range benchMsgs / benchConvs {
				m := Message{ID: fmt.Sprintf("m%05d", i), Peer: peer, Direction: DirIn, Seq: uint64(i), Body: body,
					SentAt: t0, At: t0.Add(time.Duration(i) * time.Second), State: StateRead}
				if err := d.InsertMessage(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistory: what a backup with messages adds, per message, on
// real badger files: exporting the history (read and encode every
// message) beside paging through it as the app does, and importing it
// (decode, check, dedup, write; 512 a transaction, as a restore) beside
// inserting the same messages directly.
func BenchmarkHistory(b *testing.B) {
	src := openDB(b, b.TempDir())
	fillHistory(b, src)
	var items []historyItem
	err := src.View(func(tx *store.Tx) error {
		return ExportHistory(tx, func(kind byte, body []byte) error {
			items = append(items, historyItem{kind, append([]byte(nil), body...)})
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	perMsg := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchMsgs)/1e3, "µs/msg")
		b.ReportMetric(0, "ns/op")
	}
	size := 0
	for _, it := range items {
		size += 5 + len(it.body) // a backup item: kind, length, body
	}
	b.Run("export", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := src.View(func(tx *store.Tx) error {
				return ExportHistory(tx, func(byte, []byte) error { n++; return nil })
			}); err != nil || n != benchConvs+benchMsgs {
				b.Fatal(n, err)
			}
		}
		perMsg(b)
		b.ReportMetric(float64(size)/benchMsgs, "B/msg")
	})
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := src.View(func(tx *store.Tx) error {
				d := In(tx)
				for c := range benchConvs {
					p := Page{Limit: maxPageLimit}
					for {
						ms, next, err := d.Messages(fmt.Sprintf("csa1peer%02d", c), p)
						if err != nil {
							return err
						}
						n += len(ms)
						if next == "" {
							break
						}
						p.Cursor = next
					}
				}
				return nil
			}); err != nil || n != benchMsgs {
				b.Fatal(n, err)
			}
		}
		perMsg(b)
	})
	importBatches := func(b *testing.B, put func(tx *store.Tx, it historyItem) error) {
		for b.Loop() {
			b.StopTimer()
			dst := openDB(b, b.TempDir())
			b.StartTimer()
			for i := 0; i < len(items); i += 512 {
				batch := items[i:min(i+512, len(items))]
				if err := dst.Update(func(tx *store.Tx) error {
					for _, it := range batch {
						if err := put(tx, it); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			dst.Close()
			b.StartTimer()
		}
		perMsg(b)
	}
	b.Run("import", func(b *testing.B) {
		importBatches(b, func(tx *store.Tx, it historyItem) error { return ImportHistory(tx, it.kind, it.body) })
	})
	b.Run("insert", func(b *testing.B) {
		importBatches(b, func(tx *store.Tx, it historyItem) error {
			d := In(tx)
			if it.kind == store.PortableConversation {
				c, err := unmarshalConversation(it.body)
				if err != nil {
					return err
				}
				return d.PutConversation(c)
			}
			m, err := unmarshalMessage(it.body)
			if err != nil {
				return err
			}
			return d.InsertMessage(m)
		})
	})
}
