package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/media"
)

// Calls with a browser tab's media (DESIGN §7): the tab holds one WebRTC
// connection to its own node (a media.Bridge), and the node forwards RTP
// between it and the call's connection to the other node. The other node
// sees an ordinary callsign call; the policy, the identity-bound signalling
// and the relay rules stay as they are.
//
// The invite (or the answer) goes out at once with the bridge as the
// call's source and sink; the tab attaches its connection with
// AttachBrowser while the call rings or connects. A bridge lives exactly
// as long as its call: the call closes it when it ends, and a tab that
// closes, fails or never attaches ends the call.

// callMedia ties calls to the media resources they hold: the bridges that
// carry a browser tab's media, and live streams to release. It owns one
// watcher goroutine per such call; close ends them all.
type callMedia struct {
	mu      sync.Mutex
	bridges map[string]*media.Bridge            // call id → the bridge carrying its media
	ringing map[string]map[string]*media.Bridge // call id → tab → a tab ready to answer
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
}

// maxRingingTabs bounds the tabs that may get ready to answer one call.
const maxRingingTabs = 8

func newCallMedia() *callMedia {
	return &callMedia{bridges: map[string]*media.Bridge{}, ringing: map[string]map[string]*media.Bridge{}, stop: make(chan struct{})}
}

// addRinging keeps b as a tab ready to answer the ringing call c, until the
// call is answered with it, or ends. It reports false when c already has
// maxRingingTabs of them (b is then the caller's to close).
func (bc *callMedia) addRinging(c *call.Call, tab string, b *media.Bridge) bool {
	id := c.ID()
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.closed {
		return false
	}
	tabs := bc.ringing[id]
	if len(tabs) >= maxRingingTabs {
		return false
	}
	if tabs == nil {
		tabs = map[string]*media.Bridge{}
		bc.ringing[id] = tabs
		// The call's end closes the tabs nobody answered with.
		bc.wg.Go(func() {
			select {
			case <-c.Done():
			case <-bc.stop:
			}
			bc.mu.Lock()
			left := bc.ringing[id]
			delete(bc.ringing, id)
			bc.mu.Unlock()
			for _, b := range left {
				_ = b.Close()
			}
		})
	}
	tabs[tab] = b
	return true
}

// takeRinging removes and returns the tab ready to answer call id; the
// other tabs of the call are closed. nil when there is no such tab or it
// has gone.
func (bc *callMedia) takeRinging(id, tab string) *media.Bridge {
	bc.mu.Lock()
	tabs := bc.ringing[id]
	b := tabs[tab]
	var others []*media.Bridge
	if b != nil {
		for t, o := range tabs {
			if t != tab {
				others = append(others, o)
			}
			delete(tabs, t)
		}
	}
	bc.mu.Unlock()
	for _, o := range others {
		_ = o.Close()
	}
	if b != nil {
		select {
		case <-b.Done():
			return nil // the tab closed meanwhile
		default:
		}
	}
	return b
}

// watch registers b as the media of c until either ends: a bridge that
// ends first (the tab closed or failed) ends the call through end.
func (bc *callMedia) watch(c *call.Call, b *media.Bridge, end func(id string, k media.EventKind)) {
	id := c.ID()
	bc.mu.Lock()
	if bc.closed {
		bc.mu.Unlock()
		_ = b.Close()
		return
	}
	bc.bridges[id] = b
	bc.wg.Go(func() {
		select {
		case <-b.Done():
			end(id, b.End())
		case <-c.Done():
			_ = b.Close() // normally closed by the call already: it is its sink
		case <-bc.stop:
			_ = b.Close()
		}
		bc.mu.Lock()
		delete(bc.bridges, id)
		bc.mu.Unlock()
	})
	bc.mu.Unlock()
}

// release calls f once c has ended (or the node closes).
func (bc *callMedia) release(c *call.Call, f func()) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.closed {
		f()
		return
	}
	bc.wg.Go(func() {
		select {
		case <-c.Done():
		case <-bc.stop:
		}
		f()
	})
}

func (bc *callMedia) get(id string) *media.Bridge {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return bc.bridges[id]
}

// close ends every bridge, releases every call's media and waits for the
// watchers.
func (bc *callMedia) close() error {
	bc.mu.Lock()
	if !bc.closed {
		bc.closed = true
		close(bc.stop)
	}
	bc.mu.Unlock()
	bc.wg.Wait()
	return nil
}

// newBridge prepares a bridge for a call about to be placed or answered.
func (s *Service) newBridge() (*media.Bridge, error) {
	if s.bridges == nil {
		return nil, errNoCalls()
	}
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	return s.bridges.NewBridge(media.BridgeConfig{ID: "tab-" + hex.EncodeToString(tag[:]), ConnectTimeout: s.connectTimeout})
}

// endBridged ends a call whose tab has gone: a tab that closed its
// connection hung up; one that failed or never connected failed.
func (s *Service) endBridged(id string, k media.EventKind) {
	svc := s.calls
	if svc == nil {
		return
	}
	var err error
	switch k {
	case media.Closed:
		// Closed by its call, which is ending already (the bridge is the
		// call's sink), or by the node: nothing to do, and hanging up now
		// would replace the call's own reason with ours.
		return
	case media.RemoteClosed:
		err = svc.Hangup(id)
	default:
		s.log.Info("browser tab lost; ending its call", "call", id, "detected", k)
		err = svc.Fail(id)
	}
	if err != nil && !errors.Is(err, call.ErrUnknownCall) {
		s.log.Debug("end bridged call", "call", id, "err", err)
	}
}

// AttachBrowser implements api.Backend: the tab's offer for a call placed
// or answered with Browser set, or from a tab getting ready to answer an
// incoming call that rings.
func (s *Service) AttachBrowser(ctx context.Context, id string, offer api.BrowserOffer) (_ api.BrowserAnswer, err error) {
	defer mapError(&err)
	b := s.media.get(id)
	tab := ""
	if b == nil {
		c, err := s.findCall(id)
		if err != nil {
			return api.BrowserAnswer{}, err
		}
		if info := c.Info(); info.Direction != call.DirectionIn || info.State != call.StateRinging {
			return api.BrowserAnswer{}, api.Errorf(api.CodeConflict, "place or answer the call from the web app",
				"call %s does not take its media from a browser tab", id)
		}
		if b, err = s.newBridge(); err != nil {
			return api.BrowserAnswer{}, err
		}
		var t [8]byte
		_, _ = rand.Read(t[:])
		tab = hex.EncodeToString(t[:])
		if !s.media.addRinging(c, tab, b) {
			_ = b.Close()
			return api.BrowserAnswer{}, api.Errorf(api.CodeConflict, "close some of the tabs", "too many tabs are ready to answer call %s", id)
		}
	}
	answer, err := b.Accept(ctx, offer.SDP)
	if err != nil && tab != "" {
		_ = b.Close()
	}
	switch {
	case err == nil:
		return api.BrowserAnswer{SDP: answer, Tab: tab}, nil
	case errors.Is(err, media.ErrSignal):
		return api.BrowserAnswer{}, explain(err, "", "another tab already joined call %s", id)
	case errors.Is(err, media.ErrEnded):
		return api.BrowserAnswer{}, explain(err, "", "call %s has ended", id)
	}
	return api.BrowserAnswer{}, err // media.ErrBadSDP says what is wrong with the offer
}
