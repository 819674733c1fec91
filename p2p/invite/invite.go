// Package invite is the invite a community node hands to newcomers: a short
// text carrying the node's peer id, the addresses it can be dialled on and,
// optionally, the community's name. `callsign up --public` prints it (and a
// QR code of it), `callsign invite` prints it again, and a newcomer passes it
// to `callsign up --join`.
//
// It imports libp2p's core types and internal/wire only: it knows nothing
// of nodes, handles or storage.
//
// # Format
//
//	invite  = "callsign:join/" base32(payload || check)
//	          (RFC 4648 alphabet in lowercase, no padding; any case is read)
//	check   = SHA-256("callsign/v1/invite" || payload)[:4]
//	payload = protobuf, canonical (internal/wire):
//	  1 version  varint, required, 1
//	  2 peer     bytes,  required, a libp2p peer id (2..64 bytes)
//	  3 addr     bytes,  repeated 1..MaxAddrs times, a binary multiaddr
//	             (1..128 bytes) without /p2p: ip4, ip6, dns, dns4 or dns6,
//	             then tcp/PORT or udp/PORT/quic-v1, PORT not 0
//	  4 name     bytes,  optional, the community's name (UTF-8, 1..64 bytes,
//	             no control characters)
//	  16 and up          additions a newer callsign may write: skipped when
//	             unknown and kept, so the invite encodes back as it was
//
// The schema is invite.proto. An invite travels from newer nodes to older
// ones, so it follows the rule for frames between peers in
// docs/ARCHITECTURE.md ("Wire formats"): an unknown field numbered 1..15 is
// refused, unknown additions are skipped; a version above 1 is refused with
// a message saying a newer callsign may read it.
//
// An invite is at most MaxLen characters, so it always fits the web app's
// QR codes. Parse checks the length before decoding anything, then the
// checksum, then every field; an invite that fails any check is refused
// with ErrInvalid and a reason a person can act on.
package invite

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/textcode"
	"github.com/callsign/callsign/internal/wire"
)

// Prefix starts every invite.
const Prefix = "callsign:join/"

// Limits of an invite.
const (
	MaxLen     = 512 // characters of the whole text
	MaxAddrs   = 8   // addresses in one invite
	MaxNameLen = 64  // bytes of the community name
	maxAddrLen = 128 // bytes of one binary multiaddr
	maxPeerLen = 64  // bytes of a peer id
	version    = 1
	fVersion   = protowire.Number(1)
	fPeer      = protowire.Number(2)
	fAddr      = protowire.Number(3)
	fName      = protowire.Number(4)
)

// ErrInvalid is wrapped by every error Parse and Encode return.
var ErrInvalid = errors.New("invalid invite")

// format is an invite's text form: its prefix and checksum.
var format = textcode.Format{Prefix: Prefix, Label: "callsign/v1/invite", What: "an invite", MaxLen: MaxLen}

// Invite leads to one community node.
type Invite struct {
	Peer  peer.ID
	Addrs []ma.Multiaddr // without /p2p
	Name  string         // the community's name; "" = none

	extra []byte // additions a newer callsign wrote (see the package doc)
}

// AddrInfo is the invite's node, ready for host.Connect.
func (inv Invite) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: inv.Peer, Addrs: append([]ma.Multiaddr(nil), inv.Addrs...)}
}

// Encode returns the invite's text. It fails with ErrInvalid when the
// invite would not parse: no peer, no dialable address, too many or too
// long addresses, a bad name, or a text over MaxLen.
func (inv Invite) Encode() (string, error) {
	if err := inv.check(); err != nil {
		return "", err
	}
	s := inv.encode()
	if len(s) > MaxLen {
		return "", fmt.Errorf("%w: %d characters, at most %d (fewer addresses or a shorter name)", ErrInvalid, len(s), MaxLen)
	}
	return s, nil
}

// encode writes the invite unchecked.
func (inv Invite) encode() string {
	var e wire.Encoder
	e.Uint(fVersion, version)
	e.Bytes(fPeer, []byte(inv.Peer))
	for _, a := range inv.Addrs {
		e.Bytes(fAddr, a.Bytes())
	}
	e.Bytes(fName, []byte(inv.Name))
	e.Raw(inv.extra)
	return format.Encode(e.B)
}

// String is the invite's text, or "" if it can't be encoded.
func (inv Invite) String() string {
	s, _ := inv.Encode()
	return s
}

