package mailbox

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/p2p"
)

// RefusedError is a mailbox's refusal of a request.
type RefusedError struct {
	Status Status
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason != "" {
		return "mailbox refused: " + e.Status.String() + ": " + e.Reason
	}
	return "mailbox refused: " + e.Status.String()
}

func call(ctx context.Context, h host.Host, mb peer.ID, req request) (response, error) {
	b, err := p2p.Request(ctx, h, mb, Protocol, true, req.marshal(), maxResponse)
	if err != nil {
		return response{}, fmt.Errorf("mailbox %s: %w", mb, err)
	}
	r, err := unmarshalResponse(b)
	if err != nil {
		return response{}, fmt.Errorf("mailbox %s: %w", mb, err)
	}
	return r, nil
}

// Register registers the account of k, with this device (cert, whose peer
// id must be h's), at the mailbox mb, and returns what mb holds for it:
// envelopes waiting and one-time prekeys, and whether mb keeps a queue per
// device (Held.PerDevice). A refusal is a *RefusedError.
func Register(ctx context.Context, h host.Host, mb peer.ID, k *identity.AccountKey, cert identity.DeviceCert, now time.Time) (Held, error) {
	certB := cert.Marshal()
	acct := k.Public().Bytes()
	unix := uint64(now.Unix())
	req := request{op: opRegister, account: acct, cert: certB, time: unix,
		signature: k.Sign(LabelRegister, RegisterMessage([]byte(mb), acct, certB, unix))}
	r, err := call(ctx, h, mb, req)
	if err != nil {
		return Held{}, err
	}
	if r.status != StatusOK {
		return Held{}, &RefusedError{r.status, r.reason}
	}
	return r.held(), nil
}

// MaxPerDeposit is the most envelopes one Deposit carries.
const MaxPerDeposit = maxPerDeposit

// Deposit leaves envelopes (sealed with Seal) at mb for the member token
// names (Token) or for one of its devices (DeviceToken), and returns one status per envelope: StatusOK (durable at the
// mailbox), StatusDuplicate (it already waits there), or a refusal. A
// refusal of the whole request is a *RefusedError.
func Deposit(ctx context.Context, h host.Host, mb peer.ID, token []byte, envelopes [][]byte) ([]Status, error) {
	if len(envelopes) == 0 || len(envelopes) > maxPerDeposit {
		return nil, fmt.Errorf("mailbox: deposit of %d envelopes (1..%d)", len(envelopes), maxPerDeposit)
	}
	r, err := call(ctx, h, mb, request{op: opDeposit, token: token, envelopes: envelopes})
	if err != nil {
		return nil, err
	}
	if len(r.results) != len(envelopes) {
		if r.status != StatusOK {
			return nil, &RefusedError{r.status, r.reason}
		}
		return nil, fmt.Errorf("mailbox %s: %d results for %d envelopes", mb, len(r.results), len(envelopes))
	}
	return r.results, nil
}

// Drain fetches up to n (1..256) of the envelopes waiting at mb for this
// device, oldest first: its own queue, which for the member's first device
// (and at a mailbox without queues per device) is the account's. It also
// returns what mb holds besides (Waiting: the envelopes after these; the
// one-time prekeys, so the member knows when to upload more). Nothing is
// deleted until Ack.
func Drain(ctx context.Context, h host.Host, mb peer.ID, n int) ([]Entry, Held, error) {
	n = min(max(n, 1), maxPerDrain)
	r, err := call(ctx, h, mb, request{op: opDrain, max: uint64(n)})
	if err != nil {
		return nil, Held{}, err
	}
	if r.status != StatusOK {
		return nil, Held{}, &RefusedError{r.status, r.reason}
	}
	return r.entries, r.held(), nil
}

// Ack deletes envelopes seqs (at most 256) of this device's queue at mb,
// once they are durable here, and returns how many still wait for it.
func Ack(ctx context.Context, h host.Host, mb peer.ID, seqs []uint64) (int, error) {
	r, err := call(ctx, h, mb, request{op: opAck, seqs: seqs})
	if err != nil {
		return 0, err
	}
	if r.status != StatusOK {
		return 0, &RefusedError{r.status, r.reason}
	}
	return int(r.waiting), nil
}
