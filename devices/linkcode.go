package devices

// The link code (docs/DEVICES.md §1 "Link code"), in the style of
// p2p/invite's callsign:join/ code:
//
//	code    = "callsign:link/" base32(payload || check)
//	          (RFC 4648 alphabet in lowercase, no padding; any case is read)
//	check   = SHA-256("callsign/v1/link-code" || payload)[:4]
//	payload = LinkCode (link.proto), a frame read with wire.NewFrameDecoder:
//	  1 version  varint, absent = 1 (written only above 1)
//	  2 peer     bytes,  required, E's libp2p peer id (2..64 bytes)
//	  3 addr     bytes,  repeated 1..MaxLinkAddrs times, a binary multiaddr
//	             (1..MaxLinkAddrLen bytes) without E's own /p2p: a direct one
//	             (as p2p/invite.Dialable) or a relayed one
//	             (<direct>/p2p/<relay>/p2p-circuit)
//	  4 secret   bytes,  required, 16 random bytes
//	  5 expires  varint, required, unix seconds
//	  16 and up          additions of a newer callsign: skipped and kept
//
// A code is at most MaxLinkCodeLen characters so it fits a QR code.

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/internal/textcode"
	"github.com/callsign/callsign/internal/wire"
	"github.com/callsign/callsign/p2p/invite"
)

// LinkCodePrefix starts every link code.
const LinkCodePrefix = "callsign:link/"

// Limits of a link code.
const (
	MaxLinkCodeLen = 512 // characters of the whole text
	MaxLinkAddrs   = 3   // addresses in one code
	MaxLinkAddrLen = 160 // bytes of one binary multiaddr (a relayed one carries the relay's peer id)
	LinkSecretSize = 16  // bytes of the one-time secret
	// DefaultLinkCodeTTL is how long a code is valid after `devices link`.
	DefaultLinkCodeTTL = 10 * time.Minute

	linkCodeVersion   = 1
	lcVersion         = protowire.Number(1)
	lcPeer            = protowire.Number(2)
	lcAddr            = protowire.Number(3)
	lcSecret          = protowire.Number(4)
	lcExpires         = protowire.Number(5)
	maxLinkCodeExpiry = 1 << 40 // unix seconds: far past any real expiry
)

var (
	// ErrLinkCode is wrapped by every error ParseLinkCode and NewLinkCode
	// return for a code that is not well formed (garbled, cut off, bad
	// fields). A code of a newer version also wraps wire.ErrNewerVersion.
	ErrLinkCode = errors.New("invalid link code")
	// ErrLinkExpired is returned (wrapped) for a code past its expiry.
	ErrLinkExpired = errors.New("link code expired: run devices link again")
)

// linkFormat is a link code's text form: its prefix and checksum.
var linkFormat = textcode.Format{Prefix: LinkCodePrefix, Label: "callsign/v1/link-code", What: "a link code", MaxLen: MaxLinkCodeLen}

// LinkSecret is the one-time secret of a link code. It is not comparable
// with ==; use Equal, which takes constant time.
type LinkSecret struct {
	b [LinkSecretSize]byte
	_ [0]func()
}

// NewLinkSecret returns a fresh random secret.
func NewLinkSecret() LinkSecret {
	var s LinkSecret
	rand.Read(s.b[:]) // never fails (crypto/rand)
	return s
}

// LinkSecretFromBytes returns the secret b holds (LinkSecretSize bytes).
func LinkSecretFromBytes(b []byte) (LinkSecret, error) {
	var s LinkSecret
	if len(b) != LinkSecretSize {
		return s, fmt.Errorf("%w: secret of %d bytes, want %d", ErrLinkCode, len(b), LinkSecretSize)
	}
	copy(s.b[:], b)
	return s, nil
}

// Equal reports whether s and t are the same secret, in constant time.
func (s LinkSecret) Equal(t LinkSecret) bool { return subtle.ConstantTimeCompare(s.b[:], t.b[:]) == 1 }

// LinkCode is what `devices link` shows on E and N types or scans: E's
// peer id and addresses, the one-time secret and its expiry.
type LinkCode struct {
	Peer    peer.ID
	Addrs   []ma.Multiaddr // without E's own /p2p; direct first, relayed last
	Secret  LinkSecret
	Expires time.Time // whole seconds

	extra []byte // additions a newer callsign wrote
}

// NewLinkCode makes the code for E (peer, reachable on addrs) with the
// given secret, valid until expires (truncated to the second). Of addrs it
// keeps the ones a code may carry (a trailing /p2p/<peer> is removed), once
// each, direct ones before relayed ones; while there are more than
// MaxLinkAddrs or the text is over MaxLinkCodeLen it drops direct
// addresses from the end first and relayed ones last (a relay reaches E
// behind any NAT). It fails wrapping ErrLinkCode when no address is left
// or the code can't be written.
func NewLinkCode(p peer.ID, addrs []ma.Multiaddr, secret LinkSecret, expires time.Time) (LinkCode, error) {
	if err := p.Validate(); err != nil || len(p) > maxPeerIDLen {
		return LinkCode{}, fmt.Errorf("%w: bad peer id", ErrLinkCode)
	}
	if expires.Unix() <= 0 || expires.Unix() > maxLinkCodeExpiry {
		return LinkCode{}, fmt.Errorf("%w: expiry %v out of range", ErrLinkCode, expires)
	}
	var direct, relayed []ma.Multiaddr
	seen := map[string]bool{}
	for _, a := range addrs {
		if n := len(a); n > 0 && a[n-1].Protocol().Code == ma.P_P2P && a[n-1].Value() == p.String() {
			a = a[:n-1]
		}
		if len(a) == 0 || seen[string(a.Bytes())] || linkAddrCheck(a) != nil {
			continue
		}
		seen[string(a.Bytes())] = true
		if isRelayed(a) {
			relayed = append(relayed, a)
		} else {
			direct = append(direct, a)
		}
	}
	c := LinkCode{Peer: p, Secret: secret, Expires: time.Unix(expires.Unix(), 0)}
	for {
		if len(direct)+len(relayed) == 0 {
			return LinkCode{}, fmt.Errorf("%w: it leads nowhere: no address others can dial", ErrLinkCode)
		}
		c.Addrs = append(append([]ma.Multiaddr(nil), direct...), relayed...)
		if len(c.Addrs) <= MaxLinkAddrs && len(c.encode()) <= MaxLinkCodeLen {
			return c, nil
		}
		if len(direct) > 0 {
			direct = direct[:len(direct)-1]
		} else {
			relayed = relayed[:len(relayed)-1]
		}
	}
}

