package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// holdLock holds dir's lock file as a running node does, until the test
// ends.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// foreign is a program that took a port a node left behind: it records
// every request it gets, whole, and answers with answer (nil: a 200 with
// a made-up hello proof).
type foreign struct {
	addr string
	mu   sync.Mutex
	seen []string // every request, dumped
}

func startForeign(t *testing.T, answer http.Handler) *foreign {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &foreign{addr: ln.Addr().String()}
	if answer == nil {
		answer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, Hello{Proof: strings.Repeat("00", 32)})
		})
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, true)
		f.mu.Lock()
		f.seen = append(f.seen, string(dump))
		f.mu.Unlock()
		answer.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return f
}

// requests returns what f saw.
func (f *foreign) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// TestStaleEndpoint: a data directory whose api.addr names a foreign
// listener. The client never sends the token there: without a node
// holding the lock it does not connect at all; with the lock held (the
// address still foreign) it asks for the hello proof, which the listener
// can't give, not even by relaying the hello to the real node.
func TestStaleEndpoint(t *testing.T) {
	real, _, token := startServer(t)
	ctx := context.Background()
	proxyTo := func(addr string) http.Handler {
		return httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	}
	for _, tc := range []struct {
		name    string
		locked  bool
		answer  http.Handler
		wantErr string
		wantN   int // requests the listener sees
	}{
		{"no node holds the lock", false, nil, "no node is running", 0},
		{"lock held, listener makes up a proof", true, nil, "did not prove", 1},
		{"lock held, listener answers 404", true, http.NotFoundHandler(), "did not prove", 1},
		{"lock held, listener relays to the node", true, proxyTo(real.Addr()), "did not prove", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startForeign(t, tc.answer)
			dir := t.TempDir()
			if err := WriteEndpoint(dir, f.addr, token); err != nil {
				t.Fatal(err)
			}
			if tc.locked {
				holdLock(t, dir)
			} else if err := os.WriteFile(filepath.Join(dir, LockFile), nil, 0o600); err != nil {
				t.Fatal(err) // left behind by the node, unlocked
			}
			c, err := DialDataDir(dir)
			if err == nil {
				defer c.Close()
				_, err = c.ID(ctx)
				if err == nil {
					t.Fatal("ID answered through a foreign listener")
				}
				if _, eerr := c.Events(ctx); eerr == nil || !strings.Contains(eerr.Error(), tc.wantErr) {
					t.Errorf("events: %v, want %q", eerr, tc.wantErr)
				}
				tc.wantN *= 2
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Code != CodeUnavailable || !strings.Contains(ae.Message, tc.wantErr) ||
				!strings.Contains(ae.Message, "token was not sent") || !strings.Contains(ae.Hint, "callsign up --data "+dir) {
				t.Errorf("error %#v, want %q with a hint", err, tc.wantErr)
			}
			seen := f.requests()
			if len(seen) != tc.wantN {
				t.Errorf("the listener saw %d requests, want %d:\n%s", len(seen), tc.wantN, strings.Join(seen, "\n"))
			}
			for _, r := range seen {
				if strings.Contains(r, token) || strings.Contains(strings.ToLower(r), "authorization") ||
					!strings.HasPrefix(r, "GET /api/v1/hello?nonce=") {
					t.Errorf("the listener saw more than a hello:\n%s", r)
				}
			}
		})
	}
}

// TestHello: the node proves it knows the token for the nonce and the
// address the connection reached, and nothing else.
func TestHello(t *testing.T) {
	s, _, token := startServer(t)
	nonce := make([]byte, helloNonceSize)
	nonce[0] = 7
	get := func(q string) (int, Hello) {
		resp, err := http.Get("http://" + s.Addr() + "/api/v1/hello?" + q) // no token
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h Hello
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	code, h := get("nonce=" + hex.EncodeToString(nonce))
	if code != 200 || h.Proof != hex.EncodeToString(HelloProof(token, nonce, s.Addr())) {
		t.Fatalf("hello: %d %+v", code, h)
	}
	if h.Proof == hex.EncodeToString(HelloProof(token, nonce, "127.0.0.1:1")) {
		t.Fatal("the proof does not depend on the address")
	}
	for _, q := range []string{"", "nonce=00", "nonce=" + strings.Repeat("zz", helloNonceSize)} {
		if code, _ := get(q); code != 400 {
			t.Errorf("hello?%s: %d, want 400", q, code)
		}
	}
	// The real client talks to it.
	c := NewClient(s.Addr(), token)
	defer c.Close()
	if _, err := c.ID(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTickets: a sign-in ticket is good for one exchange within
// TicketTTL; a used, expired or unknown ticket gets 401 with a hint to run
// `callsign web`; asking for a ticket needs the token, using one does not.
func TestTickets(t *testing.T) {
	s, _, token := startServer(t)
	c := NewClient(s.Addr(), token)
	defer c.Close()
	ctx := context.Background()
	exchange := func(ticket string) (int, Session, Error) {
		resp, err := http.Post("http://"+s.Addr()+"/api/v1/session", "application/json", strings.NewReader(`{"ticket":"`+ticket+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			Session
			Error
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Session, v.Error
	}
	unauthorized := func(what string, code int, e Error) {
		t.Helper()
		if code != 401 || e.Code != CodeUnauthorized || !strings.Contains(e.Hint, "callsign web") {
			t.Errorf("%s: %d %+v, want 401 with a hint to run callsign web", what, code, e)
		}
	}

	tk, err := c.NewTicket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tk.Ticket) != 32 || strings.Contains(tk.URL, token) || tk.URL != "http://"+s.Addr()+"/#ticket="+tk.Ticket ||
		time.Until(tk.Expires) > TicketTTL || time.Until(tk.Expires) < TicketTTL-time.Minute {
		t.Fatalf("ticket %+v", tk)
	}
	if code, sess, _ := exchange(tk.Ticket); code != 200 || sess.Token != token {
		t.Fatalf("first use: %d %+v", code, sess)
	}
	code, _, e := exchange(tk.Ticket)
	unauthorized("second use", code, e)
	code, _, e = exchange(strings.Repeat("0", 32))
	unauthorized("unknown ticket", code, e)
	code, _, e = exchange("")
	unauthorized("no ticket", code, e)

	old, _ := s.tickets.issue(time.Now().Add(-TicketTTL - time.Second))
	code, _, e = exchange(old)
	unauthorized("expired ticket", code, e)

	// Only the newest maxTickets wait to be used.
	first := s.NewTicket()
	for range maxTickets {
		s.NewTicket()
	}
	code, _, e = exchange(first.Ticket)
	unauthorized("a ticket pushed out by newer ones", code, e)
	last := s.NewTicket()
	if code, sess, _ := exchange(last.Ticket); code != 200 || sess.Token != token {
		t.Errorf("newest ticket: %d %+v", code, sess)
	}

	// Asking for a ticket takes the token.
	resp, err := http.Post("http://"+s.Addr()+"/api/v1/tickets", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("ticket without the token: %d, want 401", resp.StatusCode)
	}
}
