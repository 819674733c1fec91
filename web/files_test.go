package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/node"
	"github.com/callsign/callsign/web"
)

// TestAttachments: Alice sends Bob a photo, a voice note recorded from the
// microphone and a text file from her page; Bob's page shows the photo
// (the file's own pixels, not only its thumbnail), plays the voice note
// and saves the file with its bytes. A file over the node's limit is
// refused in Alice's bubble, saying why.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Bob's view
// of the conversation there as chat-attachments-desktop.png.
// claimAndBefriend claims @alice and @bob for the two nodes and makes each
// the other's contact, "Alice" and "Bob", by handle: the start of the
// tests of two people in one conversation.
func claimAndBefriend(t *testing.T, ctx context.Context, alice, bob *testnet.Node) {
	t.Helper()
	for nd, name := range map[*testnet.Node]string{alice: "alice", bob: "bob"} {
		if c, err := nd.Client.Claim(ctx, name); err != nil || c.Status != "claimed" {
			t.Fatalf("claim @%s: %+v, %v", name, c, err)
		}
	}
	if _, err := alice.Client.AddContact(ctx, "bob", "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Client.AddContact(ctx, "alice", "Alice"); err != nil {
		t.Fatal(err)
	}
}

func TestAttachments(t *testing.T) {
	const limit = 1 << 20
	n := testnet.New(t, 3, testnet.Options{Web: web.FS(), Configure: func(c *node.Config) { c.FileLimit = limit }})
	alice, bob := n.Nodes[1], n.Nodes[2]
	ctx := ctxT(t, 4*time.Minute)
	claimAndBefriend(t, ctx, alice, bob)
	if _, err := alice.Client.Send(ctx, "Bob", "some files for you"); err != nil {
		t.Fatal(err)
	}
	// The "file" events Bob's node sends as it fetches what Alice sends.
	fileEvents := watchFiles(t, ctx, bob)

	dir := t.TempDir()
	photo := filepath.Join(dir, "harbour.png")
	writeFile(t, photo, picture(t, 320, 240))
	const notes = "Thursday: slides, budget, the harbour museum.\n"
	notesPath := filepath.Join(dir, "notes.txt")
	writeFile(t, notesPath, []byte(notes))
	big := filepath.Join(dir, "big.bin")
	writeFile(t, big, bytes.Repeat([]byte{7}, limit+limit/2))

	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	for _, tab := range []*browser.Tab{a, b} {
		tab.GrantNotifications()
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // files cross between two nodes on a busy machine
		tab.ClickLike("link", "some files for you")
		tab.WaitJS("the conversation open", `document.getElementById("attach") !== null`)
	}

	// (a) A photo with a caption, picked with the paper clip.
	a.Click("button", "Attach a file")
	attach(t, a, photo)
	a.WaitText("harbour.png") // in the strip of files to send
	a.Fill("Message", "The harbour this morning")
	a.Click("button", "Send")
	a.WaitJS("alice's photo sent", `(() => { const li = document.querySelector(".msg.out:not([data-id^=tmp-]) img.file-image"); return li && li.naturalWidth === 320; })()`)
	img := lastFile(t, ctx, bob, "alice", "image/png")
	if img.Text != "The harbour this morning" || img.File.Name != "harbour.png" || img.File.Size != int64(len(picture(t, 320, 240))) {
		t.Errorf("the photo at bob's node: %q %+v", img.Text, *img.File)
	}
	// The thumbnail, made in alice's page, travelled with it.
	if w, h := thumbSize(t, img.File.Thumb); max(w, h) != 160 {
		t.Errorf("the photo's thumbnail is %d×%d, want its longest side 160 px", w, h)
	}
	b.WaitJS("the photo itself in bob's page", fmt.Sprintf(`(() => {
		const i = document.querySelector('.msg.in[data-id=%q] img.file-image');
		return i && i.src.startsWith("blob:") && i.complete && i.naturalWidth === 320 && i.naturalHeight === 240;
	})()`, img.ID))

	// A click shows it large, over the page.
	b.Click("button", "Open the photo harbour.png")
	b.WaitJS("the photo large", `(() => { const i = document.querySelector("[role=dialog] img"); return i && i.naturalWidth === 320 && i.getBoundingClientRect().width >= 320; })()`)
	b.Press("Escape")
	b.WaitJS("the large photo closed", `document.querySelector("[role=dialog]") === null`)

	// (b) A voice note of two seconds from the (fake) microphone.
	a.Click("button", "Record a voice note")
	a.WaitJS("two seconds recorded", `(document.querySelector(".rec-time") || {}).textContent === "00:02"`)
	a.Click("button", "Send the voice note")
	voice := lastFile(t, ctx, bob, "alice", "audio/webm")
	if f := voice.File; f.Name != "voice-note.webm" || f.DurationMS < 1800 || f.DurationMS > 6000 || f.Size < 1000 {
		t.Errorf("the voice note at bob's node: %+v", *f)
	}
	sel := fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] audio.file-audio')`, voice.ID)
	b.WaitJS("the voice note loaded in bob's page, its length known", `(() => { const a = `+sel+`;
		return a && a.src.startsWith("blob:") && a.readyState >= 1 && Number.isFinite(a.duration) && a.duration > 1.5; })()`)
	if got := browser.Eval[string](b, fmt.Sprintf(`(() => { const b = document.querySelector('.msg.in[data-id=%q] .bubble'); return b.querySelector(".file-sub").textContent; })()`, voice.ID)); got != "00:02" && got != "00:03" {
		t.Errorf("the voice note's length shows as %q, want 00:02", got)
	}
	if got := browser.Eval[string](b, sel+`.play().then(() => "playing", (e) => String(e))`); got != "playing" {
		t.Fatalf("play the voice note: %s", got)
	}
	b.WaitJS("the voice note playing", sel+`.currentTime > 0.3`)
	browser.Eval[bool](b, `(`+sel+`.pause(), true)`)

	// (c) A text file with a caption: a chip with its name and size, and
	// the download button saves its bytes.
	a.Fill("Message", "meeting notes")
	attach(t, a, notesPath)
	a.WaitText("notes.txt")
	a.Press("Enter")
	txt := lastFile(t, ctx, bob, "alice", "text/plain")
	if txt.Text != "meeting notes" || txt.File.Name != "notes.txt" {
		t.Errorf("the text file at bob's node: %q %+v", txt.Text, *txt.File)
	}
	chip := fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] .file-chip')`, txt.ID)
	// (Bob's node fetches it by itself: the chip's "Downloading…" goes.)
	b.WaitJS("the file's chip in bob's page, fetched", chip+`.querySelector(".file-name").textContent === "notes.txt" && `+chip+`.querySelector(".file-status").hidden`)
	if got := browser.Eval[string](b, chip+`.textContent`); !strings.Contains(got, fmt.Sprintf("%d B", len(notes))) {
		t.Errorf("the chip reads %q: no size", got)
	}
	if got := browser.Eval[string](b, fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] .text').textContent`, txt.ID)); got != "meeting notes" {
		t.Errorf("the caption reads %q", got)
	}
	// What a click on a download link saves: the page's CSP lets nothing
	// fetch a blob: URL back, so the Blobs are kept as they get their URLs.
	browser.Eval[bool](b, `(() => {
		window.saved = [];
		const blobs = new Map(), make = URL.createObjectURL;
		URL.createObjectURL = (blob) => { const u = make(blob); blobs.set(u, blob); return u; };
		HTMLAnchorElement.prototype.click = function () {
			const name = this.download, blob = blobs.get(this.href);
			if (blob) blob.text().then((text) => window.saved.push({ name, text }));
		};
		return true;
	})()`)
	b.Click("button", "Download notes.txt")
	b.WaitJS("notes.txt saved with its bytes", fmt.Sprintf(`window.saved.length === 1 && window.saved[0].name === "notes.txt" && window.saved[0].text === %q`, notes))

	// Files dropped on the conversation, or an image pasted into the
	// composer, wait in the strip like picked ones; Escape and Cancel
	// put them away.
	const staged = `[...document.querySelectorAll(".staged-name")].map((e) => e.textContent).join(",")`
	browser.Eval[bool](a, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(["dropped"], "dropped.txt", { type: "text/plain" }));
		const chat = document.querySelector(".chat");
		chat.dispatchEvent(new DragEvent("dragenter", { dataTransfer: dt, bubbles: true, cancelable: true }));
		chat.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	a.WaitJS("the dropped file waiting to be sent", staged+` === "dropped.txt"`)
	a.Press("Escape")
	a.WaitJS("the strip put away", staged+` === "" && document.querySelector(".chat") !== null`)
	browser.Eval[bool](a, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array([137, 80, 78, 71])], "image.png", { type: "image/png" }));
		document.getElementById("composer").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	a.WaitJS("the pasted image waiting to be sent", staged+` === "image.png"`)
	a.Click("button", "Cancel")
	a.WaitJS("the strip put away", staged+` === ""`)

	// (d) Over the node's limit: refused, and the bubble says why.
	attach(t, a, big)
	a.WaitText("big.bin")
	a.Click("button", "Send")
	a.WaitJS("the refusal in alice's bubble", `(() => {
		const e = [...document.querySelectorAll(".msg.out .msg-error")].find((e) => e.closest(".msg").querySelector(".file-chip .file-name").textContent === "big.bin");
		return e && e.textContent.includes("This file is over the 1 MiB limit.") && e.textContent.includes("Send again");
	})()`)

	// Bob's node fetched each file and said so on the event stream.
	check.Eventually(t, 10*time.Second, func() error {
		for _, m := range []api.Message{img, voice, txt} {
			if st := fileEvents(m.ID); st != api.FileReady {
				return fmt.Errorf("the last file event of %s (%s) at bob's node: %q, want %q", m.ID, m.File.Name, st, api.FileReady)
			}
		}
		return nil
	})

	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		b.WaitJS("images loaded", `document.fonts.status === "loaded" && [...document.images].every((i) => i.complete)`)
		browser.Eval[bool](b, `(document.querySelector(".messages-scroll").scrollTo(0, 1e6), true)`)
		time.Sleep(300 * time.Millisecond) // let the scroll settle before the picture
		b.Screenshot(filepath.Join(dir, "chat-attachments-desktop.png"))
	}
	for _, tab := range []*browser.Tab{a, b} {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("page errors: %v", errs)
		}
	}
}

