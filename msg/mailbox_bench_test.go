package msg

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/mailbox"
)

// BenchmarkMailbox measures, in one run on loopback: direct delivery of
// 1 KiB messages to an online recipient (durable at the recipient), the
// mailbox's deposits of sealed 1 KiB envelopes (durable at the mailbox,
// 256 to a request) and drains with acks, and a recipient's catching up
// on 1000 messages from its mailbox after it starts.
//
//	go test ./msg -run '^$' -bench Mailbox -benchtime 1x
func BenchmarkMailbox(b *testing.B) {
	body := bytes.Repeat([]byte{'m'}, 1024)
	hb := newHubWith(b, mailbox.Config{DepositRate: 1e9, DepositBurst: 1e9, MaxCount: 1 << 30, MaxBytes: 1 << 40})
	w := newWorld()
	mbs := func() []peer.AddrInfo { return []peer.AddrInfo{hb.addr} }
	var stored atomic.Int64
	a := newNode(b, w, nil)
	bob := newNode(b, w, func(c *Config) {
		c.Mailboxes, c.MailboxPoll = mbs, time.Hour
		c.OnEvent = func(e Event) {
			if e.Kind == EventMessage {
				stored.Add(1)
			}
		}
	})
	w.mu.Lock()
	bob.mailboxes = mbs()
	w.mu.Unlock()
	a.start()
	bob.start()
	a.know(bob)
	check.Until(b, 20*time.Second, "Bob registered", func() bool { return hb.srv.Stats().Members == 1 })
	ctx := context.Background()

	const n = 20000
	b.Run("direct-20000", func(b *testing.B) {
		for range b.N {
			stored.Store(0)
			for range n {
				if _, err := a.svc.Send(ctx, bob.id(), body); err != nil {
					b.Fatal(err)
				}
			}
			check.Until(b, 10*time.Minute, "every message stored", func() bool { return stored.Load() >= n })
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	// Sealed 1 KiB frames, as a sender deposits them.
	bundle, err := bob.svc.Bundle()
	if err != nil {
		b.Fatal(err)
	}
	to, err := sealKey(Recipient{Account: bob.acct.Public(), Devices: []identity.DeviceCert{bob.cert}, Bundles: [][]byte{bundle}}, bob.cert.DeviceID())
	if err != nil {
		b.Fatal(err)
	}
	token := mailbox.Token(bob.acct.Public().Bytes(), []byte(hb.h.ID()), mailbox.Day(time.Now()))
	a.host.Peerstore().AddAddrs(hb.h.ID(), hb.h.Addrs(), time.Hour)
	// Deposit n envelopes, then drain and acknowledge them all; b.N rounds.
	envs := make([][]byte, n)
	for i := range envs {
		frame := make([]byte, 1024)
		rand.Read(frame)
		if envs[i], err = mailbox.Seal(to, frame); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("deposit-drain-20000", func(b *testing.B) {
		var dep, drn time.Duration
		for range b.N {
			start := time.Now()
			for i := 0; i < len(envs); i += mailbox.MaxPerDeposit {
				res, err := mailbox.Deposit(ctx, a.host, hb.h.ID(), token, envs[i:min(len(envs), i+mailbox.MaxPerDeposit)])
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r != mailbox.StatusOK {
						b.Fatalf("deposit: %v", r)
					}
				}
			}
			dep += time.Since(start)
			start = time.Now()
			got := 0
			for {
				entries, _, err := mailbox.Drain(ctx, bob.host, hb.h.ID(), 256)
				if err != nil {
					b.Fatal(err)
				}
				if len(entries) == 0 {
					break
				}
				seqs := make([]uint64, len(entries))
				for i, e := range entries {
					seqs[i] = e.Seq
				}
				if _, err := mailbox.Ack(ctx, bob.host, hb.h.ID(), seqs); err != nil {
					b.Fatal(err)
				}
				got += len(entries)
			}
			drn += time.Since(start)
			if got != n {
				b.Fatalf("drained %d of %d", got, n)
			}
		}
		b.ReportMetric(float64(n*b.N)/dep.Seconds(), "deposits/s")
		b.ReportMetric(float64(n*b.N)/drn.Seconds(), "drains/s")
	})
	if w := hb.srv.Stats().Waiting; w != 0 {
		b.Fatalf("%d envelopes left in the mailbox", w)
	}

	// Bob away; Alice's 1000 messages wait at the mailbox; Bob starts:
	// the time to the last one stored.
	b.Run("catch-up-1000", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			bob.stop()
			stored.Store(0)
			for range 1000 {
				if _, err := a.svc.Send(ctx, bob.id(), body); err != nil {
					b.Fatal(err)
				}
			}
			check.Until(b, 5*time.Minute, "1000 messages at the mailbox", func() bool { return hb.srv.Stats().Waiting >= 1000 })
			a.stop()
			b.StartTimer()
			start := time.Now()
			bob.start()
			check.Until(b, 5*time.Minute, "1000 messages at Bob", func() bool { return stored.Load() >= 1000 })
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-last")
			b.StopTimer()
			a.start()
			a.know(bob)
			a.svc.Kick(bob.id())
			check.Until(b, 5*time.Minute, "Alice's outbox empty", func() bool { return len(a.outbox()) == 0 })
			bob.svc.DrainMailboxes()
			check.Until(b, time.Minute, "the mailbox empty", func() bool { return hb.srv.Stats().Waiting == 0 })
		}
	})
}