// String is the code's text.
func (c LinkCode) String() string { return c.encode() }

// AddrInfo is E, ready for the peerstore.
func (c LinkCode) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: c.Peer, Addrs: append([]ma.Multiaddr(nil), c.Addrs...)}
}

func (c LinkCode) payload() []byte {
	var e wire.Encoder
	e.Version(lcVersion, linkCodeVersion)
	e.Bytes(lcPeer, []byte(c.Peer))
	for _, a := range c.Addrs {
		e.Bytes(lcAddr, a.Bytes())
	}
	e.Bytes(lcSecret, c.Secret.b[:])
	e.Uint(lcExpires, uint64(c.Expires.Unix()))
	e.Raw(c.extra)
	return e.B
}

func (c LinkCode) encode() string {
	p := c.payload()
	return linkFormat.Encode(p)
}

// ParseLinkCode reads a link code, as of now. Surrounding white space and
// the letters' case do not matter. It checks, in order: the length, the
// prefix, the base32 and the checksum (a garbled or cut-off code fails
// here, wrapping ErrLinkCode, before any field is read); the fields (a
// newer version wraps ErrLinkCode and wire.ErrNewerVersion); then the
// expiry (ErrLinkExpired).
func ParseLinkCode(s string, now time.Time) (LinkCode, error) {
	payload, err := linkFormat.Decode(s, ErrLinkCode)
	if err != nil {
		return LinkCode{}, err
	}
	d := wire.NewFrameDecoder(payload, ErrLinkCode, MaxLinkCodeLen)
	d.Version(lcVersion, linkCodeVersion)
	pid := d.Bytes(lcPeer, 2, maxPeerIDLen)
	var addrs [][]byte
	for d.More(lcAddr) && d.Err() == nil {
		if len(addrs) == MaxLinkAddrs {
			d.Fail("more than %d addresses", MaxLinkAddrs)
			break
		}
		addrs = append(addrs, d.Bytes(lcAddr, 1, MaxLinkAddrLen))
	}
	secret := d.Fixed(lcSecret, LinkSecretSize)
	exp := d.Uint(lcExpires, maxLinkCodeExpiry)
	if err := d.End(); err != nil {
		return LinkCode{}, err
	}
	var c LinkCode
	if pid == nil {
		return LinkCode{}, fmt.Errorf("%w: no peer id", ErrLinkCode)
	}
	if c.Peer, err = peer.IDFromBytes(pid); err != nil {
		return LinkCode{}, fmt.Errorf("%w: bad peer id: %v", ErrLinkCode, err)
	}
	if len(addrs) == 0 {
		return LinkCode{}, fmt.Errorf("%w: it leads nowhere: no address", ErrLinkCode)
	}
	for _, b := range addrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return LinkCode{}, fmt.Errorf("%w: bad address: %v", ErrLinkCode, err)
		}
		if err := linkAddrCheck(a); err != nil {
			return LinkCode{}, fmt.Errorf("%w: it leads nowhere: %v", ErrLinkCode, err)
		}
		c.Addrs = append(c.Addrs, a)
	}
	copy(c.Secret.b[:], secret)
	if exp == 0 {
		return LinkCode{}, fmt.Errorf("%w: no expiry", ErrLinkCode)
	}
	c.Expires = time.Unix(int64(exp), 0)
	c.extra = d.Skipped()
	if !now.Before(c.Expires) {
		return LinkCode{}, fmt.Errorf("%w (at %s)", ErrLinkExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// linkAddrCheck reports why a can't be in a link code, or nil: a direct
// address invite.Dialable accepts, or one followed by /p2p/<relay>/p2p-circuit.
func linkAddrCheck(a ma.Multiaddr) error {
	if len(a.Bytes()) > MaxLinkAddrLen {
		return fmt.Errorf("address %s: over %d bytes", a, MaxLinkAddrLen)
	}
	if !isRelayed(a) {
		return invite.Dialable(a)
	}
	n := len(a)
	if n < 4 || a[n-2].Protocol().Code != ma.P_P2P {
		return fmt.Errorf("address %s: want <relay address>/p2p/<relay>/p2p-circuit", a)
	}
	return invite.Dialable(a[:n-2])
}

func isRelayed(a ma.Multiaddr) bool {
	n := len(a)
	return n > 0 && a[n-1].Protocol().Code == ma.P_CIRCUIT
}
