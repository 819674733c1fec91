package mailbox

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/e2e"
	"github.com/callsign/callsign/store"
)

// One-time prekeys (see the package doc): a member uploads batches of its
// signed one-time prekeys, a sender that makes first contact fetches one
// of each kind by the member's token, and each is handed out at most once,
// deleted durably before the answer leaves.

// countsLocked puts the one-time prekey counts of queue q in r.
func (s *Server) countsLocked(q queue, r *response) {
	c := s.prekeys[q]
	r.prekeys, r.pqPrekeys = uint64(c[0]), uint64(c[1])
}

// upload replaces the kinds of one-time prekeys req carries, for the
// device from of a member (the account's keys for its first device),
// after checking every key's signature by the member's account key: all
// or nothing.
func (s *Server) upload(from peer.ID, req request) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, q, reason := s.queueOfLocked(from)
	if m == nil {
		return refuse(StatusNotMember, reason)
	}
	if len(req.prekeys) > s.cfg.MaxPrekeys || len(req.pqPrekeys) > s.cfg.MaxPrekeys {
		return refuse(StatusTooLarge, fmt.Sprintf("at most %d one-time prekeys of each kind", s.cfg.MaxPrekeys))
	}
	type key struct {
		kind byte
		id   uint32
		data []byte
	}
	var keys []key
	signer := ed25519.PublicKey(m.Account)
	for i, list := range [][][]byte{req.prekeys, req.pqPrekeys} {
		pq := i == 1
		kind := store.MailboxPrekeyX25519
		if pq {
			kind = store.MailboxPrekeyPQ
		}
		ids := map[uint32]bool{}
		for _, b := range list {
			k, err := e2e.UnmarshalOneTimePrekey(b, pq)
			if err != nil || ids[k.ID] {
				return refuse(StatusMalformed, "a one-time prekey does not parse, or repeats")
			}
			if err := e2e.VerifyOneTimePrekey(signer, k, pq); err != nil {
				return refuse(StatusForbidden, "a one-time prekey is not signed by the member's account")
			}
			ids[k.ID] = true
			keys = append(keys, key{kind, k.ID, b})
		}
	}
	c := s.prekeys[q]
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		for i, kind := range []byte{store.MailboxPrekeyX25519, store.MailboxPrekeyPQ} {
			if (i == 0 && req.prekeys == nil) || (i == 1 && req.pqPrekeys == nil) {
				continue
			}
			if _, err := tx.DeleteMailboxDevicePrekeys(m.Account, q.devBytes(), kind); err != nil {
				return err
			}
			c[i] = 0
		}
		for _, k := range keys {
			if err := tx.PutMailboxDevicePrekey(m.Account, q.devBytes(), k.kind, k.id, k.data); err != nil {
				return err
			}
			c[k.kind-1]++
		}
		return nil
	})
	if err != nil {
		s.log.Warn("upload prekeys", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable; try again later")
	}
	s.prekeys[q] = c
	r := response{status: StatusOK, waiting: uint64(m.waiting(q))}
	s.countsLocked(q, &r)
	return r.marshal()
}

