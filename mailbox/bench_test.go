package mailbox

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/callsign/callsign/store"
)

// BenchmarkMembers fills a mailbox with 1000 members and 100 sealed 1 KiB
// envelopes waiting for each (deposited over the wire, 100 to a request),
// restarts it, and reports the disk it takes and the process's memory
// with it loaded (RSS, and the Go heap in use after a GC, before the
// fill and after the restart).
//
//	go test ./mailbox -run '^$' -bench Members -benchtime 1x
func BenchmarkMembers(b *testing.B) {
	const members, per = 1000, 100
	for range b.N {
		runtime.GC()
		heap0, rss0 := memNow()
		bx := newBox(b, func(c *Config) { c.DepositRate, c.DepositBurst = 1e9, 1e9 })
		accts := make([][]byte, members)
		err := bx.db.Update(func(tx *store.Tx) error {
			for i := range accts {
				k, err := identity.GenerateAccountKey(nil)
				if err != nil {
					return err
				}
				accts[i] = k.Public().Bytes()
				if err := tx.PutMailboxMember(store.MailboxMember{Account: accts[i], Peers: [][]byte{[]byte(peer.ID("p" + strconv.Itoa(i)))}, Registered: time.Now(), Next: 1}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		bx.close()
		bx.open() // load the members
		sender := p2ptest.NewHost(b, func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP })
		sender.Peerstore().AddAddrs(bx.h.ID(), bx.h.Addrs(), time.Hour)
		env := make([]byte, 1024+SealOverhead)
		start := time.Now()
		for _, a := range accts {
			envs := make([][]byte, per)
			for j := range envs {
				rand.Read(env)
				env[0] = sealV2
				envs[j] = append([]byte(nil), env...)
			}
			if _, err := Deposit(context.Background(), sender, bx.h.ID(), Token(a, []byte(bx.h.ID()), Day(time.Now())), envs); err != nil {
				b.Fatal(err)
			}
		}
		fill := time.Since(start)
		bx.close()
		start = time.Now()
		bx.open()
		load := time.Since(start)
		if st := bx.srv.Stats(); st.Members != members || st.Waiting != members*per {
			b.Fatalf("the mailbox holds %+v", st)
		}
		runtime.GC()
		heap1, rss1 := memNow()
		b.ReportMetric(float64(dirSize(bx.dir))/(1<<20), "disk-MiB")
		b.ReportMetric(float64(rss1)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(rss0)/(1<<20), "rss-before-MiB")
		b.ReportMetric(float64(heap1-heap0)/(1<<20), "heap-MiB")
		b.ReportMetric(fill.Seconds(), "fill-s")
		b.ReportMetric(float64(load.Milliseconds()), "restart-ms")
	}
}

func memNow() (heap, rss uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			rss = kb << 10
		}
	}
	return ms.HeapInuse, rss
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
