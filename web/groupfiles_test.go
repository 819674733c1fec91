package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/internal/browser"
	"github.com/callsign/callsign/internal/check"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/web"
)

// TestGroupFiles: in a group of three (Alice, its admin; Bob and Carol,
// each a contact of Alice's but strangers to each other), files go as in
// a one-to-one chat. Bob picks a photo with the paper clip and sends it
// with a caption from his page: Alice's and Carol's pages show the photo
// itself (its own pixels, not only the thumbnail made in Bob's page) under
// his name as each knows him ("Bob", "bob"), and the viewer's Download
// saves the very bytes he sent. Carol drops a text file on the
// conversation and sends it: Alice's and Bob's pages show it as a chip
// under her name, and its Download saves the same bytes. Alice records a
// voice note from the fake microphone: Bob's and Carol's pages show a
// player under her name, which knows its length and plays, and Bob's chat
// list previews it as "Alice: Voice note (…)". An image pasted into the
// group's composer waits in the strip like one picked. Every receiving
// node says on its event stream, with the group's id as the peer, that it
// fetched each file; each file bubble has its message menu (the actions
// themselves: TestGroupActions), and the timer button shows for Alice,
// the admin, only; no page logs an error.
//
// With CALLSIGN_SCREENSHOTS set to a directory, it also saves Alice's
// view of the conversation there as group-files-desktop.png.
func TestGroupFiles(t *testing.T) {
	n := testnet.New(t, 4, testnet.Options{Web: web.FS()})
	alice, bob, carol := n.Nodes[1], n.Nodes[2], n.Nodes[3]
	ctx := ctxT(t, 6*time.Minute)
	threeFriends(t, ctx, alice, bob, carol)

	// The group, made and joined through the API (TestGroups does it in
	// the pages).
	const name = "Harbour trip"
	g := groupOfThree(t, ctx, name, alice, bob, carol)
	nodeNames := map[*testnet.Node]string{alice: "alice", bob: "bob", carol: "carol"}
	events := map[*testnet.Node]func(id string) api.FileState{}
	for _, nd := range []*testnet.Node{alice, bob, carol} {
		events[nd] = watchFileStates(t, ctx, nd)
	}

	dir := t.TempDir()
	pic := picture(t, 320, 240)
	photo := filepath.Join(dir, "harbour.png")
	writeFile(t, photo, pic)
	const notes = "Saturday: the café at 1:30, the museum at 2, tickets booked.\n"

	a := browser.OpenApp(t, "alice", alice.Dir)
	b := browser.OpenApp(t, "bob", bob.Dir)
	c := browser.OpenApp(t, "carol", carol.Dir)
	tabs := []*browser.Tab{a, b, c}
	names := map[*browser.Tab]string{a: "alice", b: "bob", c: "carol"}
	for _, tab := range tabs {
		tab.GrantNotifications()
		tab.Reload()
		tab.Viewport(1280, 800, false)
		tab.Timeout = 60 * time.Second // files cross between three nodes on a busy machine
		// A list drawn again under the pointer would lose the click.
		tab.WaitJS("the groups read once the event stream is open", `performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === "/api/v1/groups")`)
		tab.ClickLike("link", name)
		tab.WaitJS("the group open", fmt.Sprintf(`document.querySelector(".chat-title")?.textContent === %q`, name))
		tab.WaitJS("the paper clip and the microphone in the group", `(() => {
			const clip = document.getElementById("attach"), mic = document.getElementById("voice");
			return clip !== null && clip.offsetParent !== null && !clip.disabled && mic !== null && mic.offsetParent !== null && !mic.disabled;
		})()`)
		catchDownloads(tab)
	}

	// (a) Bob's photo, with a caption, picked with the paper clip.
	const caption = "The harbour this morning"
	b.Click("button", "Attach a file")
	attach(t, b, photo)
	b.WaitText("harbour.png") // in the strip of files to send
	b.Fill("Message", caption)
	b.Click("button", "Send")
	b.WaitJS("bob's photo sent", `(() => { const i = document.querySelector(".msg.out:not([data-id^=tmp-]) img.file-image"); return i !== null && i.naturalWidth === 320; })()`)
	img := groupFile(t, ctx, alice, g.ID, "image/png")
	if img.Text != caption || img.File.Name != "harbour.png" || img.File.Size != int64(len(pic)) || img.From != bob.Account().String() {
		t.Errorf("the photo at alice's node: from %s, %q %+v", img.From, img.Text, *img.File)
	}
	if want := "/api/v1/files/" + g.ID + "/" + img.ID; img.File.URL != want {
		t.Errorf("the photo's url at alice's node is %q, want %q", img.File.URL, want)
	}
	if w, h := thumbSize(t, img.File.Thumb); max(w, h) != 160 {
		t.Errorf("the photo's thumbnail is %d×%d, want its longest side 160 px", w, h)
	}
	for tab, from := range map[*browser.Tab]string{a: "Bob", c: "bob"} {
		tab.WaitJS("the photo itself on "+names[tab]+"'s page", fmt.Sprintf(`(() => {
			const i = document.querySelector('.msg.in[data-id=%q] img.file-image');
			return i !== null && i.src.startsWith("blob:") && i.complete && i.naturalWidth === 320 && i.naturalHeight === 240;
		})()`, img.ID))
		tab.WaitJS(fmt.Sprintf("%q over the photo on %s's page", from, names[tab]), senderIs(img.ID, from))
		if got := browser.Eval[string](tab, fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] .text').textContent`, img.ID)); got != caption {
			t.Errorf("the photo's caption on %s's page reads %q", names[tab], got)
		}
		// Shown large, its Download saves what Bob sent.
		tab.Click("button", "Open the photo harbour.png")
		tab.WaitJS("the photo large", `(() => { const i = document.querySelector("[role=dialog] img"); return i !== null && i.naturalWidth === 320; })()`)
		tab.Click("link", "Download")
		tab.WaitJS("harbour.png saved with its bytes on "+names[tab]+"'s page", saved("harbour.png", pic))
		tab.Press("Escape")
		tab.WaitJS("the large photo closed", `document.querySelector("[role=dialog]") === null`)
	}

	// (b) Carol's text file, dropped on the conversation, with a caption.
	text, err := json.Marshal(notes)
	if err != nil {
		t.Fatal(err)
	}
	browser.Eval[bool](c, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([`+string(text)+`], "notes.txt", { type: "text/plain" }));
		const chat = document.querySelector(".group-chat");
		chat.dispatchEvent(new DragEvent("dragenter", { dataTransfer: dt, bubbles: true, cancelable: true }));
		chat.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	c.WaitJS("the dropped file waiting to be sent", stagedNames+` === "notes.txt"`)
	c.Fill("Message", "the plan")
	c.Press("Enter")
	txt := groupFile(t, ctx, bob, g.ID, "text/plain")
	if txt.Text != "the plan" || txt.File.Name != "notes.txt" || txt.File.Size != int64(len(notes)) || txt.From != carol.Account().String() {
		t.Errorf("the text file at bob's node: from %s, %q %+v", txt.From, txt.Text, *txt.File)
	}
	for tab, from := range map[*browser.Tab]string{a: "Carol", b: "carol"} {
		chip := fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] .file-chip')`, txt.ID)
		// (The node fetches it by itself: the chip's "Downloading…" goes.)
		tab.WaitJS("the file's chip on "+names[tab]+"'s page, fetched", chip+`?.querySelector(".file-name").textContent === "notes.txt" && `+chip+`.querySelector(".file-status").hidden`)
		tab.WaitJS(fmt.Sprintf("%q over the file on %s's page", from, names[tab]), senderIs(txt.ID, from))
		tab.Click("button", "Download notes.txt")
		tab.WaitJS("notes.txt saved with its bytes on "+names[tab]+"'s page", saved("notes.txt", []byte(notes)))
	}

	// (c) Alice's voice note of two seconds, from the fake microphone.
	a.Click("button", "Record a voice note")
	a.WaitJS("two seconds recorded", `(document.querySelector(".rec-time") || {}).textContent === "00:02"`)
	a.Click("button", "Send the voice note")
	voice := groupFile(t, ctx, carol, g.ID, "audio/webm")
	if f := voice.File; f.Name != "voice-note.webm" || f.DurationMS < 1800 || f.DurationMS > 6000 || f.Size < 1000 || voice.From != alice.Account().String() {
		t.Errorf("the voice note at carol's node: from %s, %+v", voice.From, *f)
	}
	player := fmt.Sprintf(`document.querySelector('.msg.in[data-id=%q] audio.file-audio')`, voice.ID)
	for _, tab := range []*browser.Tab{b, c} {
		tab.WaitJS("the voice note's player on "+names[tab]+"'s page, its length known", `(() => { const a = `+player+`;
			return a !== null && a.src.startsWith("blob:") && a.readyState >= 1 && Number.isFinite(a.duration) && a.duration > 1.5; })()`)
		tab.WaitJS("\"Alice\" over the voice note on "+names[tab]+"'s page", senderIs(voice.ID, "Alice"))
	}
	if got := browser.Eval[string](b, player+`.play().then(() => "playing", (e) => String(e))`); got != "playing" {
		t.Fatalf("play the voice note on bob's page: %s", got)
	}
	b.WaitJS("the voice note playing on bob's page", player+`.currentTime > 0.3`)
	browser.Eval[bool](b, `(`+player+`.pause(), true)`)
	b.WaitJS("bob's chat list: Alice's voice note, with her name", preview("Alice: Voice note (00:0"))

	// An image pasted into the group's composer waits to be sent.
	browser.Eval[bool](c, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array([137, 80, 78, 71])], "image.png", { type: "image/png" }));
		document.getElementById("composer").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	c.WaitJS("the pasted image waiting to be sent", stagedNames+` === "image.png"`)
	c.Click("button", "Cancel")
	c.WaitJS("the strip put away", stagedNames+` === ""`)

	// Each receiving node fetched each file, and said so under the group.
	check.Eventually(t, 30*time.Second, func() error {
		for nd, ms := range map[*testnet.Node][]api.Message{alice: {img, txt}, bob: {txt, voice}, carol: {img, voice}} {
			for _, m := range ms {
				if ev := events[nd](m.ID); ev.State != api.FileReady || ev.Peer != g.ID {
					return fmt.Errorf("the last file event of %s (%s) at %s's node: %+v, want %q with peer %s", m.ID, m.File.Name, nodeNames[nd], ev, api.FileReady, g.ID)
				}
			}
		}
		return nil
	})

	// Each file bubble has its menu, as any message. The timer is the
	// admin's.
	for _, tab := range tabs {
		if !browser.Eval[bool](tab, `document.querySelector(".msg-actions") !== null`) {
			t.Errorf("%s's page offers no message actions in the group", names[tab])
		}
		if got, want := browser.Eval[bool](tab, `document.getElementById("timer-button") !== null`), tab == a; got != want {
			t.Errorf("%s's page offers the timer in the group: %v, want %v", names[tab], got, want)
		}
	}

	if dir := os.Getenv("CALLSIGN_SCREENSHOTS"); dir != "" {
		shootGroup(t, a, filepath.Join(dir, "group-files-desktop.png"))
	}
	for _, tab := range tabs {
		if errs := tab.Errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors: %q", names[tab], errs)
		}
	}
}

