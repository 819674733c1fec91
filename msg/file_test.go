package msg

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callsign/callsign/internal/check"
)

// TestSendFile: a text carrying an attachment's reference reaches the
// recipient's devices and the sender's siblings with the reference and its
// caption (an empty caption included), survives the store, and one too
// large is refused before it is queued.
func TestSendFile(t *testing.T) {
	alice, b := threeDevices(t)
	introduce(alice)
	// Device 2 was started after the others were linked: it knows them.
	a1, a2 := alice[1], alice[0]
	ref := bytes.Repeat([]byte{0xab}, 17<<10) // a reference with a thumbnail
	for _, caption := range []string{"the photo", ""} {
		m, err := a1.svc.SendFile(context.Background(), b.id(), []byte(caption), ref)
		if err != nil {
			t.Fatal(err)
		}
		check.Until(t, 20*time.Second, "the attachment at Bob and on Alice's other device", func() bool {
			got, err1 := b.db.Message(string(a1.id()), m.ID)
			cp, err2 := a2.db.Message(string(b.id()), m.ID)
			return err1 == nil && err2 == nil && bytes.Equal(got.File, ref) && bytes.Equal(cp.File, ref) &&
				string(got.Body) == caption && string(cp.Body) == caption && cp.Direction == DirOut
		})
	}
	if _, err := a1.svc.SendFile(context.Background(), b.id(), []byte("x"), make([]byte, MaxFileRef+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a reference over MaxFileRef: %v, want ErrTooLarge", err)
	}
	if _, err := a1.svc.SendFile(context.Background(), b.id(), make([]byte, DefaultMaxMessage-len(ref)), ref); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a caption and reference over the limit together: %v, want ErrTooLarge", err)
	}
}
