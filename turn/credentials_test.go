package turn

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

func TestRESTPasswordGolden(t *testing.T) {
	// openssl: printf 1700000000:alice | openssl dgst -sha1 -hmac 0123456789abcdef -binary | base64
	const want = "QmpguVhgm8LJZp0MkvqhyKEkXps="
	if got := restPassword([]byte("0123456789abcdef"), "1700000000:alice"); got != want {
		t.Fatalf("restPassword = %q, want %q", got, want)
	}
}

func TestVerifyAcceptsPionRESTCredentials(t *testing.T) {
	// pion's own TURN REST generator is an independent implementation of
	// the same convention (and coturn's).
	s, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	u, p, err := pionturn.GenerateLongTermTURNRESTCredentials(string(testSecret), "alice", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if user, err := s.Verify(u, p); err != nil || user != "alice" {
		t.Fatalf("Verify(pion credentials) = %q, %v", user, err)
	}
}

func TestVerify(t *testing.T) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	sign := func(u string) string { return restPassword(testSecret, u) }
	valid := fmt.Sprintf("%d:alice", now.Add(5*time.Minute).Unix())
	skewed := fmt.Sprintf("%d:alice", now.Add(DefaultCredentialTTL+30*time.Second).Unix())
	cases := []struct {
		username, password string
		want               error
	}{
		{valid, sign(valid), nil},
		{skewed, sign(skewed), nil}, // issuer's clock a little ahead
		{valid, sign(valid + "x"), ErrForged},
		{valid, "", ErrForged},
		{fmt.Sprintf("%d:alice", now.Unix()), sign(fmt.Sprintf("%d:alice", now.Unix())), ErrExpired},
		{fmt.Sprintf("%d:alice", now.Add(DefaultCredentialTTL+2*time.Minute).Unix()), "x", ErrFarFuture},
		{"alice", sign("alice"), ErrMalformedUsername},
		{"0" + valid, sign("0" + valid), ErrMalformedUsername},
		{"-5:alice", sign("-5:alice"), ErrMalformedUsername},
		{"+1800000300:alice", sign("+1800000300:alice"), ErrMalformedUsername},
		{valid + " ", sign(valid + " "), ErrMalformedUsername},
		{"1800000300:al ice", sign("1800000300:al ice"), ErrMalformedUsername},
		{"1800000300:" + strings.Repeat("a", 129), "x", ErrMalformedUsername},
		{"9999999999999:alice", "x", ErrMalformedUsername},
	}
	for _, tc := range cases {
		_, err := s.Verify(tc.username, tc.password)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Verify(%q) = %v, want %v", tc.username, err, tc.want)
		}
	}
}

func TestCredentialsForOddUserIDs(t *testing.T) {
	s, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "has space", "colon:inside", strings.Repeat("x", 500), "ünïcode", "\x00"} {
		c := s.Credentials(user)
		got, err := s.Verify(c.Username, c.Password)
		if err != nil {
			t.Fatalf("credentials for %q do not verify: %v", user, err)
		}
		if !strings.HasPrefix(got, hashedUserPrefix) {
			t.Fatalf("user %q kept verbatim as %q", user, got)
		}
		if again := s.Credentials(user); !strings.HasSuffix(again.Username, ":"+got) {
			t.Fatalf("hashed id for %q is not stable", user)
		}
	}
	if a, b := userIDFor("has space"), userIDFor("has  space"); a == b {
		t.Fatal("distinct user ids hash alike")
	}
}

func TestParseUsernameGolden(t *testing.T) {
	good := map[string]struct {
		exp  int64
		user string
	}{
		"1700000000:alice":                 {1700000000, "alice"},
		"1:a":                              {1, "a"},
		"999999999999:12D3KooWAbc":         {999999999999, "12D3KooWAbc"},
		"1700000000:h-AbC_dEf-123":         {1700000000, "h-AbC_dEf-123"},
		"1700000000:user@example.org/x+y=": {1700000000, "user@example.org/x+y="},
	}
	for in, want := range good {
		exp, user, err := parseUsername(in)
		if err != nil || exp != want.exp || user != want.user {
			t.Errorf("parseUsername(%q) = %d, %q, %v", in, exp, user, err)
		}
	}
	for _, in := range badUsernames {
		if _, _, err := parseUsername(in); !errors.Is(err, ErrMalformedUsername) {
			t.Errorf("parseUsername(%q) accepted", in)
		}
	}
}

var badUsernames = []string{
	"", ":", "alice", "1700000000", "1700000000:", ":alice", "01700000000:alice",
	"1700000000:alice:bob", "17000 0000:alice", "0x10:alice", "1e9:alice",
	"1700000000:al\x00ice", "1700000000:ålice", "1234567890123:alice",
	"1700000000:" + strings.Repeat("a", 129),
}

// FuzzParseUsername checks the username parser on hostile input: it never
// panics, accepts only canonical usernames (format(parse(u)) == u), and the
// server's auth handler agrees with it.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1700000000:alice", "1:a", "999999999999:12D3KooWAbc", "1700000000:h-AbC_dEf-123"} {
		f.Add(s, DefaultRealm)
	}
	for _, s := range badUsernames {
		f.Add(s, "other")
	}
	s, err := New(Config{ListenUDP: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	f.Fuzz(func(t *testing.T, username, realm string) {
		exp, user, err := parseUsername(username)
		if err == nil {
			if got := formatUsername(exp, user); got != username {
				t.Fatalf("parse/format round trip: %q -> %q", username, got)
			}
			if exp <= 0 || !validUserID(user) || len(username) > MaxUsernameLen {
				t.Fatalf("accepted %q with expiry %d user %q", username, exp, user)
			}
		} else if !errors.Is(err, ErrMalformedUsername) {
			t.Fatalf("parseUsername(%q) error %v is not ErrMalformedUsername", username, err)
		}
		_, key, ok := s.authenticate(&pionturn.RequestAttributes{
			Username: username, Realm: realm, SrcAddr: src, Method: stun.MethodAllocate,
		})
		if ok && (err != nil || realm != DefaultRealm || len(key) != 16) {
			t.Fatalf("authenticate accepted %q in realm %q (parse error %v)", username, realm, err)
		}
	})
}
