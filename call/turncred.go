package call

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/turn"
)

// ProtocolTURN is the libp2p protocol a public node serves TURN
// credentials on (see the package doc). 2.0.0: the request names the
// requester's account, so that the relay serves its members only (1.0.0's
// request was empty, and served every peer).
const ProtocolTURN protocol.ID = "/callsign/turn/2.0.0"

// Members says who a public node's TURN relay serves: its members, as the
// package doc defines them. The node implements it; both methods are safe
// for concurrent use.
type Members interface {
	// Check returns nil when peer p, which says it is a device of account,
	// is a member, and otherwise an error saying why not (logged at debug,
	// never sent). It may look the account up on the network; ctx bounds
	// it.
	Check(ctx context.Context, p peer.ID, account identity.AccountID) error
	// Known reports, without blocking, whether p passed Check recently, so
	// that members' requests are served from a pool strangers can't fill.
	Known(p peer.ID) bool
}

// Limits of the TURN credential protocol.
const (
	// maxCredentials caps a credential response.
	maxCredentials = 2 << 10
	// maxCredURLs and maxCredURL cap the URLs in a response.
	maxCredURLs = 4
	maxCredURL  = 256
	// maxPassword caps the password (base64 of a 20-byte HMAC is 28).
	maxPassword = 128
	// maxTURNRequest caps a credential request (one account id).
	maxTURNRequest = 64
	// turnRate and turnBurst are each peer's credential requests: 3 at
	// once, then one per 10 s.
	turnRate  = rate.Limit(0.1)
	turnBurst = 3
	// credTimeout bounds fetching credentials from all relays.
	credTimeout = 3 * time.Second
	// credMargin is how long before their expiry cached credentials are
	// fetched again.
	credMargin = 2 * time.Minute
	// maxRelays is how many relays a call asks for credentials.
	maxRelays = 3
)

// Request fields.
const fAccount protowire.Number = 1

var requestFields = map[protowire.Number]protowire.Type{fAccount: protowire.BytesType}

// encodeTURNRequest encodes a credential request from account.
func encodeTURNRequest(account identity.AccountID) []byte {
	b := protowire.AppendTag(nil, fAccount, protowire.BytesType)
	return protowire.AppendString(b, string(account))
}

// decodeTURNRequest decodes a credential request strictly: exactly one
// field, the requester's account id in its canonical text form.
func decodeTURNRequest(b []byte) (identity.AccountID, error) {
	if len(b) > maxTURNRequest {
		return "", malformed("request of %d bytes, max %d", len(b), maxTURNRequest)
	}
	d := decoder{b: b}
	if d.done() {
		return "", malformed("request without an account")
	}
	num, err := d.next(requestFields)
	if err != nil {
		return "", err
	}
	v, err := d.bytes(num, identity.AccountIDLen)
	if err != nil {
		return "", err
	}
	if !d.done() {
		return "", malformed("bytes after the account")
	}
	id, err := identity.ParseAccountID(string(v))
	if err != nil || string(id) != string(v) {
		return "", malformed("account %.50q is not a canonical account id", v)
	}
	return id, nil
}

// Credential fields.
const (
	fUsername protowire.Number = 1
	fPassword protowire.Number = 2
	fExpires  protowire.Number = 3
	fURL      protowire.Number = 4
)

var credFields = map[protowire.Number]protowire.Type{
	fUsername: protowire.BytesType, fPassword: protowire.BytesType,
	fExpires: protowire.VarintType, fURL: protowire.BytesType,
}

// encodeCredentials encodes c in the canonical form.
func encodeCredentials(c turn.Credentials) []byte {
	var b []byte
	b = protowire.AppendTag(b, fUsername, protowire.BytesType)
	b = protowire.AppendString(b, c.Username)
	b = protowire.AppendTag(b, fPassword, protowire.BytesType)
	b = protowire.AppendString(b, c.Password)
	b = protowire.AppendTag(b, fExpires, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(c.Expires.Unix()))
	for _, u := range c.URLs {
		b = protowire.AppendTag(b, fURL, protowire.BytesType)
		b = protowire.AppendString(b, u)
	}
	return b
}

// decodeCredentials decodes a credential response strictly: all four
// fields, in order, the URLs last (1 to 4 of them), each URL a TURN URL on
// a literal IP address.
func decodeCredentials(b []byte) (turn.Credentials, error) {
	var c turn.Credentials
	if len(b) > maxCredentials {
		return c, malformed("credentials of %d bytes, max %d", len(b), maxCredentials)
	}
	d := decoder{b: b}
	var seen [fURL + 1]bool
	for !d.done() {
		num, err := d.nextRepeated(credFields, fURL)
		if err != nil {
			return c, err
		}
		seen[num] = true
		switch num {
		case fUsername:
			v, err := d.bytes(num, turn.MaxUsernameLen)
			if err != nil {
				return c, err
			}
			c.Username = string(v)
		case fPassword:
			v, err := d.bytes(num, maxPassword)
			if err != nil {
				return c, err
			}
			c.Password = string(v)
		case fExpires:
			v, err := d.varint(num)
			if err != nil {
				return c, err
			}
			if v > 1<<40 {
				return c, malformed("expiry %d out of range", v)
			}
			c.Expires = time.Unix(int64(v), 0)
		case fURL:
			if len(c.URLs) == maxCredURLs {
				return c, malformed("more than %d URLs", maxCredURLs)
			}
			v, err := d.bytes(num, maxCredURL)
			if err != nil {
				return c, err
			}
			if err := checkTURNURL(string(v)); err != nil {
				return c, err
			}
			c.URLs = append(c.URLs, string(v))
		}
	}
	for _, f := range []protowire.Number{fUsername, fPassword, fExpires, fURL} {
		if !seen[f] {
			return c, malformed("credentials without field %d", f)
		}
	}
	return c, nil
}