// attach chooses files in the chat's file field (#attach-input, hidden
// behind the paper clip), as the file dialog would.
func attach(t *testing.T, tab *browser.Tab, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), 30*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: `document.getElementById("attach-input")`})
	if err == nil && (res.Result == nil || res.Result.ObjectID == "") {
		err = fmt.Errorf("no #attach-input in the page")
	}
	if err == nil {
		_, err = chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, ObjectID: res.Result.ObjectID})
	}
	if err != nil {
		t.Fatalf("choose %v: %v", files, err)
	}
}

// watchFiles follows nd's event stream until the test ends; the function
// it returns gives the state of the last "file" event of a message.
func watchFiles(t *testing.T, ctx context.Context, nd *testnet.Node) func(id string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	evs, err := nd.Client.Events(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	last := map[string]string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range evs {
			var fs api.FileState
			if ev.Type != api.EventFile || json.Unmarshal(ev.Data, &fs) != nil {
				continue
			}
			mu.Lock()
			last[fs.ID] = fs.State
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func(id string) string {
		mu.Lock()
		defer mu.Unlock()
		return last[id]
	}
}

// lastFile waits until nd's conversation with peer holds a message with a
// file of media type typ, and returns the newest.
func lastFile(t *testing.T, ctx context.Context, nd *testnet.Node, peer, typ string) api.Message {
	t.Helper()
	var found api.Message
	check.Eventually(t, 60*time.Second, func() error {
		p, err := nd.Client.MessagePage(ctx, peer, api.PageRequest{Newest: true, Limit: 10})
		if err != nil {
			return err
		}
		for i := len(p.Messages) - 1; i >= 0; i-- {
			if m := p.Messages[i]; m.File != nil && m.File.Type == typ {
				found = m
				return nil
			}
		}
		return fmt.Errorf("no %s file among the last messages", typ)
	})
	return found
}

// thumbSize decodes a data: URL of a JPEG and returns its size.
func thumbSize(t *testing.T, dataURL string) (int, int) {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURL, "data:image/jpeg;base64,")
	if !ok {
		t.Fatalf("thumbnail %.40q… is not a data: URL of a JPEG", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > api.MaxThumb {
		t.Errorf("the thumbnail is %d bytes, over %d", len(raw), api.MaxThumb)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the thumbnail: %v", err)
	}
	return cfg.Width, cfg.Height
}

// picture draws a small landscape (sky, sun, sea, hills) as a PNG.
func picture(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	mix := func(a, b color.RGBA, k float64) color.RGBA {
		f := func(x, y uint8) uint8 { return uint8(float64(x) + (float64(y)-float64(x))*k) }
		return color.RGBA{f(a.R, b.R), f(a.G, b.G), f(a.B, b.B), 255}
	}
	top, horizon := color.RGBA{70, 130, 210, 255}, color.RGBA{250, 200, 150, 255}
	sea, deep := color.RGBA{40, 110, 160, 255}, color.RGBA{20, 60, 110, 255}
	for y := range h {
		for x := range w {
			fy := float64(y) / float64(h)
			c := mix(top, horizon, fy/0.62)
			if fy > 0.62 {
				c = mix(sea, deep, (fy-0.62)/0.38)
			}
			if d := math.Hypot(float64(x)-0.7*float64(w), float64(y)-0.5*float64(h)); d < 0.09*float64(w) && fy <= 0.62 {
				c = color.RGBA{255, 236, 170, 255}
			}
			hill := 0.62 - 0.16*math.Exp(-math.Pow((float64(x)/float64(w)-0.25)/0.18, 2))
			if fy > hill && fy <= 0.62 {
				c = mix(color.RGBA{60, 120, 70, 255}, color.RGBA{40, 90, 50, 255}, (fy-hill)/0.16)
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
