package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/mailbox"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/node/backend"
	"github.com/callsign/callsign/store"
)

// Attachments (issue 14): a file a person sends is sealed into this
// device's files directory (DATA/files) and its reference travels in the
// message (msg.Message.File). A device that receives the message fetches
// the sealed file from a device of the sender's account — the one that sent
// it, or a sibling of it that fetched it already — over
// /callsign/file/1.0.0: at once for a contact's message or this account's
// own (a sibling's copy), when the person opens it for a stranger's
// request. A fetch cut short resumes where it stopped.
//
// When none of the recipient's devices can be reached, the message goes to
// the recipient's mailbox (msg) and its attachment follows: the sender's
// node parks the sealed file at the same mailbox, for the same recipient
// token (mailbox.Park; msg.Config.OnDeposited says when), resuming a park
// cut short. A recipient's device that can't reach any of the sender's
// devices fetches the file from its own mailboxes instead. A group
// message's attachment is parked likewise with its carrier for each member
// that can't be reached (msg.QueueGroupFile keeps the tie in the outbox,
// so a restart before the deposit changes nothing).

// The limits of Config.FileLimit.
const (
	DefaultFileLimit = files.DefaultLimit
	MaxFileLimit     = files.MaxLimit
)

// fetchAttempts is how many times a fetch is tried before it is shown as
// failed (the person's next look at the file starts it again); a try that
// moved bytes does not count (a relay cutting a long transfer is resumed
// at once).
const fetchAttempts = 3

// fetchRetry is the wait between tries that moved nothing; a person
// asking for the file cuts it short, down to fetchGap since the last try
// began (a client asking in a loop must not make this node hammer the
// sender's devices and mailboxes).
var fetchRetry = 20 * time.Second

const fetchGap = 2 * time.Second

// fileProgressEvery spaces the progress events of one download.
const fileProgressEvery = 500 * time.Millisecond

// maxDownloads bounds the downloads under way at once; the others wait.
const maxDownloads = 4

// Parking files at a recipient's mailbox: at most maxParks at once, each
// tried parkAttempts times parkRetry apart, each resuming what the last
// left there; a mailbox's refusal (quota, size) is not tried again. A
// restart deposits the unacknowledged messages again, and so parks again.
const (
	maxParks     = 2
	parkAttempts = 3
)

var parkRetry = 30 * time.Second

// resumeWindow is how far back a start looks for attachments to fetch:
// the newest resumeScan messages of each conversation, sent in the last
// resumeAge.
const (
	resumeScan = 200
	resumeAge  = 7 * 24 * time.Hour
)

// attachments is the node's side of files: the store, the service and
// the downloads in progress.
type attachments struct {
	n     *Node
	store *files.Store
	svc   *files.Service

	slots     chan struct{} // maxDownloads
	parkSlots chan struct{} // maxParks

	mu      sync.Mutex
	active  map[files.Hash]*download // guarded by mu
	failed  map[files.Hash]time.Time // guarded by mu: fetches that gave up (when their last try began), until tried again
	parking map[parking]bool         // guarded by mu: parks under way

	// try is one try of a download: fromAnyDevice (a test's stand-in
	// when set).
	try func(ctx context.Context, owner identity.AccountID, ref files.Ref, progress func(int64, int64)) error
}

// parking names a file being parked at a mailbox.
type parking struct {
	mb peer.ID
	h  files.Hash
}

type download struct {
	have, total int64
	// retry wakes a download waiting between tries: the person asked
	// for the file.
	retry chan struct{}
	// lastTry is when the last try began (of an earlier download of the
	// file too), and moved whether it moved bytes; only download's
	// goroutine uses them until it ends.
	lastTry time.Time
	moved   bool
}

func (n *Node) startFiles() error {
	st, err := files.OpenStore(filepath.Join(n.cfg.DataDir, "files"), n.cfg.FileLimit)
	if err != nil {
		return err
	}
	svc := files.NewService(files.Config{
		Host:  n.host,
		Store: st,
		// Devices behind NAT are reached through a relay, whose limits cut
		// a long transfer; the fetch resumes after each cut.
		AllowLimited: true,
		Logger:       n.log.With("component", "files"),
	})
	n.files = &attachments{n: n, store: st, svc: svc, slots: make(chan struct{}, maxDownloads),
		parkSlots: make(chan struct{}, maxParks), active: map[files.Hash]*download{},
		failed: map[files.Hash]time.Time{}, parking: map[parking]bool{}}
	n.closers = append(n.closers, svc.Close)
	return nil
}

