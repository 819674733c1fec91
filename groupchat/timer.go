package groupchat

import (
	"context"
	"time"

	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/store"
)

// Disappearing messages in a group: an admin sets the group's timer (a
// SetTimer operation of its log, so every member holds the same one);
// each message sent while it is on carries it (the plaintext's field 5),
// and every member device deletes the message, its file with it (the
// node's, told by EventDeleted), that long after it stored it. The
// message's seen id stays, so the same carrier coming again shows
// nothing.

// sweepEvery is how often expired messages are looked for.
const sweepEvery = 2 * time.Second

// maxSweep bounds the messages one sweep deletes (the next takes the
// rest).
const maxSweep = 512

// SetTimer sets g's disappearing-message timer (0: off; otherwise whole
// seconds from group.MinTimer to group.MaxTimer); admins only.
func (s *Service) SetTimer(ctx context.Context, g group.ID, d time.Duration) (Info, error) {
	return s.change(ctx, g, group.Op{Kind: group.SetTimer, Timer: d})
}

// sweep deletes the messages whose time is up.
func (s *Service) sweep() {
	now := s.cfg.Now()
	var gone []Event
	s.mu.Lock()
	err := s.cfg.DB.Update(func(tx *store.Tx) error {
		gone = gone[:0]
		d := in(tx)
		var keys [][]byte
		err := d.sp.Scan(pfxExpiry, nil, false, func(k []byte, _ func() ([]byte, error)) (bool, error) {
			tail := k[len(pfxExpiry):]
			if len(tail) != 8+16+16 {
				keys = append(keys, append([]byte(nil), k...)) // damaged: dropped
				return true, nil
			}
			if when := time.Unix(0, int64(be64to(tail[:8]))); when.After(now) || len(keys) == maxSweep {
				return false, nil
			}
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := d.sp.Delete(k); err != nil {
				return err
			}
			tail := k[len(pfxExpiry):]
			if len(tail) != 8+16+16 {
				continue
			}
			g, id := group.ID(tail[8:24]), tail[24:]
			at, err := d.sp.Get(key(pfxMsgID, g[:], id))
			if err != nil {
				continue // gone already
			}
			mk := key(pfxMsg, g[:], at, id)
			v, err := d.sp.Get(mk)
			if err != nil {
				continue
			}
			if err := d.sp.Delete(mk); err != nil {
				return err
			}
			if m, err := unmarshalStored(v); err == nil {
				msg := m.message(g)
				gone = append(gone, Event{Kind: EventDeleted, Group: g, Message: &msg})
			}
		}
		return nil
	})
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("expired group messages not deleted", "err", err)
		return
	}
	for _, e := range gone {
		s.emit(e)
	}
}

func be64to(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
