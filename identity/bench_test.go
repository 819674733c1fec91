package identity

import (
	"context"
	"testing"
)

// BenchmarkVerifyHandlePoW is what every DHT node pays per handle record it stores or reads.
func BenchmarkVerifyHandlePoW(b *testing.B) {
	owner := seedKey(b, "alice").Public()
	var p PoWParams
	nonce, err := SolveHandlePoW(context.Background(), p, "alexander", owner)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyHandlePoW(p, "alexander", owner, nonce) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkSolveHandlePoW is what claiming a name costs: default parameters, names of
// 8+ runes (6 bits) and of 6 runes (8 bits).
func BenchmarkSolveHandlePoW(b *testing.B) {
	for _, name := range []string{"alexander", "abcdef"} {
		b.Run(name, func(b *testing.B) {
			var p PoWParams
			i, attempts := 0, uint64(0)
			for b.Loop() {
				owner := seedKey(b, string(rune(i))).Public() // a fresh owner each time: fresh luck
				i++
				n, err := SolveHandlePoW(context.Background(), p, name, owner)
				if err != nil {
					b.Fatal(err)
				}
				attempts += n + 1
			}
			// Solve time is geometric: report attempts so luck and speed can be told apart.
			b.ReportMetric(float64(attempts)/float64(i), "attempts/op")
		})
	}
}

// BenchmarkSignatureVerify is the baseline: one Ed25519 signature check, the other per-record cost.
func BenchmarkSignatureVerify(b *testing.B) {
	k := seedKey(b, "alice")
	msg := make([]byte, 200)
	sig := k.Sign(LabelHandleRecord, msg)
	for b.Loop() {
		if !k.Public().Verify(LabelHandleRecord, msg, sig) {
			b.Fatal("bad")
		}
	}
}

func BenchmarkDeviceCertVerify(b *testing.B) {
	c := testCert(b)
	enc := c.Marshal()
	b.ReportAllocs()
	for b.Loop() {
		d, err := UnmarshalDeviceCert(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Verify(certCreated); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeHandle(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		n, err := NormalizeHandle("@Alexander.the_Great")
		if err != nil {
			b.Fatal(err)
		}
		HandleKey(n)
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	x, y := seedKey(b, "alice").Public(), seedKey(b, "bob").Public()
	for b.Loop() {
		SafetyNumber(x, y)
	}
}
