package msg

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Group carriers (content kind 8): a group's operations, sender keys and
// messages travel to every device of every member as control messages of
// their own, one outbox entry per device (out/<id>\0<dev>), acknowledged
// and retried like a read receipt, and, unlike one, deposited at the
// recipient's mailboxes when its device can't be reached (mailbox.go).
// msg does not read them: the node's group layer makes them and applies
// them (Config.OnGroup).
//
// Envelopes (outbox.go): 0x03 || content is a carrier not yet sealed,
// 0x04 || deliver frame a sealed one; 0x05 and 0x06 the same for a
// carrier that goes to no mailbox (QueueGroupDirect).
const (
	envGroup             byte = 0x03
	envGroupSealed       byte = 0x04
	envGroupDirect       byte = 0x05
	envGroupDirectSealed byte = 0x06
)

// selfRefreshWait bounds the look-up of this account's own record a
// QueueGroup for the siblings makes before the first one completed.
const selfRefreshWait = 3 * time.Second

// QueueGroup queues each of bodies (at most MaxGroupBody bytes each, in
// order) for every device of each account in to: the devices of the
// account's record as last looked up (before a look-up, the account's
// devices once it is looked up), or, for this account itself, its other
// devices. Each account's are queued in one transaction (several
// accounts' share one, up to 4 MiB); each device gets them in the order
// given, after any carrier queued before.
func (s *Service) QueueGroup(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error {
	return s.queueGroup(ctx, to, nil, false, bodies)
}

// QueueGroupDirect is QueueGroup for carriers that wait for the
// recipient's devices themselves and go to no mailbox, as read receipts
// do: a group's receipts, which would otherwise fill an offline sender's
// mailbox with one envelope per member per message.
func (s *Service) QueueGroupDirect(ctx context.Context, to []identity.AccountID, bodies ...[]byte) error {
	return s.queueGroup(ctx, to, nil, true, bodies)
}

// QueueGroupFile is QueueGroup for the carriers of a message with an
// attachment: file, which msg does not read, is kept with each copy in
// the outbox (OutboxEntry.File) and handed to Config.OnDeposited with
// each a mailbox takes, so that the attachment can be parked beside it,
// after a restart too.
func (s *Service) QueueGroupFile(ctx context.Context, to []identity.AccountID, file []byte, bodies ...[]byte) error {
	return s.queueGroup(ctx, to, file, false, bodies)
}

func (s *Service) queueGroup(ctx context.Context, to []identity.AccountID, file []byte, direct bool, bodies [][]byte) error {
	if !s.running() {
		return fmt.Errorf("group: %w", ErrClosed)
	}
	if s.revoked.Load() {
		return fmt.Errorf("group: %w", ErrDeviceRevoked)
	}
	for _, b := range bodies {
		if len(b) == 0 || len(b) > MaxGroupBody {
			return fmt.Errorf("group: %w: a carrier of %d bytes, at most %d", ErrTooLarge, len(b), MaxGroupBody)
		}
	}
	accts := slices.Clone(to)
	slices.Sort(accts)
	accts = slices.Compact(accts)
	for _, acct := range accts {
		if _, err := identity.ParseAccountID(string(acct)); err != nil {
			return fmt.Errorf("group: %w: %v", ErrBadRecipient, err)
		}
	}
	// Views older than Config.ViewAge are read again first, at once (each
	// within freshViewWait), as a send does: a device linked since gets
	// the carriers too.
	var wg sync.WaitGroup
	for _, acct := range accts {
		if acct != s.selfID {
			wg.Go(func() { s.freshenView(ctx, acct) })
		}
	}
	wg.Wait()
	var siblings []*peerState
	if slices.Contains(accts, s.selfID) {
		sib, known := s.siblings()
		if !known {
			wctx, cancel := context.WithTimeout(ctx, selfRefreshWait)
			err := s.RefreshSelf(wctx)
			cancel()
			if sib, known = s.siblings(); !known {
				s.log.Info("group carriers not copied to this account's other devices: its record is not known yet", "err", err)
			}
		}
		siblings = sib
	}
	// One carrier's order across calls: the accounts' locks, taken in
	// account order, are held until each lane has its ids.
	lanes := make(map[identity.AccountID][]*peerState, len(accts))
	for _, acct := range accts {
		a := s.acct(acct)
		a.mu.Lock()
		defer a.mu.Unlock()
		if acct == s.selfID {
			lanes[acct] = siblings
			continue
		}
		s.mu.Lock()
		lanes[acct] = s.targetsLocked(a)
		s.mu.Unlock()
	}
	// An id per account: out/<id>\0<dev> does not name the account, and
	// the accounts not looked up yet all wait under the zero device.
	envs := make([][]byte, len(bodies))
	size := 0
	for i, b := range bodies {
		tag := envGroup
		if direct {
			tag = envGroupDirect
		}
		envs[i] = append([]byte{tag}, (&content{kind: contentGroup, body: b}).marshal()...)
		size += len(envs[i])
	}
	ids := make(map[identity.AccountID][]string, len(accts))
	now := s.stamp()
	// The accounts' copies go in transactions of at most maxGroupTxn
	// bytes (a long log sent to a thousand new members is hundreds of
	// megabytes: not one transaction's worth); each account's in one.
	for start := 0; start < len(accts); {
		end, bytes := start, 0
		for end < len(accts) && (end == start || bytes+size*max(1, len(lanes[accts[end]])) <= maxGroupTxn) {
			bytes += size * max(1, len(lanes[accts[end]]))
			end++
		}
		batch := accts[start:end]
		err := s.cfg.DB.Update(func(tx *store.Tx) error {
			data := s.data(tx)
			for _, acct := range batch {
				ids[acct] = ids[acct][:0]
				for _, env := range envs {
					id := newMsgID().String()
					ids[acct] = append(ids[acct], id)
					for _, ps := range lanes[acct] {
						e := OutboxEntry{ID: id, Peer: string(acct), Dev: ps.dev, Envelope: env, NextAttempt: now, CreatedAt: now}
						if acct != s.selfID {
							e.File = file
						}
						if err := data.PutOutbox(e); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("group: %w", err)
		}
		for _, acct := range batch {
			for _, ps := range lanes[acct] {
				s.enqueue(ps, false, nil, ids[acct]...)
			}
		}
		start = end
	}
	return nil
}

// maxGroupTxn bounds the bytes of one transaction of QueueGroup.
const maxGroupTxn = 4 << 20