// Parse reads an invite. Surrounding white space and the letters' case do
// not matter. Errors wrap ErrInvalid and say what is wrong.
func Parse(s string) (Invite, error) {
	payload, err := format.Decode(s, ErrInvalid)
	if err != nil {
		return Invite{}, err
	}
	d := wire.NewFrameDecoder(payload, ErrInvalid, MaxLen)
	v := d.Uint(fVersion, 1<<32)
	if d.Err() == nil && v > version {
		return Invite{}, fmt.Errorf("%w: version %d; this callsign reads version %d (a newer callsign may read it)", ErrInvalid, v, version)
	}
	pid := d.Bytes(fPeer, 2, maxPeerLen)
	var addrs [][]byte
	for d.More(fAddr) && len(addrs) <= MaxAddrs {
		addrs = append(addrs, d.Bytes(fAddr, 1, maxAddrLen))
	}
	name := d.Bytes(fName, 1, MaxNameLen)
	if err := d.End(); err != nil {
		return Invite{}, err
	}
	if v != version {
		return Invite{}, fmt.Errorf("%w: version %d; this callsign reads version %d (a newer callsign may read it)", ErrInvalid, v, version)
	}
	var inv Invite
	if inv.Peer, err = peer.IDFromBytes(pid); err != nil {
		return Invite{}, fmt.Errorf("%w: bad peer id: %v", ErrInvalid, err)
	}
	if len(addrs) > MaxAddrs {
		return Invite{}, fmt.Errorf("%w: more than %d addresses", ErrInvalid, MaxAddrs)
	}
	for _, b := range addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return Invite{}, fmt.Errorf("%w: bad address: %v", ErrInvalid, err)
		}
		inv.Addrs = append(inv.Addrs, a)
	}
	inv.Name = string(name)
	inv.extra = d.Skipped()
	if err := inv.check(); err != nil {
		return Invite{}, err
	}
	return inv, nil
}

// check validates what Encode writes and Parse returns.
func (inv Invite) check() error {
	if err := inv.Peer.Validate(); err != nil {
		return fmt.Errorf("%w: no peer id", ErrInvalid)
	}
	if len(inv.Addrs) == 0 {
		return fmt.Errorf("%w: it leads nowhere: no address", ErrInvalid)
	}
	if len(inv.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: more than %d addresses", ErrInvalid, MaxAddrs)
	}
	for _, a := range inv.Addrs {
		if len(a.Bytes()) > maxAddrLen {
			return fmt.Errorf("%w: address over %d bytes", ErrInvalid, maxAddrLen)
		}
		if err := Dialable(a); err != nil {
			return fmt.Errorf("%w: it leads nowhere: %v", ErrInvalid, err)
		}
	}
	if len(inv.Name) > MaxNameLen || !utf8.ValidString(inv.Name) || strings.IndexFunc(inv.Name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: the community name must be at most %d bytes of text", ErrInvalid, MaxNameLen)
	}
	return nil
}

// Dialable reports why a can't be in an invite, or nil: it must be an IP
// address (not unspecified, multicast or link-local) or a DNS name, then
// tcp/PORT or udp/PORT/quic-v1 with PORT not 0, and nothing after that.
func Dialable(a ma.Multiaddr) error {
	if len(a) != 2 && len(a) != 3 {
		return fmt.Errorf("address %s: want an IP address or DNS name with tcp/PORT or udp/PORT/quic-v1", a)
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
		ip := net.IP(a[0].RawValue())
		if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() {
			return fmt.Errorf("address %s: %s is not a host others can dial", a, ip)
		}
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
	default:
		return fmt.Errorf("address %s: want an IP address or DNS name first", a)
	}
	port := ""
	switch {
	case len(a) == 2 && a[1].Protocol().Code == ma.P_TCP:
		port = a[1].Value()
	case len(a) == 3 && a[1].Protocol().Code == ma.P_UDP && a[2].Protocol().Code == ma.P_QUIC_V1:
		port = a[1].Value()
	default:
		return fmt.Errorf("address %s: want tcp/PORT or udp/PORT/quic-v1 after the host", a)
	}
	if port == "0" {
		return fmt.Errorf("address %s: port 0", a)
	}
	return nil
}

// ForNode makes the invite to a node from its addresses: the dialable
// ones (relayed, unspecified and link-local addresses left out; loopback
// ones only when the node has nothing else), public before private, at most
// MaxAddrs, and as many as fit MaxLen. It fails with ErrInvalid when no
// address is left.
func ForNode(id peer.ID, addrs []ma.Multiaddr, name string) (Invite, error) {
	var public, private, loopback []ma.Multiaddr
	seen := map[string]bool{}
	for _, a := range addrs {
		if n := len(a); n > 0 && a[n-1].Protocol().Code == ma.P_P2P {
			a = a[:n-1] // its own /p2p/<id>; a relayed address keeps its /p2p and fails Dialable
		}
		if len(a) == 0 || seen[string(a.Bytes())] || Dialable(a) != nil || len(a.Bytes()) > maxAddrLen {
			continue
		}
		seen[string(a.Bytes())] = true
		switch {
		case isLoopback(a):
			loopback = append(loopback, a)
		case isPrivate(a):
			private = append(private, a)
		default:
			public = append(public, a)
		}
	}
	all := append(public, private...)
	if len(all) == 0 {
		all = loopback
	}
	inv := Invite{Peer: id, Addrs: all[:min(len(all), MaxAddrs)], Name: name}
	for {
		_, err := inv.Encode()
		if err == nil || len(inv.Addrs) <= 1 {
			return inv, err
		}
		inv.Addrs = inv.Addrs[:len(inv.Addrs)-1]
	}
}

func ipOf(a ma.Multiaddr) net.IP {
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
		return net.IP(a[0].RawValue())
	}
	return nil
}

func isLoopback(a ma.Multiaddr) bool {
	ip := ipOf(a)
	return ip != nil && ip.IsLoopback()
}

func isPrivate(a ma.Multiaddr) bool {
	ip := ipOf(a)
	return ip != nil && ip.IsPrivate()
}