// checkTURNURL accepts "turn:" or "turns:" followed by a literal IP and
// port and an optional "?transport=udp" or "?transport=tcp", so a relay
// can't make us resolve names or reach anything but a TURN server.
func checkTURNURL(u string) error {
	var rest string
	switch {
	case strings.HasPrefix(u, "turn:"):
		rest = u[len("turn:"):]
	case strings.HasPrefix(u, "turns:"):
		rest = u[len("turns:"):]
	default:
		return malformed("URL %.40q is not a TURN URL", u)
	}
	hostport, query, _ := strings.Cut(rest, "?")
	if query != "" && query != "transport=udp" && query != "transport=tcp" {
		return malformed("TURN URL with query %.40q", query)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return malformed("TURN URL address %.60q", hostport)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return malformed("TURN URL host %.60q is not an IP address", host)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return malformed("TURN URL port %.10q", port)
	}
	return nil
}

// serveTURN answers one credential request: a request frame naming the
// requester's account, then, for a member, a credentials response frame.
// The user id inside the credentials is the requesting peer's id, so the
// TURN server's per-user caps apply per peer.
func (s *Service) serveTURN(ctx context.Context, st network.Stream) error {
	from := st.Conn().RemotePeer()
	if st.Conn().Stat().Limited {
		return p2p.WithCode(p2p.CodeBadRequest, errors.New("TURN credentials over a relayed connection"))
	}
	req, err := p2p.ReadFrame(st, maxTURNRequest)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("read request: %w", err))
	}
	account, err := decodeTURNRequest(req)
	if err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, err)
	}
	if err := s.cfg.TURNMembers.Check(ctx, from, account); err != nil {
		return p2p.WithCode(p2p.CodeBadRequest, fmt.Errorf("peer %s of %s is not a member: %w", from, account, err))
	}
	creds := s.cfg.TURN.Credentials(from.String())
	s.log.Debug("issued TURN credentials", "peer", from, "account", account, "expires", creds.Expires)
	return p2p.WriteFrame(st, encodeCredentials(creds))
}

// fetchCredentials asks relay p for TURN credentials for this node's
// account. A relay that does not count us as a member resets the stream
// (p2p.CodeBadRequest).
func (s *Service) fetchCredentials(ctx context.Context, p peer.ID) (turn.Credentials, error) {
	resp, err := p2p.Request(ctx, s.cfg.Host, p, ProtocolTURN, false, encodeTURNRequest(s.cfg.Self), maxCredentials)
	if err != nil {
		return turn.Credentials{}, fmt.Errorf("TURN credentials from %s: %w", p, err)
	}
	c, err := decodeCredentials(resp)
	if err != nil {
		return turn.Credentials{}, fmt.Errorf("TURN credentials from %s: %w", p, err)
	}
	if !c.Expires.After(time.Now()) {
		return turn.Credentials{}, fmt.Errorf("TURN credentials from %s: already expired", p)
	}
	return c, nil
}

// credCache holds the credentials fetched from each relay until shortly
// before they expire.
type credCache struct {
	mu sync.Mutex
	m  map[peer.ID]turn.Credentials // guarded by mu
}

// iceServers returns the ICE servers for a new call: the STUN URLs (not
// for a relay-only call) and fresh TURN credentials from this node's own
// TURN server and from up to three of Relays(), fetched in parallel within
// credTimeout; a relay that fails is skipped. nil means none: the engine's
// own servers apply.
func (s *Service) iceServers(ctx context.Context, relayOnly bool) []media.ICEServer {
	var out []media.ICEServer
	if s.cfg.STUN != nil && !relayOnly {
		if urls := s.cfg.STUN(); len(urls) > 0 {
			out = append(out, media.ICEServer{URLs: urls})
		}
	}
	if s.cfg.TURN != nil && s.cfg.Host != nil {
		c := s.cfg.TURN.Credentials(s.cfg.Host.ID().String())
		out = append(out, media.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Password})
	}
	if s.cfg.Relays == nil || s.cfg.Host == nil {
		return out
	}
	relays := s.cfg.Relays()
	if len(relays) > maxRelays {
		relays = relays[:maxRelays]
	}
	ctx, cancel := context.WithTimeout(ctx, credTimeout)
	defer cancel()
	creds := make([]turn.Credentials, len(relays))
	var wg sync.WaitGroup
	for i, p := range relays {
		if p == s.cfg.Host.ID() {
			continue
		}
		s.creds.mu.Lock()
		c, ok := s.creds.m[p]
		s.creds.mu.Unlock()
		if ok && time.Until(c.Expires) > credMargin {
			creds[i] = c
			continue
		}
		wg.Go(func() {
			c, err := s.fetchCredentials(ctx, p)
			if err != nil {
				s.log.Debug("no TURN credentials from relay", "peer", p, "err", err)
				return
			}
			s.creds.mu.Lock()
			s.creds.m[p] = c
			s.creds.mu.Unlock()
			creds[i] = c
		})
	}
	wg.Wait()
	for _, c := range creds {
		if c.Username != "" {
			out = append(out, media.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Password})
		}
	}
	return out
}
