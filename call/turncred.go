package call

import (
	"bytes"
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
	msmux "github.com/multiformats/go-multistream"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/turn"
)

// ProtocolTURN is the libp2p protocol a public node serves TURN
// credentials on (see the package doc). 2.1.0: the response may end with
// the SHA-256 of the relay's TURN-over-TLS certificate. 2.0.0: the request
// names the requester's account, so that the relay serves its members only
// (1.0.0's request was empty, and served every peer).
const ProtocolTURN protocol.ID = "/callsign/turn/2.1.0"

// ProtocolTURNLegacy is 2.0.0, still served (without "turns:" URLs and
// the pin, which its strict decoder refuses) and asked when a relay does
// not speak ProtocolTURN.
const ProtocolTURNLegacy protocol.ID = "/callsign/turn/2.0.0"

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
	// turnRate and turnBurst are each peer's credential requests: 6 at
	// once, then one per 2 s. Every call asks afresh (so a relay that
	// restarted on other ports is learnt at once); beyond the rate a
	// caller falls back to its last credentials from that relay.
	turnRate  = rate.Limit(0.5)
	turnBurst = 6
	// credTimeout bounds fetching credentials from all relays.
	credTimeout = 3 * time.Second
	// credMargin is how long before their expiry cached credentials are
	// no longer used.
	credMargin = 2 * time.Minute
	// maxRelays is how many relays a call asks for credentials.
	maxRelays = 3
)

// Request fields.
const fAccount protowire.Number = 1

// encodeTURNRequest encodes a credential request from account.
func encodeTURNRequest(account identity.AccountID) []byte {
	b := protowire.AppendTag(nil, fAccount, protowire.BytesType)
	return protowire.AppendString(b, string(account))
}

// decodeTURNRequest decodes a credential request: the requester's account
// id in its canonical text form (and a newer peer's additions, skipped).
func decodeTURNRequest(b []byte) (identity.AccountID, error) {
	id, _, err := decodeTURNRequestFrame(b)
	return id, err
}

// decodeTURNRequestFrame is decodeTURNRequest that also returns the
// additions it skipped.
func decodeTURNRequestFrame(b []byte) (identity.AccountID, []byte, error) {
	if len(b) > maxTURNRequest {
		return "", nil, malformed("request of %d bytes, max %d", len(b), maxTURNRequest)
	}
	d := newDecoder(b)
	v := d.Bytes(fAccount, 1, identity.AccountIDLen)
	if v == nil {
		d.Fail("request without an account")
	}
	if err := d.End(); err != nil {
		return "", nil, err
	}
	id, err := identity.ParseAccountID(string(v))
	if err != nil || string(id) != string(v) {
		return "", nil, malformed("account %.50q is not a canonical account id", v)
	}
	return id, d.Skipped(), nil
}

// Credential fields.
const (
	fUsername protowire.Number = 1
	fPassword protowire.Number = 2
	fExpires  protowire.Number = 3
	fURL      protowire.Number = 4
	fCertPin  protowire.Number = 5
)

// certPinLen is the length of field 5, a SHA-256.
const certPinLen = 32

// legacyCredentials is c as ProtocolTURNLegacy carries it: no pin, and
// so no "turns:" URLs (nil when only those are left).
func legacyCredentials(c turn.Credentials) *turn.Credentials {
	c.TLSCertSHA256 = nil
	var urls []string
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "turns:") {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	c.URLs = urls
	return &c
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
	if c.TLSCertSHA256 != nil {
		b = protowire.AppendTag(b, fCertPin, protowire.BytesType)
		b = protowire.AppendBytes(b, c.TLSCertSHA256)
	}
	return b
}

// decodeCredentials decodes a credential response: the first four
// fields, the URLs (1 to 4 of them, each a TURN URL on a literal IP
// address), then optionally the 32-byte certificate pin (and a newer
// relay's additions, skipped).
func decodeCredentials(b []byte) (turn.Credentials, error) {
	c, _, err := decodeCredentialsFrame(b)
	return c, err
}

