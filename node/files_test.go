package node_test

import (
	"bytes"
	"crypto/sha256"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
)

// TestAttachmentResumes is the file test: a 20 MiB file sent
// while the recipient goes offline half way arrives whole and matches its
// hash, the download resuming where it stopped rather than from the start.
// The links are capped at 8 MB/s (mocknet) so that half way lasts.
func TestAttachmentResumes(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Mocknet: true, Bandwidth: 8 << 20,
		Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 4*time.Minute)
	alice, bob := net.Nodes[1], net.Nodes[2]
	// Each is the other's contact, so the file is fetched as it arrives
	// (a stranger's waits until it is opened).
	befriend(t, ctx, alice, bob)
	body := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{20}).Read(body)
	want := sha256.Sum256(body)
	m, err := alice.Client.SendFile(ctx, api.FileUpload{To: "bob", Caption: "the whole take", Name: "take.webm", Type: "video/webm", Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	if m.File == nil || m.File.Name != "take.webm" || m.File.Size != int64(len(body)) || m.File.State != api.FileReady || m.Text != "the whole take" {
		t.Fatalf("sent: %+v %+v", m, m.File)
	}

	// Bob goes offline once a third of it is on his disk.
	parts := func() int64 {
		ps, _ := filepath.Glob(filepath.Join(bob.Dir, "files", "*.part"))
		var n int64
		for _, p := range ps {
			if fi, err := os.Stat(p); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	check.Until(t, 2*time.Minute, "a third of the file at Bob", func() bool { return parts() > int64(len(body))/3 })
	bob = net.Restart(bob)
	half := parts()
	if half <= 0 || half >= int64(len(body)) {
		t.Fatalf("after the restart Bob holds %d of %d bytes", half, len(body))
	}

	// Back online, Bob's node resumes the download by itself, from what
	// it has: the partial file never shrinks (a download started again
	// would truncate it) until the whole file takes its place.
	least := half
	var got bytes.Buffer
	check.Until(t, 2*time.Minute, "the whole file at Bob", func() bool {
		if p := parts(); p > 0 && p < least {
			least = p
		}
		got.Reset()
		_, _, err := bob.Client.File(ctx, "alice", m.ID, &got)
		return err == nil
	})
	if least < half {
		t.Errorf("after the restart the partial file went down to %d bytes from %d: the download started again", least, half)
	}
	if sha256.Sum256(got.Bytes()) != want {
		t.Fatalf("the file at Bob (%d bytes) does not match what Alice sent", got.Len())
	}
	page, err := bob.Client.Messages(ctx, "alice", "", 10)
	if err != nil || len(page.Messages) != 1 || page.Messages[0].File == nil || page.Messages[0].File.State != api.FileReady ||
		page.Messages[0].Text != "the whole take" {
		t.Fatalf("Bob's conversation: %+v %v", page, err)
	}
	if left, _ := filepath.Glob(filepath.Join(bob.Dir, "files", "*.part")); len(left) != 0 {
		t.Errorf("partial downloads left beside the whole file: %v", left)
	}
	// A stranger's file waits until Bob opens it: his node fetches
	// nothing a message request names by itself.
	carol := net.Add(false)
	small := []byte("a small file from someone Bob does not know")
	// Carol's node has just joined: Bob's record may not be found from it
	// at once.
	var cm api.Message
	check.Eventually(t, 2*time.Minute, func() error {
		var err error
		cm, err = carol.Client.SendFile(ctx, api.FileUpload{To: bob.Account().String(), Name: "hello.txt", Type: "text/plain", Body: bytes.NewReader(small)})
		return err
	})
	check.Until(t, 2*time.Minute, "Carol's request at Bob", func() bool {
		reqs, err := bob.Client.Requests(ctx)
		return err == nil && len(reqs) == 1
	})
	held := func() int {
		fs, _ := filepath.Glob(filepath.Join(bob.Dir, "files", "*"))
		return len(fs)
	}
	before := held()
	time.Sleep(time.Second)
	if held() != before {
		t.Errorf("Bob's node fetched a stranger's file by itself")
	}
	if _, _, err := bob.Client.File(ctx, carol.Account().String(), cm.ID, &got); !api.IsCode(err, api.CodeUnavailable) {
		t.Fatalf("opening a stranger's file: %v, want unavailable while it is fetched", err)
	}
	check.Until(t, time.Minute, "the stranger's file after Bob opened it", func() bool {
		got.Reset()
		_, _, err := bob.Client.File(ctx, carol.Account().String(), cm.ID, &got)
		return err == nil && bytes.Equal(got.Bytes(), small)
	})

	// A photo sent without a thumbnail (as the CLI sends it) gets one
	// from the sending node.
	img := image.NewRGBA(image.Rect(0, 0, 400, 300))
	var png1 bytes.Buffer
	if err := png.Encode(&png1, img); err != nil {
		t.Fatal(err)
	}
	pm, err := alice.Client.SendFile(ctx, api.FileUpload{To: "bob", Name: "p.png", Type: "image/png", Body: &png1})
	if err != nil || pm.File == nil || !strings.HasPrefix(pm.File.Thumb, "data:image/jpeg;base64,") {
		t.Errorf("a photo sent without a thumbnail: %+v, %v", pm.File, err)
	}

	// `save` by id alone finds the message in any conversation.
	got.Reset()
	name, typ, err := bob.Client.File(ctx, "", m.ID, &got)
	if err != nil || name != "take.webm" || typ != "application/octet-stream" || got.Len() != len(body) {
		t.Errorf("the file by its id alone: %q %q %d bytes, %v", name, typ, got.Len(), err)
	}
	if _, _, err := bob.Client.File(ctx, "", strings.Repeat("0", 32), &got); !api.IsCode(err, api.CodeNotFound) {
		t.Errorf("a message that is not there: %v", err)
	}
}

// TestAttachmentParked: a file sent while its recipient is offline waits
// at the recipient's mailbox with its message, and the recipient gets it
// whole from there after the sender went offline too.
func TestAttachmentParked(t *testing.T) {
	net := testnet.New(t, 3, testnet.Options{Network: node.Network{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
	ctx := ctxT(t, 4*time.Minute)
	hub, alice, bob := net.Nodes[0], net.Nodes[1], net.Nodes[2]
	befriend(t, ctx, alice, bob)
	check.Until(t, time.Minute, "Bob registered with his mailbox", func() bool {
		st, err := bob.Client.Status(ctx)
		return err == nil && len(st.Mailboxes) > 0 && st.Mailboxes[0].Registered
	})
	net.Stop(bob)

	body := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{4}).Read(body)
	m, err := alice.Client.SendFile(ctx, api.FileUpload{To: "bob", Caption: "for when you're back", Name: "notes.pdf", Type: "application/pdf", Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	// The mailbox holds the whole sealed file, and nothing half.
	parked := func() (whole, part int) {
		ps, _ := filepath.Glob(filepath.Join(hub.Dir, "parked", "*"))
		for _, p := range ps {
			if strings.HasSuffix(p, ".part") {
				part++
			} else if fi, err := os.Stat(p); err == nil && fi.Size() > int64(len(body)) {
				whole++
			}
		}
		return whole, part
	}
	check.Until(t, 2*time.Minute, "the file parked at Bob's mailbox", func() bool { w, p := parked(); return w == 1 && p == 0 })
	if st, err := hub.Client.Status(ctx); err != nil || st.Mailbox == nil || st.Mailbox.Files != 1 || st.Mailbox.FileBytes <= int64(len(body)) {
		t.Fatalf("the mailbox's status: %+v, %v", st.Mailbox, err)
	}
	net.Stop(alice)

	bob = net.Start(bob)
	var got bytes.Buffer
	check.Until(t, 2*time.Minute, "the file at Bob, from his mailbox", func() bool {
		got.Reset()
		_, _, err := bob.Client.File(ctx, "alice", m.ID, &got)
		return err == nil
	})
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(body) {
		t.Fatalf("the file at Bob (%d bytes) does not match what Alice sent", got.Len())
	}
	page, err := bob.Client.Messages(ctx, "alice", "", 10)
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Text != "for when you're back" || page.Messages[0].File == nil ||
		page.Messages[0].File.State != api.FileReady {
		t.Fatalf("Bob's conversation: %+v %v", page, err)
	}
}
