package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Signing in without printing the token.
//
// The bearer token never appears where logs keep it: `callsign up` and
// `callsign web` print the web app's address with a one-time sign-in
// ticket in the fragment (http://ADDR/#ticket=T), which the app exchanges
// once for the token (POST /api/v1/session). A ticket is 128 random bits,
// good for one exchange within TicketTTL; the server keeps only its
// SHA-256.
//
// A client proves nothing to learn whether it talks to its own node: it
// sends a fresh nonce to GET /api/v1/hello, and the node answers with
// HelloProof, an HMAC keyed with the token. The Client sends the token
// only on a connection whose server answered so (see Client).

// TicketTTL is how long a sign-in ticket can be exchanged for the token.
const TicketTTL = 10 * time.Minute

// maxTickets caps the tickets waiting to be used; a new one beyond it
// replaces the oldest.
const maxTickets = 16

// helloLabel separates the hello proof from any other use of the token.
const helloLabel = "callsign/v1/api-hello"

// helloNonceSize is the size of the client's nonce in a hello.
const helloNonceSize = 32

// Ticket is a one-time sign-in ticket for the web app.
type Ticket struct {
	Ticket  string    `json:"ticket"`
	Expires time.Time `json:"expires"`
	// URL is the web app's address with the ticket, to open in a browser.
	URL string `json:"url"`
}

// SessionRequest exchanges a ticket for the token.
type SessionRequest struct {
	Ticket string `json:"ticket"`
}

// Session is what the web app gets for a ticket: the bearer token.
type Session struct {
	Token string `json:"token"`
}

// Hello is the node's proof that it knows the token (see HelloProof).
type Hello struct {
	Proof string `json:"proof"` // hex
}

// WebURL is the web app's address at addr with a sign-in ticket in the
// fragment, which the browser never sends to a server.
func WebURL(addr, ticket string) string {
	return "http://" + addr + "/#ticket=" + ticket
}

// HelloProof is HMAC-SHA256 keyed with token over helloLabel, a zero
// byte, the client's nonce and the server's address as the client's
// connection sees it (its remote address, "127.0.0.1:4142"): a listener
// that relays the nonce to the real node gets a proof for the node's
// address, not its own.
func HelloProof(token string, nonce []byte, addr string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(helloLabel))
	m.Write([]byte{0})
	m.Write(nonce)
	m.Write([]byte(addr))
	return m.Sum(nil)
}

// tickets are the sign-in tickets not yet used.
type tickets struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]time.Time // SHA-256 of a ticket -> its expiry; guarded by mu
}

// issue makes a ticket good until now+TicketTTL.
func (t *tickets) issue(now time.Time) (string, time.Time) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("bug: crypto/rand failed: " + err.Error())
	}
	ticket := hex.EncodeToString(b)
	exp := now.Add(TicketTTL)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[[sha256.Size]byte]time.Time{}
	}
	for k, e := range t.m {
		if !now.Before(e) {
			delete(t.m, k)
		}
	}
	for len(t.m) >= maxTickets {
		var oldest [sha256.Size]byte
		first := true
		for k, e := range t.m {
			if first || e.Before(t.m[oldest]) {
				oldest, first = k, false
			}
		}
		delete(t.m, oldest)
	}
	t.m[sha256.Sum256([]byte(ticket))] = exp
	return ticket, exp
}

// redeem uses ticket up: it reports whether the ticket was issued, not
// used yet and not expired at now.
func (t *tickets) redeem(ticket string, now time.Time) bool {
	k := sha256.Sum256([]byte(ticket))
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.m[k]
	delete(t.m, k)
	return ok && now.Before(exp)
}

// NewTicket returns a fresh one-time sign-in ticket (the node prints the
// first at start) and the web app's address with it.
func (s *Server) NewTicket() Ticket {
	ticket, exp := s.tickets.issue(time.Now())
	return Ticket{Ticket: ticket, Expires: exp, URL: WebURL(s.Addr(), ticket)}
}

// withoutToken reports whether r is one of the routes that take no token:
// the hello, which proves the node knows the token, and the ticket
// exchange, which is how the web app gets it.
func withoutToken(r *http.Request) bool {
	return (r.Method == http.MethodGet && r.URL.Path == "/api/v1/hello") ||
		(r.Method == http.MethodPost && r.URL.Path == "/api/v1/session")
}

// hello answers GET /api/v1/hello?nonce=HEX with HelloProof for the
// address this connection reached.
func (s *Server) hello(r *http.Request) (any, error) {
	nonce, err := hex.DecodeString(r.URL.Query().Get("nonce"))
	if err != nil || len(nonce) != helloNonceSize {
		return nil, Errorf(CodeBadRequest, "", "nonce must be %d bytes in hex", helloNonceSize)
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return nil, Errorf(CodeInternal, "", "no local address")
	}
	return Hello{Proof: hex.EncodeToString(HelloProof(s.cfg.Token, nonce, local.String()))}, nil
}

// session exchanges a ticket for the token, once.
func (s *Server) session(r *http.Request) (any, error) {
	var req SessionRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !s.tickets.redeem(strings.TrimSpace(req.Ticket), time.Now()) {
		return nil, Errorf(CodeUnauthorized, "run `callsign web` for a new sign-in link",
			"this sign-in link was used already or has expired")
	}
	s.log.Info("web app signed in with a ticket")
	return Session{Token: s.cfg.Token}, nil
}

// newTicket answers POST /api/v1/tickets (`callsign web`).
func (s *Server) newTicket(*http.Request) (any, error) {
	return s.NewTicket(), nil
}