// stagedNames is the JavaScript for the names of the files waiting in the
// composer's strip, joined with commas.
const stagedNames = `[...document.querySelectorAll(".staged-name")].map((e) => e.textContent).join(",")`

// senderIs is the JavaScript that reports whether the incoming message
// id shows name over its bubble.
func senderIs(id, name string) string {
	return fmt.Sprintf(`(() => { const s = document.querySelector('.msg.in[data-id=%q] .bubble .sender'); return s !== null && s.textContent === %q && getComputedStyle(s).display !== "none"; })()`, id, name)
}

// catchDownloads makes tab keep, in window.saved, what each click on a
// download link (the viewer's, or the one a chip's Download button makes)
// would have saved: its name, size and SHA-256 in hex. The page's CSP
// lets nothing fetch a blob: URL back, so the Blobs are kept as they get
// their URLs; the download itself is not made.
func catchDownloads(tab *browser.Tab) {
	browser.Eval[bool](tab, `(() => {
		window.saved = [];
		const blobs = new Map(), make = URL.createObjectURL;
		URL.createObjectURL = (blob) => { const u = make.call(URL, blob); blobs.set(u, blob); return u; };
		document.addEventListener("click", (e) => {
			const a = e.target.closest && e.target.closest("a[download]");
			if (!a) return;
			e.preventDefault();
			const blob = blobs.get(a.href);
			if (!blob) { window.saved.push({ name: a.download, size: -1, sha: "" }); return; }
			blob.arrayBuffer().then((buf) => crypto.subtle.digest("SHA-256", buf)).then((d) => {
				window.saved.push({ name: a.download, size: blob.size, sha: [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join("") });
			});
		}, true);
		return true;
	})()`)
}

