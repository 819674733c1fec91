package files

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/network"
)

const rawProtocol = "/callsign-test/raw-file/1.0.0"

// BenchmarkTransfer moves a 64 MiB file between two nodes on loopback TCP:
// fetch is Service.Fetch (request, the sealed bytes to disk, the hash,
// fsync, the rename), raw the same sealed bytes read from the holder's
// disk and written on a bare libp2p stream to a reader that discards them,
// in the same run. -benchtime 5x or so; MB/s is what to compare.
//
//	go test ./files -run '^$' -bench Transfer -benchtime 5x
func BenchmarkTransfer(b *testing.B) {
	tcp := func(c *p2p.HostConfig) { c.Listen = p2ptest.ListenTCP }
	from, to := p2ptest.NewHost(b, tcp), p2ptest.NewHost(b, tcp)
	fromS, err := OpenStore(filepath.Join(b.TempDir(), "from"), 0)
	if err != nil {
		b.Fatal(err)
	}
	toS, err := OpenStore(filepath.Join(b.TempDir(), "to"), 0)
	if err != nil {
		b.Fatal(err)
	}
	fromSv := NewService(Config{Host: from, Store: fromS})
	toSv := NewService(Config{Host: to, Store: toS})
	defer fromSv.Close()
	defer toSv.Close()
	p2ptest.Connect(b, to, from)
	ref, err := fromS.Add(bytes.NewReader(randomBytes(64<<20, 5)), "video.webm", "video/webm")
	if err != nil {
		b.Fatal(err)
	}
	sealed := SealedSize(ref.Size)
	ctx := context.Background()

	b.Run("fetch", func(b *testing.B) {
		b.SetBytes(sealed)
		for b.Loop() {
			b.StopTimer()
			if err := toS.Remove(ref.Hash); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := toSv.Fetch(ctx, from.ID(), ref, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		from.SetStreamHandler(rawProtocol, func(s network.Stream) {
			f, err := os.Open(fromS.path(ref.Hash))
			if err != nil {
				s.Reset()
				return
			}
			defer f.Close()
			io.Copy(s, f)
			s.Close()
		})
		defer from.RemoveStreamHandler(rawProtocol)
		b.SetBytes(sealed)
		for b.Loop() {
			s, err := to.NewStream(ctx, from.ID(), rawProtocol)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, s)
			if err != nil || n != sealed {
				b.Fatalf("raw: %d bytes, %v", n, err)
			}
			s.Close()
		}
	})
}
