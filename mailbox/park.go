package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/callsign/callsign/files"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/store"
)

// Parked files (see the package doc, "Parked files"): a sender parks the
// sealed bytes of a message's attachment here for a member whose devices
// it can't reach, and the member's devices fetch them from here.
const (
	// ParkProtocol takes a file to park: one request frame, one response
	// frame, the sealed bytes from where the response says, and a last
	// response frame.
	ParkProtocol protocol.ID = "/callsign/mailbox/park/1.0.0"
	// FileProtocol serves the parked files to the member's devices, in
	// the form of files.Protocol.
	FileProtocol protocol.ID = "/callsign/mailbox/file/1.0.0"
)

// Defaults of the Config fields for parked files.
const (
	DefaultMaxFile       = files.DefaultLimit // plaintext bytes of one file
	DefaultMaxFileBytes  = 1 << 30            // sealed bytes parked for one member
	DefaultMaxFilesTotal = 10 << 30           // sealed bytes parked for all members
	maxParkRequest       = 128
	maxParkResponse      = 16 + maxReason
)

// parked is one file parked for one member.
type parked struct {
	size    int64 // sealed bytes
	expires time.Time
}

// parkKey is a parked file's store key: mbox/p/<account:32><hash:32>.
func parkKey(account [32]byte, h files.Hash) []byte {
	return append(append(append([]byte(nil), store.PrefixMailboxFiles...), account[:]...), h[:]...)
}

func (p parked) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.expires.UnixNano()))
	return binary.BigEndian.AppendUint64(b, uint64(p.size))
}

