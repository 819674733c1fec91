package msg

import (
	"bytes"
	"testing"
)

// FuzzTypingSignal: any bytes told to be a typing signal decode or fail,
// and a decoded one encodes back to its core; call and addresses signals
// are never taken for one.
func FuzzTypingSignal(f *testing.F) {
	f.Add(TypingSignal(true))
	f.Add(TypingSignal(false))
	f.Add([]byte{0x08, 0x01}) // a call signal's first field
	f.Add([]byte{0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if !IsTypingSignal(b) {
			return
		}
		on, err := ParseTypingSignal(b)
		if err != nil {
			return
		}
		if len(b) == 3 && !bytes.Equal(TypingSignal(on), b) {
			t.Fatalf("%x decodes to %v, which encodes to %x", b, on, TypingSignal(on))
		}
	})
}

func TestTypingSignal(t *testing.T) {
	for _, on := range []bool{true, false} {
		b := TypingSignal(on)
		if !IsTypingSignal(b) {
			t.Fatalf("%x not taken for a typing signal", b)
		}
		if got, err := ParseTypingSignal(b); err != nil || got != on {
			t.Fatalf("%x: %v %v, want %v", b, got, err, on)
		}
	}
	for _, b := range [][]byte{{0x08, 0x01}, {0x82, 0x01, 0x00}, {0x90, 0x01, 0x03}, {0x90, 0x01, 0x00}, nil} {
		if IsTypingSignal(b) {
			if _, err := ParseTypingSignal(b); err == nil {
				t.Fatalf("%x decoded as a typing signal", b)
			}
		}
	}
}