// onMessage starts fetching the attachment of a message just stored, if
// it has one this device lacks: at once for a contact's message or a
// sibling's copy, not for a stranger's request (the person opens it).
func (a *attachments) onMessage(ev msg.Event) {
	m := ev.Message
	if m == nil || m.File == nil || ev.Request {
		return
	}
	a.onFile(backend.FileOf(*m, a.n.keys.account.Public().ID()), m.File)
}

// onGroupMessage starts fetching the attachment of a group message just
// stored here from another device (a member's, or a sibling's copy).
func (a *attachments) onGroupMessage(m *groupchat.Message) {
	if m == nil || m.File == nil || (m.Out && m.Dev == a.n.cert.DeviceID()) {
		return
	}
	at := backend.FileAt{Peer: m.Group.String(), ID: m.ID, Owner: m.From}
	a.onFile(at, m.File)
}

func (a *attachments) onFile(at backend.FileAt, file []byte) {
	ref, err := files.UnmarshalRef(file)
	if err != nil {
		a.n.log.Info("a message's attachment is malformed", "peer", at.Peer, "id", at.ID, "err", err)
		return
	}
	a.fetch(at, ref)
}

// onDeleted deletes the attachment of a message that expired.
func (a *attachments) onDeleted(ev msg.Event) {
	if ev.Message != nil {
		a.removeFile(ev.Message.File)
	}
}

// removeFile deletes the attachment a message that expired named (file,
// its reference; nil: none).
func (a *attachments) removeFile(file []byte) {
	if file == nil {
		return
	}
	if ref, err := files.UnmarshalRef(file); err == nil {
		if err := a.store.Remove(ref.Hash); err != nil {
			a.n.log.Warn("an expired message's attachment could not be deleted", "err", err)
		}
	}
}