func unmarshalParked(b []byte) (parked, error) {
	if len(b) != 16 {
		return parked{}, fmt.Errorf("%w: a parked file's entry of %d bytes", errMalformed, len(b))
	}
	return parked{expires: time.Unix(0, int64(binary.BigEndian.Uint64(b))), size: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

type parkRequest struct {
	token []byte
	hash  files.Hash
	size  int64
}

func (r parkRequest) marshal() []byte {
	var e wire.Encoder
	e.Bytes(1, r.token)
	e.Bytes(2, r.hash[:])
	e.Uint(3, uint64(r.size))
	return e.B
}

func unmarshalParkRequest(b []byte) (parkRequest, error) {
	d := wire.NewDecoder(b, errMalformed)
	r := parkRequest{token: d.Fixed(1, TokenSize)}
	copy(r.hash[:], d.Fixed(2, len(r.hash)))
	r.size = int64(d.Uint(3, uint64(files.SealedSize(files.MaxLimit))))
	if err := d.End(); err != nil {
		return parkRequest{}, err
	}
	if r.size == 0 {
		return parkRequest{}, fmt.Errorf("%w: a file of no bytes", errMalformed)
	}
	return r, nil
}

type parkResponse struct {
	status Status
	reason string
	have   int64 // ok: the sealed bytes held; send the rest
}

func (r parkResponse) marshal() []byte {
	var e wire.Encoder
	e.Uint(1, uint64(r.status))
	e.String(2, r.reason)
	e.Uint(3, uint64(r.have))
	return e.B
}

func unmarshalParkResponse(b []byte) (parkResponse, error) {
	d := wire.NewDecoder(b, errMalformed)
	r := parkResponse{status: Status(d.Uint(1, uint64(maxStatus)))}
	r.reason = d.String(2, 0, maxReason)
	r.have = int64(d.Uint(3, uint64(files.SealedSize(files.MaxLimit))))
	if err := d.End(); err != nil {
		return parkResponse{}, err
	}
	if r.status == 0 {
		return parkResponse{}, fmt.Errorf("%w: no status", errMalformed)
	}
	return r, nil
}

// startFiles opens the parked files' directory and index and serves both
// protocols; without Config.FilesDir the mailbox parks nothing.
func (s *Server) startFiles() error {
	if s.cfg.FilesDir == "" {
		return nil
	}
	st, err := files.OpenStore(s.cfg.FilesDir, s.cfg.MaxFile)
	if err != nil {
		return fmt.Errorf("mailbox files: %w", err)
	}
	s.fileStore = st
	err = s.cfg.DB.View(func(tx *store.Tx) error {
		sp := tx.Space(store.SpaceMailbox)
		return sp.Scan(store.PrefixMailboxFiles, nil, false, func(k []byte, val func() ([]byte, error)) (bool, error) {
			rest := k[len(store.PrefixMailboxFiles):]
			v, err := val()
			if err != nil {
				return false, err
			}
			p, err := unmarshalParked(v)
			if err != nil || len(rest) != 64 {
				return false, store.Corrupt(k, errMalformed)
			}
			s.addParkedLocked([32]byte(rest[:32]), files.Hash(rest[32:]), p)
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("mailbox files: %w", err)
	}
	// Bytes no entry names (a crash between deleting an entry and its
	// file) go.
	hs, err := st.Hashes()
	if err != nil {
		return fmt.Errorf("mailbox files: %w", err)
	}
	for _, h := range hs {
		if s.parkedRefs[h] == 0 {
			st.Remove(h)
		}
	}
	s.fileSrv = files.NewService(files.Config{
		Host: s.cfg.Host, Store: st, Protocol: FileProtocol, Allow: s.mayFetch,
		// A member behind NAT reaches its mailbox through a relay too.
		AllowLimited: true, Logger: s.log,
	})
	s.parkSrv = p2p.HandleStream(s.cfg.Host, ParkProtocol, p2p.HandlerConfig{
		Timeout:       time.Hour, // 100 MiB at 1 Mbit/s; files.IdleTimeout catches a stall
		MaxRequest:    maxParkRequest,
		Rate:          rate.Limit(2),
		Burst:         10,
		MaxConcurrent: 8,
		Logger:        s.log,
	}, s.park)
	return nil
}

// addParkedLocked records p as parked for account (replacing an entry
// for the same file).
func (s *Server) addParkedLocked(account [32]byte, h files.Hash, p parked) {
	m := s.parked[account]
	if m == nil {
		m = map[files.Hash]parked{}
		s.parked[account] = m
	}
	if old, ok := m[h]; ok {
		s.parkedBytes[account] -= old.size
		s.parkedTotal -= old.size
	} else {
		s.parkedRefs[h]++
	}
	m[h] = p
	s.parkedBytes[account] += p.size
	s.parkedTotal += p.size
}

// removeParkedLocked forgets file h parked for account; last reports
// whether no member has it parked any more (its bytes may go).
func (s *Server) removeParkedLocked(account [32]byte, h files.Hash) (last bool) {
	m := s.parked[account]
	old, ok := m[h]
	if !ok {
		return false
	}
	delete(m, h)
	if len(m) == 0 {
		delete(s.parked, account)
	}
	if s.parkedBytes[account] -= old.size; s.parkedBytes[account] <= 0 {
		delete(s.parkedBytes, account)
	}
	s.parkedTotal -= old.size
	if s.parkedRefs[h]--; s.parkedRefs[h] > 0 {
		return false
	}
	delete(s.parkedRefs, h)
	return true
}

// unpark deletes file h parked for account, and its bytes if no one else
// has it parked.
func (s *Server) unpark(account [32]byte, h files.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unparkLocked(account, h)
}

func (s *Server) unparkLocked(account [32]byte, h files.Hash) error {
	if err := s.cfg.DB.Update(func(tx *store.Tx) error {
		return tx.Space(store.SpaceMailbox).Delete(parkKey(account, h))
	}); err != nil {
		s.log.Warn("delete a parked file", "err", err)
		return err
	}
	if s.removeParkedLocked(account, h) && !s.arriving[h] {
		if err := s.fileStore.Remove(h); err != nil {
			s.log.Warn("delete a parked file", "err", err)
		}
	}
	return nil
}

// evictOldestLocked deletes the member's parked file that expires first,
// other than keep and those arriving; false when there is none.
func (s *Server) evictOldestLocked(account [32]byte, keep files.Hash) bool {
	var oldest files.Hash
	var at time.Time
	found := false
	for h, p := range s.parked[account] {
		if h != keep && !s.arriving[h] && (!found || p.expires.Before(at)) {
			oldest, at, found = h, p.expires, true
		}
	}
	return found && s.unparkLocked(account, oldest) == nil
}

// sweepFiles deletes the parked files whose time is up.
func (s *Server) sweepFiles() {
	if s.fileStore == nil {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, m := range s.parked {
		for h, p := range m {
			if now.Before(p.expires) {
				continue
			}
			if s.unparkLocked(a, h) != nil {
				return
			}
		}
	}
}

// Parked counts what ParkedFiles reports: per member, so one file parked
// for two counts twice.
type Parked struct {
	Files int   // held whole: a member's device can fetch them
	Bytes int64 // their sealed bytes
	// Partial files are still arriving, or were cut short and wait for
	// their sender to resume the park; nobody can fetch them yet. Their
	// bytes count against the quotas already.
	Partial int
}

// ParkedFiles counts the files parked here.
func (s *Server) ParkedFiles() Parked {
	type entry struct {
		h    files.Hash
		size int64
	}
	var all []entry
	s.mu.Lock()
	for _, m := range s.parked {
		for h, p := range m {
			all = append(all, entry{h, p.size})
		}
	}
	s.mu.Unlock()
	// Whole means on disk under its own name (a file arriving is not:
	// files.Store renames it once it is whole and matches its hash),
	// looked at outside the lock.
	whole := map[files.Hash]bool{}
	for _, e := range all {
		if _, seen := whole[e.h]; !seen {
			whole[e.h] = s.fileStore.Has(e.h)
		}
	}
	var st Parked
	for _, e := range all {
		if whole[e.h] {
			st.Files++
			st.Bytes += e.size
		} else {
			st.Partial++
		}
	}
	return st
}

// mayFetch reports whether peer p is a registered device of a member for
// whom file h is parked (and not expired).
func (s *Server) mayFetch(p peer.ID, h files.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byPeer[p]
	if !ok {
		return false
	}
	f, ok := s.parked[a][h]
	return ok && s.cfg.Now().Before(f.expires)
}

// park serves ParkProtocol.
func (s *Server) park(ctx context.Context, st network.Stream) error {
	st.SetReadDeadline(time.Now().Add(files.IdleTimeout))
	b, err := p2p.ReadFrame(st, maxParkRequest)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	answer := func(r parkResponse) error {
		st.SetWriteDeadline(time.Now().Add(files.IdleTimeout))
		return p2p.WriteFrame(st, r.marshal())
	}
	req, err := unmarshalParkRequest(b)
	if err != nil {
		return answer(parkResponse{status: StatusMalformed, reason: "the request does not parse"})
	}
	account, r := s.reservePark(req)
	if r.status != StatusOK {
		return answer(r)
	}
	defer s.endPark(req.hash)
	in, err := s.fileStore.Begin(req.hash, req.size)
	if err != nil {
		s.log.Warn("park a file", "err", err)
		return answer(parkResponse{status: StatusOverQuota, reason: "mailbox store unavailable; try again later"})
	}
	defer in.Close()
	r.have = in.Have()
	if err := answer(r); err != nil {
		return err
	}
	rd := io.LimitReader(p2p.IdleReader(st, files.IdleTimeout), req.size-in.Have())
	if _, err := io.CopyBuffer(in, p2p.ContextReader(ctx, rd), make([]byte, 256<<10)); err != nil {
		return p2p.WithCode(p2p.CodeTimeout, err) // what arrived is kept: the sender resumes
	}
	if err := in.Finish(); err != nil {
		if errors.Is(err, files.ErrHashMismatch) {
			s.unpark(account, req.hash)
			return answer(parkResponse{status: StatusMalformed, reason: "the bytes hash to another file"})
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return p2p.WithCode(p2p.CodeBadRequest, err) // the sender closed early; kept
		}
		s.log.Warn("park a file", "err", err)
		return answer(parkResponse{status: StatusOverQuota, reason: "mailbox store unavailable; try again later"})
	}
	s.mu.Lock()
	// No longer arriving before the sender hears it is whole (a park of
	// it now is a duplicate); the deferred endPark finds nothing to do.
	delete(s.arriving, req.hash)
	if s.parkedRefs[req.hash] == 0 {
		s.fileStore.Remove(req.hash) // expired while it arrived
	}
	s.mu.Unlock()
	return answer(parkResponse{status: StatusOK, have: req.size})
}

// reservePark checks a park request against the member's token, the file
// and byte quotas, records the file as parked for the member (its bytes
// count from now on, also while it arrives) and marks it arriving. It
// returns the member, and the response: StatusOK to receive the bytes,
// StatusDuplicate when the whole file is here already (its expiry moved on).
func (s *Server) reservePark(req parkRequest) ([32]byte, parkResponse) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	q, tst, reason := s.tokenQueueLocked([TokenSize]byte(req.token), now)
	if tst != StatusOK {
		return [32]byte{}, parkResponse{status: tst, reason: reason}
	}
	a := q.account
	if req.size > files.SealedSize(s.fileStore.Limit()) {
		return a, parkResponse{status: StatusTooLarge, reason: fmt.Sprintf("this mailbox parks files of at most %d bytes", s.fileStore.Limit())}
	}
	if s.arriving[req.hash] {
		return a, parkResponse{status: StatusRateLimited, reason: "this file is arriving already; try again later"}
	}
	prev, had := s.parked[a][req.hash]
	if had && prev.size != req.size {
		return a, parkResponse{status: StatusMalformed, reason: "a file of this hash with another size is parked"}
	}
	grow := req.size
	if had {
		grow = 0
	}
	if req.size > s.cfg.MaxFileBytes {
		return a, parkResponse{status: StatusOverQuota, reason: "no room for this file here"}
	}
	// A member's room is made by deleting its oldest parked files: anyone
	// may park for a member, and junk must not keep the member's next
	// files out for a month. (What goes still waits on its sender's
	// devices.)
	for s.parkedBytes[a]+grow > s.cfg.MaxFileBytes {
		if !s.evictOldestLocked(a, req.hash) {
			return a, parkResponse{status: StatusOverQuota, reason: "no room for this file here"}
		}
	}
	if s.parkedTotal+grow > s.cfg.MaxFilesTotal {
		return a, parkResponse{status: StatusOverQuota, reason: "no room for this file here"}
	}
	p := parked{size: req.size, expires: now.Add(s.cfg.FileExpiry)}
	if err := s.cfg.DB.Update(func(tx *store.Tx) error {
		return tx.Space(store.SpaceMailbox).Set(parkKey(a, req.hash), p.marshal())
	}); err != nil {
		s.log.Warn("park a file", "err", err)
		return a, parkResponse{status: StatusOverQuota, reason: "mailbox store unavailable; try again later"}
	}
	s.addParkedLocked(a, req.hash, p)
	if s.fileStore.Has(req.hash) {
		return a, parkResponse{status: StatusDuplicate, have: req.size}
	}
	s.arriving[req.hash] = true
	return a, parkResponse{status: StatusOK}
}

func (s *Server) endPark(h files.Hash) {
	s.mu.Lock()
	delete(s.arriving, h)
	s.mu.Unlock()
}

// Park parks the sealed file h of src at mailbox mb for the member token
// names (a recipient token, as for a deposit), resuming a park an earlier
// call left off. It returns nil once the mailbox holds the whole file.
// A refusal is a *RefusedError.
func Park(ctx context.Context, h host.Host, mb peer.ID, token []byte, src *files.Store, hash files.Hash) error {
	f, size, err := src.Sealed(hash)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := p2p.Dial(ctx, h, mb, ParkProtocol, true)
	if err != nil {
		return fmt.Errorf("park at %v: %w", mb, err)
	}
	defer st.Reset()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	exchange := func(send []byte) (parkResponse, error) {
		if send != nil {
			st.SetWriteDeadline(time.Now().Add(files.IdleTimeout))
			if err := p2p.WriteFrame(st, send); err != nil {
				return parkResponse{}, err
			}
		}
		st.SetReadDeadline(time.Now().Add(files.IdleTimeout))
		b, err := p2p.ReadFrame(st, maxParkResponse)
		if err != nil {
			return parkResponse{}, err
		}
		return unmarshalParkResponse(b)
	}
	r, err := exchange(parkRequest{token: token, hash: hash, size: size}.marshal())
	switch {
	case err != nil:
		return fmt.Errorf("park at %v: %w", mb, err)
	case r.status == StatusDuplicate:
		return nil
	case r.status != StatusOK:
		return &RefusedError{Status: r.status, Reason: r.reason}
	case r.have > size:
		return fmt.Errorf("park at %v: %w: it holds %d of %d bytes", mb, errMalformed, r.have, size)
	}
	if _, err := f.Seek(r.have, io.SeekStart); err != nil {
		return err
	}
	w := p2p.IdleWriter(st, files.IdleTimeout)
	if _, err := io.CopyBuffer(w, io.LimitReader(f, size-r.have), make([]byte, 256<<10)); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("park at %v: %w", mb, err)
	}
	if r, err = exchange(nil); err != nil {
		return fmt.Errorf("park at %v: %w", mb, err)
	}
	if r.status != StatusOK {
		return &RefusedError{Status: r.status, Reason: r.reason}
	}
	st.Close()
	return nil
}