// saved is the JavaScript that reports whether catchDownloads saw file
// name saved with exactly the bytes b.
func saved(name string, b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf(`window.saved.some((s) => s.name === %q && s.size === %d && s.sha === %q)`, name, len(b), hex.EncodeToString(sum[:]))
}

// groupFile waits until nd's conversation of group id holds a message
// with a file of media type typ, and returns the newest; its peer must be
// the group.
func groupFile(t *testing.T, ctx context.Context, nd *testnet.Node, id, typ string) api.Message {
	t.Helper()
	m := lastFile(t, ctx, nd, id, typ)
	if m.Peer != id {
		t.Errorf("the %s message in group %s: peer %q", typ, id, m.Peer)
	}
	return m
}

// watchFileStates follows nd's event stream until the test ends; the
// function it returns gives the last "file" event of a message.
func watchFileStates(t *testing.T, ctx context.Context, nd *testnet.Node) func(id string) api.FileState {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	evs, err := nd.Client.Events(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	last := map[string]api.FileState{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range evs {
			var fs api.FileState
			if ev.Type != api.EventFile || json.Unmarshal(ev.Data, &fs) != nil {
				continue
			}
			mu.Lock()
			last[fs.ID] = fs
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func(id string) api.FileState {
		mu.Lock()
		defer mu.Unlock()
		return last[id]
	}
}