// decodeCredentialsFrame is decodeCredentials that also returns the
// additions it skipped.
func decodeCredentialsFrame(b []byte) (turn.Credentials, []byte, error) {
	var c turn.Credentials
	if len(b) > maxCredentials {
		return c, nil, malformed("credentials of %d bytes, max %d", len(b), maxCredentials)
	}
	d := newDecoder(b)
	user := d.Bytes(fUsername, 1, turn.MaxUsernameLen)
	pass := d.Bytes(fPassword, 1, maxPassword)
	exp := d.Uint(fExpires, 1<<40)
	urls := d.RepeatedBytes(fURL, maxCredURLs, 1, maxCredURL)
	pin := d.OptFixed(fCertPin, certPinLen)
	if err := d.End(); err != nil {
		return c, nil, err
	}
	if user == nil || pass == nil || exp == 0 || len(urls) == 0 {
		return c, nil, malformed("credentials without a username, password, expiry or URL")
	}
	c.Username, c.Password, c.Expires = string(user), string(pass), time.Unix(int64(exp), 0)
	for _, u := range urls {
		if err := checkTURNURL(string(u)); err != nil {
			return turn.Credentials{}, nil, err
		}
		c.URLs = append(c.URLs, string(u))
	}
	if pin != nil {
		c.TLSCertSHA256 = bytes.Clone(pin)
	}
	return c, d.Skipped(), nil
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

// serveTURN answers one credential request of ProtocolTURN.
func (s *Service) serveTURN(ctx context.Context, st network.Stream) error {
	return s.serveCredentials(ctx, st, false)
}

// serveTURNLegacy answers one credential request of ProtocolTURNLegacy.
func (s *Service) serveTURNLegacy(ctx context.Context, st network.Stream) error {
	return s.serveCredentials(ctx, st, true)
}

// serveCredentials answers one credential request: a request frame naming
// the requester's account, then, for a member, a credentials response
// frame. The user id inside the credentials is the requesting peer's id,
// so the TURN server's per-user caps apply per peer.
func (s *Service) serveCredentials(ctx context.Context, st network.Stream, legacy bool) error {
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
	if legacy {
		c := legacyCredentials(creds)
		if c == nil {
			return p2p.WithCode(p2p.CodeBadRequest, errors.New("only TURN over TLS is offered, which 2.0.0 can't carry"))
		}
		creds = *c
	}
	s.log.Debug("issued TURN credentials", "peer", from, "account", account, "expires", creds.Expires, "legacy", legacy)
	return p2p.WriteFrame(st, encodeCredentials(creds))
}

// fetchCredentials asks relay p for TURN credentials for this node's
// account. A relay that does not count us as a member resets the stream
// (p2p.CodeBadRequest).
func (s *Service) fetchCredentials(ctx context.Context, p peer.ID) (turn.Credentials, error) {
	resp, err := p2p.Request(ctx, s.cfg.Host, p, ProtocolTURN, false, encodeTURNRequest(s.cfg.Self), maxCredentials)
	if notSupported(err) {
		resp, err = p2p.Request(ctx, s.cfg.Host, p, ProtocolTURNLegacy, false, encodeTURNRequest(s.cfg.Self), maxCredentials)
	}
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

// notSupported reports whether err says the peer does not speak the
// protocol asked for.
func notSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &ns)
}

// credCache holds the credentials last fetched from each relay. They are
// used only when a fresh request fails (the relay's rate limit, or no
// answer within credTimeout) for another reason than refused membership,
// and all are dropped when a call ends because no path worked (perhaps
// through a relay that changed).
type credCache struct {
	mu sync.Mutex
	m  map[peer.ID]turn.Credentials // guarded by mu
}

// fallback returns p's cached credentials if they are still good.
func (cc *credCache) fallback(p peer.ID) (turn.Credentials, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	c, ok := cc.m[p]
	if !ok || time.Until(c.Expires) <= credMargin {
		return turn.Credentials{}, false
	}
	return c, true
}

func (cc *credCache) put(p peer.ID, c turn.Credentials) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.m[p] = c
}

// drop forgets every cached credential.
func (cc *credCache) drop() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	clear(cc.m)
}

// iceServers returns the ICE servers for a new call: the STUN URLs (not
// for a relay-only call) and TURN credentials from this node's own TURN
// server and from up to three of Relays(), fetched afresh for every call,
// in parallel, within credTimeout, so a relay that restarted on other
// ports (or with another secret) is used as it is now. When a request
// fails, see credCache for the fallback; a relay without either is
// skipped. nil means none: the engine's own servers apply.
func (s *Service) iceServers(ctx context.Context, relayOnly bool) []media.ICEServer {
	var out []media.ICEServer
	if s.cfg.STUN != nil && !relayOnly {
		if urls := s.cfg.STUN(); len(urls) > 0 {
			out = append(out, media.ICEServer{URLs: urls})
		}
	}
	if s.cfg.TURN != nil && s.cfg.Host != nil {
		out = append(out, iceServer(s.cfg.TURN.Credentials(s.cfg.Host.ID().String())))
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
		wg.Go(func() {
			c, err := s.fetchCredentials(ctx, p)
			if err != nil {
				// Refused for its rate limit, or slow: the last
				// credentials, unless the relay said we are no member.
				if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeBadRequest {
					if c, ok := s.creds.fallback(p); ok {
						creds[i] = c
						return
					}
				}
				s.log.Debug("no TURN credentials from relay", "peer", p, "err", err)
				return
			}
			s.creds.put(p, c)
			creds[i] = c
		})
	}
	wg.Wait()
	for _, c := range creds {
		if c.Username != "" {
			out = append(out, iceServer(c))
		}
	}
	return out
}

// iceServer is the media engine's form of TURN credentials.
func iceServer(c turn.Credentials) media.ICEServer {
	return media.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Password, TLSCertSHA256: c.TLSCertSHA256}
}

// TURN returns the TURN server this service hands out credentials for
// (Config.TURN), nil on a node that runs none.
func (s *Service) TURN() *turn.Server { return s.cfg.TURN }
