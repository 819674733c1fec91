package p2p

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/wire"
)

// The addresses signal: a device telling a contact, inside their E2E
// session, the direct addresses it does not announce (node/privacy.go
// decides who gets it). It rides the call-signal channel and is told apart
// by its first field: a call signal's first field is 1, this one's is 16,
// which call's decoder never accepts as a signal (it needs field 1 first;
// an older node drops it). Protobuf (internal/wire, schema in
// addrsignal.proto), at most maxAddrsSignal bytes:
//
//	field 16 peer  bytes  required, first: the sending device's peer id
//	                      (2 to 64 bytes)
//	field 17 addr  bytes  1 to MaxSignalAddrs times: a binary multiaddr of
//	                      1 to 64 bytes, /ip4 or /ip6 then /tcp or
//	                      /udp/…/quic-v1, nothing relayed
//	field 18 and up       additions: skipped when unknown
//
// It is a frame between peers, so it follows docs/ARCHITECTURE.md ("Wire
// formats"): a newer device's additions (numbered 18 and up, as 16 and 17
// are taken) are skipped, an unknown field below 16 is refused. Its
// version is that of the call signals it rides with.
const (
	addrsFieldPeer protowire.Number = 16
	addrsFieldAddr protowire.Number = 17
	// MaxSignalAddrs caps the addresses in one addresses signal.
	MaxSignalAddrs = 16
	maxAddrLen     = 64
	maxAddrsSignal = 2 + 64 + MaxSignalAddrs*(2+maxAddrLen)
)

// ErrBadAddrsSignal is wrapped by every DecodeAddrsSignal failure.
var ErrBadAddrsSignal = errors.New("bad addresses signal")

// IsAddrsSignal reports whether b starts as an addresses signal (and not,
// say, as a call signal); DecodeAddrsSignal says whether it is a good one.
func IsAddrsSignal(b []byte) bool {
	n, _, l := protowire.ConsumeTag(b)
	return l > 0 && n == addrsFieldPeer
}

// OfferableAddr reports whether a may go in an addresses signal: a direct
// TCP or QUIC address (IsTransportAddr) short enough for the format.
func OfferableAddr(a ma.Multiaddr) bool {
	return IsTransportAddr(a) && len(a.Bytes()) <= maxAddrLen
}

// EncodeAddrsSignal is the addresses signal of device id offering addrs,
// each of which must be OfferableAddr, at most MaxSignalAddrs.
func EncodeAddrsSignal(id peer.ID, addrs []ma.Multiaddr) []byte {
	var e wire.Encoder
	e.Bytes(addrsFieldPeer, []byte(id))
	for _, a := range addrs {
		e.Bytes(addrsFieldAddr, a.Bytes())
	}
	return e.B
}

// DecodeAddrsSignal decodes an addresses signal, skipping a newer
// device's additions.
func DecodeAddrsSignal(b []byte) (peer.AddrInfo, error) {
	ai, _, err := decodeAddrsSignal(b)
	return ai, err
}

// decodeAddrsSignal is DecodeAddrsSignal that also returns the additions
// it skipped.
func decodeAddrsSignal(b []byte) (peer.AddrInfo, []byte, error) {
	if len(b) > maxAddrsSignal {
		return peer.AddrInfo{}, nil, ErrBadAddrsSignal
	}
	d := wire.NewFrameDecoder(b, ErrBadAddrsSignal, maxAddrsSignal)
	raw := d.Bytes(addrsFieldPeer, 2, 64)
	if raw == nil {
		d.Fail("field %d missing", addrsFieldPeer)
	}
	var addrs []ma.Multiaddr
	for d.More(addrsFieldAddr) {
		if len(addrs) == MaxSignalAddrs {
			d.Fail("more than %d addresses", MaxSignalAddrs)
			break
		}
		ab := d.Bytes(addrsFieldAddr, 1, maxAddrLen)
		if ab == nil {
			break
		}
		a, err := ma.NewMultiaddrBytes(ab)
		if err != nil {
			d.Fail("address: %v", err)
			break
		}
		if !OfferableAddr(a) {
			d.Fail("address %s: not a direct TCP or QUIC address", a)
			break
		}
		addrs = append(addrs, a)
	}
	if err := d.End(); err != nil {
		return peer.AddrInfo{}, nil, err
	}
	if len(addrs) == 0 {
		return peer.AddrInfo{}, nil, errors.Join(ErrBadAddrsSignal, errors.New("no address"))
	}
	id, err := peer.IDFromBytes(raw)
	if err != nil {
		return peer.AddrInfo{}, nil, errors.Join(ErrBadAddrsSignal, err)
	}
	return peer.AddrInfo{ID: id, Addrs: addrs}, d.Skipped(), nil
}
