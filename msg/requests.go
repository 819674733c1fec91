package msg

import (
	"errors"
	"fmt"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// Defaults of the message request limits (Config.MaxRequests and the
// rest): what a person would pick for strangers writing to them.
const (
	DefaultMaxRequests          = 100      // messages waiting from one sender
	DefaultMaxRequestBytes      = 1 << 20  // their text, bytes
	DefaultMaxRequestsTotal     = 1000     // messages waiting from all senders
	DefaultMaxRequestBytesTotal = 10 << 20 // their text, bytes
)

const (
	// requestRecheck is how often, at most, the request counts of other
	// senders are checked against the store when the total is reached
	// (a request accepted or a conversation deleted frees its share).
	requestRecheck = time.Second
	// Stamp checks cost about 1.2 ms and 1 MiB each: at most 10 a second
	// (burst 20), two at a time. Beyond, the stream is reset as
	// overloaded and the sender retries later.
	stampChecksPerSecond = 10
	stampCheckBurst      = 20
	stampCheckParallel   = 2
)

// Refusal reasons a sender sees (Ack reason, at most maxReason bytes).
const (
	reasonPeerRequests  = "message requests: too many of yours wait to be accepted"
	reasonTotalRequests = "message requests: the recipient's requests are full"
	reasonStampV10      = "first contact needs a proof of work (msg 1.1.0): update callsign"
	reasonBadStamp      = "invalid first-contact stamp"
)

// usage is what message requests hold: messages and bytes of text.
type usage struct {
	count int
	bytes int64
}

func (u usage) add(v usage) usage { return usage{u.count + v.count, u.bytes + v.bytes} }
func (u usage) sub(v usage) usage { return usage{u.count - v.count, u.bytes - v.bytes} }

// requestBook counts the message requests waiting in the store, per sender
// and in all: the incoming messages of senders the Policy classifies as
// Request, since the last message this account sent them. Guarded by
// Service.mu.
type requestBook struct {
	peers   map[identity.AccountID]usage
	total   usage
	checked time.Time // last recheck against the store
}

// pendingRequests counts the requests waiting from peer: its incoming
// messages since our last outgoing one, newest first, stopping once over
// the per-sender limits.
func (s *Service) pendingRequests(data *Data, peer string) (usage, error) {
	var u usage
	cursor := ""
	for {
		ms, next, err := data.Messages(peer, Page{Cursor: cursor, Limit: 128, Newest: true})
		if err != nil {
			return usage{}, fmt.Errorf("count requests: %w", err)
		}
		for i := len(ms) - 1; i >= 0; i-- {
			if ms[i].Direction == DirOut {
				return u, nil
			}
			u = u.add(usage{1, int64(len(ms[i].Body))})
			if u.count > s.cfg.MaxRequests || u.bytes > s.cfg.MaxRequestBytes {
				return u, nil
			}
		}
		if next == "" {
			return u, nil
		}
		cursor = next
	}
}

// loadRequests counts the requests in the store, at Start.
func (s *Service) loadRequests() error {
	book := requestBook{peers: map[identity.AccountID]usage{}}
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		data := s.data(tx)
		convs, err := data.Conversations()
		if err != nil {
			return err
		}
		for _, c := range convs {
			if !c.Request {
				continue
			}
			u, err := s.pendingRequests(data, c.Peer)
			if err != nil {
				return err
			}
			if u.count > 0 {
				book.peers[identity.AccountID(c.Peer)] = u
				book.total = book.total.add(u)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load message requests: %w", err)
	}
	s.mu.Lock()
	s.requests = book
	s.mu.Unlock()
	return nil
}

// knownRequests reports whether the book counts acct.
func (s *Service) knownRequests(acct identity.AccountID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.requests.peers[acct]
	return ok
}

// setRequests records u as acct's requests, counted from the store.
func (s *Service) setRequests(acct identity.AccountID, u usage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests.total = s.requests.total.sub(s.requests.peers[acct]).add(u)
	s.requests.peers[acct] = u
}

// forgetRequests drops acct from the book: its requests were accepted (it
// is a contact now).
func (s *Service) forgetRequests(acct identity.AccountID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.requests.peers[acct]; ok {
		s.requests.total = s.requests.total.sub(u)
		delete(s.requests.peers, acct)
	}
}

// reserveRequest counts one more request of n bytes from acct if the
// limits allow it, and otherwise returns the reason to refuse it. full
// says the total, not acct's share, is what refused it.
func (s *Service) reserveRequest(acct identity.AccountID, n int) (reason string, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := usage{1, int64(n)}
	u := s.requests.peers[acct].add(v)
	if u.count > s.cfg.MaxRequests || u.bytes > s.cfg.MaxRequestBytes {
		return reasonPeerRequests, false
	}
	if t := s.requests.total.add(v); t.count > s.cfg.MaxRequestsTotal || t.bytes > s.cfg.MaxRequestBytesTotal {
		return reasonTotalRequests, true
	}
	s.requests.peers[acct] = u
	s.requests.total = s.requests.total.add(v)
	return "", false
}

// releaseRequests takes back reservations whose messages were not stored.
func (s *Service) releaseRequests(acct identity.AccountID, v usage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.requests.peers[acct]
	if !ok {
		return
	}
	s.requests.total = s.requests.total.sub(v)
	if u = u.sub(v); u.count <= 0 {
		delete(s.requests.peers, acct)
	} else {
		s.requests.peers[acct] = u
	}
}

// recheckRequests drops from the book the senders other than except whose
// conversation is no longer a request (accepted), at most once per
// requestRecheck. It reports whether it looked. (A sender without a
// conversation stays: its first messages may be on their way into the
// store.)
func (s *Service) recheckRequests(except identity.AccountID) bool {
	s.mu.Lock()
	if time.Since(s.requests.checked) < requestRecheck {
		s.mu.Unlock()
		return false
	}
	s.requests.checked = time.Now()
	accts := make([]identity.AccountID, 0, len(s.requests.peers))
	for a := range s.requests.peers {
		if a != except {
			accts = append(accts, a)
		}
	}
	s.mu.Unlock()
	var gone []identity.AccountID
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		data := s.data(tx)
		gone = gone[:0]
		for _, a := range accts {
			c, err := data.Conversation(string(a))
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			case !c.Request:
				gone = append(gone, a)
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("recheck message requests", "err", err)
		return false
	}
	for _, a := range gone {
		s.forgetRequests(a)
	}
	return true
}

// verifyStamp checks a first-contact stamp within the service's budget
// for stamp checks; beyond it the stream is reset as overloaded.
func (s *Service) verifyStamp(sender []byte, stamp []byte) (bool, error) {
	if !s.stampLim.Allow() {
		return false, p2p.WithCode(p2p.CodeOverloaded, errors.New("too many first-contact stamps to check; try again later"))
	}
	s.stampSem <- struct{}{}
	defer func() { <-s.stampSem }()
	return checkStamp(sender, s.cfg.Account.Public().Bytes(), stamp, s.cfg.StampBits), nil
}