// state is what the API shows of an attachment: ready (held here),
// fetching or failed.
func (a *attachments) state(ref files.Ref) (state string, have, total int64) {
	if a.store.Has(ref.Hash) {
		s := files.SealedSize(ref.Size)
		return api.FileReady, s, s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := a.active[ref.Hash]; d != nil {
		return api.FileFetching, d.have, d.total
	}
	if _, failed := a.failed[ref.Hash]; failed {
		return api.FileFailed, a.store.Partial(ref.Hash), files.SealedSize(ref.Size)
	}
	return api.FileFetching, a.store.Partial(ref.Hash), files.SealedSize(ref.Size)
}

// fetch starts fetching the attachment of message m unless it is held or
// on its way.
func (a *attachments) fetch(m backend.FileAt, ref files.Ref) {
	if a.store.Has(ref.Hash) {
		return
	}
	a.mu.Lock()
	if d := a.active[ref.Hash]; d != nil || a.n.ctx.Err() != nil {
		a.mu.Unlock()
		if d != nil {
			select {
			case d.retry <- struct{}{}:
			default:
			}
		}
		return
	}
	d := &download{have: a.store.Partial(ref.Hash), total: files.SealedSize(ref.Size), retry: make(chan struct{}, 1),
		lastTry: a.failed[ref.Hash]}
	a.active[ref.Hash] = d
	delete(a.failed, ref.Hash)
	a.mu.Unlock()
	a.n.wg.Go(func() {
		var err error
		select {
		case a.slots <- struct{}{}:
			err = a.download(m, ref, d)
			<-a.slots
		case <-a.n.ctx.Done():
			err = a.n.ctx.Err()
		}
		a.mu.Lock()
		delete(a.active, ref.Hash)
		if err != nil {
			a.failed[ref.Hash] = d.lastTry
		}
		a.mu.Unlock()
		st := api.FileReady
		if err != nil {
			st = api.FileFailed
			if a.n.ctx.Err() == nil {
				a.n.log.Info("an attachment could not be fetched", "peer", m.Peer, "id", m.ID, "err", err)
			}
		}
		a.publish(m, st, d)
	})
}

// resume starts fetching, after a restart, the attachments of recent
// messages from contacts (and this account's own copies) that are not
// whole here: a download cut by the restart goes on where it stopped.
// Strangers' requests wait to be opened, as when they arrived.
func (a *attachments) resume() {
	// The senders are looked up on the network: wait until this node is
	// on it (its record published), for a while.
	for wait := time.Now(); !a.n.Published() && time.Since(wait) < 30*time.Second; {
		select {
		case <-a.n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	var pending []msg.Message
	err := a.n.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		cs, err := data.Conversations()
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.Request || time.Since(c.LastAt) > resumeAge {
				continue // nothing recent in it
			}
			ms, _, err := data.Messages(c.Peer, msg.Page{Limit: resumeScan, Newest: true})
			if err != nil {
				continue // a damaged conversation says so when it is opened
			}
			for _, m := range ms {
				if m.File != nil && time.Since(m.At) < resumeAge {
					pending = append(pending, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		a.n.log.Info("attachments to fetch after the restart not listed", "err", err)
		return
	}
	for _, m := range pending {
		if ref, err := files.UnmarshalRef(m.File); err == nil && !a.store.Has(ref.Hash) {
			a.fetch(backend.FileOf(m, a.n.keys.account.Public().ID()), ref)
		}
	}
}

// download fetches ref from the devices of the account that has it: the
// sender's, or this account's own for a sibling's copy.
func (a *attachments) download(m backend.FileAt, ref files.Ref, d *download) error {
	ctx := a.n.ctx
	owner := m.Owner
	var last time.Time
	progress := func(have, total int64) {
		a.mu.Lock()
		d.have, d.total = have, total
		a.mu.Unlock()
		if time.Since(last) >= fileProgressEvery {
			last = time.Now()
			a.publish(m, api.FileFetching, d)
		}
	}
	var err error
	for tries := 0; tries < fetchAttempts; {
		if wait := time.Until(d.lastTry.Add(fetchGap)); wait > 0 && !d.moved {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		d.lastTry = time.Now()
		before := a.store.Partial(ref.Hash)
		if a.try != nil {
			err = a.try(ctx, owner, ref, progress)
		} else {
			err = a.fromAnyDevice(ctx, owner, ref, progress)
		}
		if err == nil || errors.Is(err, files.ErrHashMismatch) || errors.Is(err, files.ErrTooLarge) || ctx.Err() != nil {
			return err
		}
		if d.moved = a.store.Partial(ref.Hash) > before; d.moved {
			continue // resume at once
		}
		if tries++; tries < fetchAttempts {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(fetchRetry):
			case <-d.retry:
			}
		}
	}
	return err
}

// fromAnyDevice tries each device of the owner's record but this one,
// then this device's own mailboxes, where the sender may have parked it.
func (a *attachments) fromAnyDevice(ctx context.Context, owner identity.AccountID, ref files.Ref, progress func(int64, int64)) error {
	err := a.fromOwner(ctx, owner, ref, progress)
	if err == nil || errors.Is(err, files.ErrHashMismatch) || errors.Is(err, files.ErrTooLarge) || ctx.Err() != nil {
		return err
	}
	for _, mb := range a.n.mailboxPeers() {
		if mb.ID == a.n.host.ID() {
			continue
		}
		a.n.host.Peerstore().AddAddrs(mb.ID, mb.Addrs, peerstore.TempAddrTTL)
		merr := a.svc.FetchFrom(ctx, mb.ID, mailbox.FileProtocol, ref, progress)
		if merr == nil || errors.Is(merr, files.ErrHashMismatch) || errors.Is(merr, files.ErrTooLarge) {
			return merr
		}
		a.n.log.Debug("an attachment is not at a mailbox", "mailbox", mb.ID, "err", merr)
	}
	return err // the sender's side of it says more
}

// fromOwner tries each device of the owner's record but this one.
func (a *attachments) fromOwner(ctx context.Context, owner identity.AccountID, ref files.Ref, progress func(int64, int64)) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	rec, err := directory{a.n}.Lookup(lctx, owner)
	cancel()
	if err != nil {
		return fmt.Errorf("look the sender up: %w", err)
	}
	err = files.ErrNotFound
	for _, dev := range rec.Devices {
		pid, perr := peer.IDFromBytes(dev.PeerID)
		if perr != nil || pid == a.n.host.ID() {
			continue
		}
		if err = a.svc.Fetch(ctx, pid, ref, progress); err == nil || errors.Is(err, files.ErrHashMismatch) || errors.Is(err, files.ErrTooLarge) {
			return err
		}
	}
	return err
}

// onDeposited parks the attachments of the messages ids to account to
// that mailbox mb took under token, and the attachments of group messages
// whose carriers it took (refs, files.Refs): msg.Config.OnDeposited. It
// runs on msg's sender goroutine: the parks go on in the background.
func (a *attachments) onDeposited(to identity.AccountID, mb peer.ID, token []byte, ids []string, refs [][]byte) {
	var hs []files.Hash
	for _, b := range refs {
		if ref, err := files.UnmarshalRef(b); err == nil && a.store.Has(ref.Hash) {
			hs = append(hs, ref.Hash)
		}
	}
	err := a.n.db.View(func(tx *store.Tx) error {
		data := msg.In(tx)
		for _, id := range ids {
			m, err := data.Message(string(to), id)
			if err != nil || m.File == nil {
				continue // gone already, or no file
			}
			if ref, err := files.UnmarshalRef(m.File); err == nil && a.store.Has(ref.Hash) {
				hs = append(hs, ref.Hash)
			}
		}
		return nil
	})
	if err != nil {
		return
	}
	for _, h := range hs {
		a.park(mb, bytes.Clone(token), h)
	}
}

// park parks file h at mailbox mb for the recipient token names, unless it
// is being parked there already.
func (a *attachments) park(mb peer.ID, token []byte, h files.Hash) {
	k := parking{mb, h}
	a.mu.Lock()
	if a.parking[k] || a.n.ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	a.parking[k] = true
	a.mu.Unlock()
	a.n.wg.Go(func() {
		defer func() {
			a.mu.Lock()
			delete(a.parking, k)
			a.mu.Unlock()
		}()
		ctx := a.n.ctx
		select {
		case a.parkSlots <- struct{}{}:
			defer func() { <-a.parkSlots }()
		case <-ctx.Done():
			return
		}
		for tries := 0; tries < parkAttempts; {
			err := mailbox.Park(ctx, a.n.host, mb, token, a.store, h)
			if err == nil {
				a.n.log.Debug("an attachment is parked at the recipient's mailbox", "mailbox", mb, "file", h)
				return
			}
			var re *mailbox.RefusedError
			if errors.As(err, &re) || errors.Is(err, files.ErrNotFound) || ctx.Err() != nil {
				if ctx.Err() == nil {
					a.n.log.Info("an attachment could not be parked at the recipient's mailbox", "mailbox", mb, "err", err)
				}
				return
			}
			if tries++; tries < parkAttempts {
				select {
				case <-ctx.Done():
					return
				case <-time.After(parkRetry):
				}
			}
		}
	})
}

func (a *attachments) publish(m backend.FileAt, state string, d *download) {
	a.mu.Lock()
	have, total := d.have, d.total
	a.mu.Unlock()
	if b := a.n.backend.Load(); b != nil {
		b.FileEvent(api.FileState{Peer: m.Peer, ID: m.ID, State: state, Have: have, Total: total})
	}
}

// Add seals a file the person sends into the store (backend.Files).
func (a *attachments) Add(r io.Reader, name, typ string) (files.Ref, error) {
	return a.store.Add(r, name, typ)
}

// Limit is the largest file this node sends or fetches.
func (a *attachments) Limit() int64 { return a.store.Limit() }

// State implements backend.Files.
func (a *attachments) State(ref files.Ref) (string, int64, int64) { return a.state(ref) }

// Read writes the plaintext of a held file (backend.Files).
func (a *attachments) Read(w io.Writer, ref files.Ref) error { return a.store.Read(w, ref) }

// Thumbnail implements backend.Files: the photo is read back from the
// store (it was sealed as it arrived).
func (a *attachments) Thumbnail(ref files.Ref) []byte {
	if !files.CanThumbnail(ref.Type) {
		return nil
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(a.store.Read(pw, ref))
	}()
	th, err := files.Thumbnail(pr)
	pr.Close() // the decoder may stop before the end
	<-done
	if err != nil {
		a.n.log.Debug("no thumbnail for a photo sent", "type", ref.Type, "err", err)
		return nil
	}
	return th
}

// Remove implements backend.Files.
func (a *attachments) Remove(h files.Hash) error { return a.store.Remove(h) }

// Fetch implements backend.Files.
func (a *attachments) Fetch(at backend.FileAt, ref files.Ref) { a.fetch(at, ref) }
