package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt")

// TestKDFVectors fixes each derivation with constant inputs, independent of
// any random source.
func TestKDFVectors(t *testing.T) {
	seq := func(start byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = start + byte(i)
		}
		return b
	}
	sk := kdfPQXDH(seq(0, 4*keySize+32))
	var rk0 rootKey
	copy(rk0.b[:], seq(0x40, keySize))
	rk1, ck := kdfRK(&rk0, seq(0x80, keySize))
	ck1, mk := kdfCK(&ck)
	aead, nonce := mk.aead()
	sealed := aead.Seal(nil, nonce, []byte("golden"), []byte("ad"))
	got := map[string][]byte{
		"kdf_pqxdh":    sk.b[:],
		"kdf_rk.root":  rk1.b[:],
		"kdf_rk.chain": ck.b[:],
		"kdf_ck.chain": ck1.b[:],
		"kdf_ck.msg":   mk.b[:],
		"msg.nonce":    nonce,
		"msg.sealed":   sealed,
	}
	checkGolden(t, "kdf", got)
}

// TestHandshakeVectors fixes the whole key schedule and wire format: with
// deterministic randomness (including crypto/mlkem's, through
// cryptotest.SetGlobalRandom) the root and chain keys and the exact bytes of
// the first messages are pinned.
func TestHandshakeVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 42)
	a, b := newParty(t, 1), newParty(t, 2)
	if err := b.st.GenerateOneTime(b.id, 1, epoch, b.r); err != nil {
		t.Fatal(err)
	}
	bundle := b.st.IssueBundle()
	encBundle, err := MarshalBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	sa, _, err := InitiateSession(a.id, b.pub, bundle, a.r)
	if err != nil {
		t.Fatal(err)
	}
	aRoot, aSend := sa.rk.b, sa.cks.b
	first, err := sa.Encrypt([]byte("first message"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	sb, pt, err := AcceptSession(b.id, b.st, a.pub, first, []byte("ad"), b.r)
	if err != nil || string(pt) != "first message" {
		t.Fatalf("accept = %q, %v", pt, err)
	}
	reply, err := sb.Encrypt([]byte("reply"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustDecrypt(t, sa, reply, "reply")
	second := mustEncrypt(t, sa, "second")
	mustDecrypt(t, sb, second, "second")
	id := sb.ID()
	bundleSum := sha256.Sum256(encBundle)
	got := map[string][]byte{
		"bundle.sha256":      bundleSum[:],
		"session.id":         id[:],
		"initiator.root":     aRoot[:],
		"initiator.send":     aSend[:],
		"first.message":      first,
		"responder.root":     sb.rk.b[:],
		"responder.send":     sb.cks.b[:],
		"responder.recv":     sb.ckr.b[:],
		"reply.message":      reply,
		"second.message":     second,
		"initiator.root.now": sa.rk.b[:],
	}
	checkGolden(t, "handshake", got)
}

const goldenFile = "testdata/golden.txt"

func checkGolden(t *testing.T, group string, got map[string][]byte) {
	t.Helper()
	want := readGolden(t)
	if *update {
		for k, v := range got {
			want[group+"."+k] = hex.EncodeToString(v)
		}
		writeGolden(t, want)
		return
	}
	for k, v := range got {
		w, ok := want[group+"."+k]
		if !ok {
			t.Errorf("%s.%s: no golden value (run with -update once)", group, k)
			continue
		}
		if hex.EncodeToString(v) != w {
			t.Errorf("%s.%s changed:\n got %x\nwant %s", group, k, v, w)
		}
	}
}

func readGolden(t *testing.T) map[string]string {
	t.Helper()
	m, err := parseGolden()
	if os.IsNotExist(err) && *update {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parseGolden() (map[string]string, error) {
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

func writeGolden(t *testing.T, m map[string]string) {
	t.Helper()
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&buf, "%s %s\n", k, m[k])
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
