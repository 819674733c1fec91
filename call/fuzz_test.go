package call

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// FuzzDecodeSignal: the signal decoders never panic, refuse with
// ErrMalformed, agree on the header, and accept only the one canonical
// encoding (what they accept re-encodes to the same bytes).
func FuzzDecodeSignal(f *testing.F) {
	for _, g := range goldenSignals {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Add(mustHex(f, "0807"+"1210"+hexID+"2805"))
	f.Add(signal{typ: sigHangup, id: callID{1}, skipped: laterAdditions}.marshal())
	f.Add(signal{typ: sigHangup, id: callID{1}, skipped: "\x78\x02"}.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, id, herr := decodeHeader(b)
		sig, err := decodeSignal(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if herr != nil && !errors.Is(herr, ErrMalformed) {
				t.Fatalf("header error %v does not wrap ErrMalformed", herr)
			}
			return
		}
		if herr != nil || typ != sig.typ || id != sig.id {
			t.Fatalf("header %v %x %v disagrees with the signal %+v", typ, id, herr, sig)
		}
		if re := sig.marshal(); !bytes.Equal(re, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, re)
		}
	})
}

// FuzzDecodeCredentials: the credential decoder never panics and accepts
// only canonical encodings.
func FuzzDecodeCredentials(f *testing.F) {
	b, _ := hex.DecodeString(goldenCredsHex)
	f.Add(b)
	f.Add(encodeCredentials(goldenCreds)[:20])
	pinned := goldenCreds
	pinned.TLSCertSHA256 = bytes.Repeat([]byte{7}, 32)
	f.Add(encodeCredentials(pinned))
	f.Add([]byte{})
	f.Add(append(encodeCredentials(goldenCreds), laterAdditions...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, skipped, err := decodeCredentialsFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if re := append(encodeCredentials(c), skipped...); !bytes.Equal(re, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, re)
		}
	})
}

// FuzzDecodeTURNRequest: the credential request decoder never panics and
// accepts only the canonical encoding of a canonical account id.
func FuzzDecodeTURNRequest(f *testing.F) {
	b, _ := hex.DecodeString(goldenTURNRequestHex)
	f.Add(b)
	f.Add(b[:10])
	f.Add([]byte{})
	f.Add(append(bytes.Clone(b), 0x88, 0x01, 0x05))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, skipped, err := decodeTURNRequestFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if re := append(encodeTURNRequest(id), skipped...); !bytes.Equal(re, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, re)
		}
	})
}
