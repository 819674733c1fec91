package identity

import (
	"context"
	"errors"
	"testing"
)

func TestPoWBits(t *testing.T) {
	var def PoWParams
	cases := []struct {
		p    PoWParams
		name string
		want int
	}{
		// The network's defaults, stated as numbers: lowering them makes
		// squatting cheaper and must show up here (and in the docs' 1.3 s).
		{def, "alexander", 6},
		{def, "abcdefgh", 6},
		{def, "abcdefg", 7},
		{def, "abc", 11},
		{def, "田中さん", 10}, // runes, not bytes
		{PoWParams{BaseBits: 10, ShortExtra: 3}, "abc", 25},
		{PoWParams{BaseBits: -1, ShortExtra: -1}, "abc", 0},
		{PoWParams{BaseBits: 100}, "abc", 64},
		{TestPoW, "alexander", 1},
		{TestPoW, "abc", 6},
	}
	if d := def.withDefaults(); d.MemoryKiB != 16*1024 || d.Passes != 1 {
		t.Errorf("default argon2id cost %d KiB × %d passes, want 16 MiB × 1", d.MemoryKiB, d.Passes)
	}
	for _, tc := range cases {
		if got := tc.p.Bits(tc.name); got != tc.want {
			t.Errorf("%+v.Bits(%q) = %d, want %d", tc.p, tc.name, got, tc.want)
		}
	}
}

func TestHandlePoW(t *testing.T) {
	ctx := context.Background()
	alice, bob := seedKey(t, "alice").Public(), seedKey(t, "bob").Public()
	p := PoWParams{MemoryKiB: 64, BaseBits: 8, ShortExtra: 1}
	nonce, err := SolveHandlePoW(ctx, p, "alexander", alice)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyHandlePoW(p, "alexander", alice, nonce) {
		t.Fatal("solved proof of work does not verify")
	}
	// With 8 bits, a proof for one (name, owner) verifies for another with probability 1/256;
	// the fixed keys and names here are checked not to be such accidents.
	if VerifyHandlePoW(p, "alexander", bob, nonce) {
		t.Error("proof verified for another owner")
	}
	if VerifyHandlePoW(p, "alexandra", alice, nonce) {
		t.Error("proof verified for another name")
	}
	if VerifyHandlePoW(PoWParams{MemoryKiB: 128, BaseBits: 8}, "alexander", alice, nonce) {
		t.Error("proof verified under other parameters")
	}
	// Nonces below the solution failed (the solver searches upward from 0).
	for n := range nonce {
		if VerifyHandlePoW(p, "alexander", alice, n) {
			t.Fatalf("nonce %d verifies but the solver returned %d", n, nonce)
		}
	}
}

// TestHandlePoWShortNamesCostMore: over many owners, short names need more attempts.
func TestHandlePoWShortNamesCostMore(t *testing.T) {
	ctx := context.Background()
	p := PoWParams{MemoryKiB: 8, BaseBits: 2, ShortExtra: 1} // 3 runes: 7 bits, 8+ runes: 2 bits
	var short, long uint64
	for i := range 24 {
		owner := seedKey(t, string(rune('a'+i))).Public()
		ns, err := SolveHandlePoW(ctx, p, "abc", owner)
		if err != nil {
			t.Fatal(err)
		}
		nl, err := SolveHandlePoW(ctx, p, "abcdefgh", owner)
		if err != nil {
			t.Fatal(err)
		}
		if !VerifyHandlePoW(p, "abc", owner, ns) || !VerifyHandlePoW(p, "abcdefgh", owner, nl) {
			t.Fatal("solution does not verify")
		}
		short += ns + 1
		long += nl + 1
	}
	// Expected 2^7 vs 2^2 attempts each; require at least an 8x gap in total.
	if short < 8*long {
		t.Fatalf("short names took %d attempts in total, long names %d: want short ≫ long", short, long)
	}
}

func TestSolveHandlePoWCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := SolveHandlePoW(ctx, PoWParams{MemoryKiB: 8, BaseBits: 64}, "alice", seedKey(t, "alice").Public())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