// fetch hands out one one-time prekey of each kind held for the queue tok
// names (a member's account, or one of its devices), deleting them in a
// committed transaction first. Past the peer's
// or the member's budget, or when none are left, the answer is ok with
// none: the sender uses the signed prekeys of the member's record.
func (s *Server) fetch(from peer.ID, req request) []byte {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !limiterLocked(s.fetchers, from, s.cfg.FetchRate, s.cfg.FetchBurst).AllowN(now, 1) {
		return refuse(StatusRateLimited, "too many prekey fetches from this peer; use the signed prekeys")
	}
	q, st, reason := s.tokenQueueLocked([TokenSize]byte(req.token), now)
	if st != StatusOK {
		return refuse(st, reason)
	}
	c := s.prekeys[q]
	r := response{status: StatusOK}
	if c == [2]int{} {
		return r.marshal()
	}
	if !limiterLocked(s.handouts, q, s.cfg.MemberRate, s.cfg.MemberBurst).AllowN(now, 1) {
		r.reason = "this member's one-time prekeys are rationed; use the signed prekeys"
		return r.marshal()
	}
	account := s.members[q.account].Account
	next := c
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		next = c
		for i, kind := range []byte{store.MailboxPrekeyX25519, store.MailboxPrekeyPQ} {
			if c[i] == 0 {
				continue
			}
			b, err := tx.TakeMailboxDevicePrekey(account, q.devBytes(), kind)
			if errors.Is(err, store.ErrNotFound) {
				next[i] = 0
				continue
			}
			if err != nil {
				return err
			}
			next[i]--
			if i == 0 {
				r.prekey = b
			} else {
				r.pqPrekey = b
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("fetch prekeys", "err", err)
		return refuse(StatusOverQuota, "mailbox store unavailable; use the signed prekeys")
	}
	s.prekeys[q] = next
	return r.marshal()
}

// Held is what a mailbox holds for this device: envelopes waiting and
// one-time prekeys of each kind, in the device's queue (for the member's
// first device, or at a mailbox without queues per device, the account's).
type Held struct {
	Waiting   int
	Prekeys   int // X25519 one-time prekeys
	PQPrekeys int // ML-KEM-768 one-time prekeys
	// PerDevice (Register only) says the mailbox keeps a queue per device
	// of a member and takes device tokens (DeviceToken); false from a
	// mailbox older than that.
	PerDevice bool
}

func (r *response) held() Held {
	return Held{Waiting: int(r.waiting), Prekeys: int(r.prekeys), PQPrekeys: int(r.pqPrekeys), PerDevice: r.perDevice}
}

// MaxPrekeys is the most one-time prekeys of each kind one upload carries.
const MaxPrekeys = maxPrekeysWire

// UploadPrekeys gives mb this device's one-time prekeys (at most
// MaxPrekeys of each kind, each signed by the account key; e2e's
// IssueOneTime): the keys of a kind the upload carries replace those the
// mailbox held of that kind for this device (for the member's first
// device, or at a mailbox without queues per device, the account's). It
// returns what mb then holds.
func UploadPrekeys(ctx context.Context, h host.Host, mb peer.ID, x25519, pq []e2e.OneTimePrekey) (Held, error) {
	if len(x25519)+len(pq) == 0 || len(x25519) > MaxPrekeys || len(pq) > MaxPrekeys {
		return Held{}, fmt.Errorf("mailbox: upload of %d and %d one-time prekeys (at most %d each)", len(x25519), len(pq), MaxPrekeys)
	}
	req := request{op: opUpload}
	for _, k := range x25519 {
		req.prekeys = append(req.prekeys, e2e.MarshalOneTimePrekey(k))
	}
	for _, k := range pq {
		req.pqPrekeys = append(req.pqPrekeys, e2e.MarshalOneTimePrekey(k))
	}
	r, err := call(ctx, h, mb, req)
	if err != nil {
		return Held{}, err
	}
	if r.status != StatusOK {
		return Held{}, &RefusedError{r.status, r.reason}
	}
	return r.held(), nil
}

// FetchPrekeys asks mb for one-time prekeys of the member token names
// (Token: the account's, the keys of its first device; DeviceToken: one
// device's): one of each kind, either nil when mb has none to hand out.
// Their shape is checked; the caller checks their signatures against the
// member's account (e2e.Bundle.Verify). A refusal is a *RefusedError.
func FetchPrekeys(ctx context.Context, h host.Host, mb peer.ID, token []byte) (x25519, pq *e2e.OneTimePrekey, err error) {
	r, err := call(ctx, h, mb, request{op: opFetch, token: token})
	if err != nil {
		return nil, nil, err
	}
	if r.status != StatusOK {
		return nil, nil, &RefusedError{r.status, r.reason}
	}
	if r.prekey != nil {
		k, err := e2e.UnmarshalOneTimePrekey(r.prekey, false)
		if err != nil {
			return nil, nil, fmt.Errorf("mailbox %s: %w", mb, err)
		}
		x25519 = &k
	}
	if r.pqPrekey != nil {
		k, err := e2e.UnmarshalOneTimePrekey(r.pqPrekey, true)
		if err != nil {
			return nil, nil, fmt.Errorf("mailbox %s: %w", mb, err)
		}
		pq = &k
	}
	return x25519, pq, nil
}
