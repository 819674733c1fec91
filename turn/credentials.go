package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined over HMAC-SHA1.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credential errors. Verify and the server's authentication return them
// wrapped; branch with errors.Is.
var (
	// ErrMalformedUsername means the username is not "<expiry-unix>:<user>"
	// in the strict form Credentials produces.
	ErrMalformedUsername = errors.New("malformed TURN username")
	// ErrExpired means the username's expiry time has passed.
	ErrExpired = errors.New("TURN credentials expired")
	// ErrFarFuture means the username's expiry lies further ahead than the
	// server's CredentialTTL plus clock skew: this server never issued it.
	ErrFarFuture = errors.New("TURN credentials expire too far in the future")
	// ErrForged means the password is not the HMAC of the username under the
	// server's secret.
	ErrForged = errors.New("TURN credentials do not match the server secret")
	// ErrWrongRealm means a request named a realm other than the server's.
	ErrWrongRealm = errors.New("wrong TURN realm")
)

const (
	// maxUserIDLen caps the opaque user id inside a username.
	maxUserIDLen = 128
	// maxExpiryDigits caps the decimal expiry: 12 digits reach the year 33658.
	maxExpiryDigits = 12
	// MaxUsernameLen is the longest username the server accepts.
	MaxUsernameLen = maxExpiryDigits + 1 + maxUserIDLen
	// clockSkew is how far a client's or issuer's clock may be ahead of ours.
	clockSkew = time.Minute
	// hashedUserPrefix marks a user id Credentials replaced by its hash
	// because the caller's id was outside the allowed alphabet or length.
	hashedUserPrefix = "h-"
)

// Credentials are short-lived TURN REST credentials (the convention coturn
// calls use-auth-secret): Username is "<expiry-unix>:<user>" and Password is
// base64(HMAC-SHA1(secret, Username)). They marshal directly to the JSON an
// RTCIceServer wants (plus the expiry).
type Credentials struct {
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
	URLs     []string  `json:"urls"`
	// TLSCertSHA256 is the SHA-256 of the certificate of the server's
	// "turns:" listener, nil without one. The credentials reach a member
	// over its authenticated libp2p connection to the relay's node, so a
	// member trusts exactly this certificate (it may be self-signed).
	TLSCertSHA256 []byte `json:"tls_cert_sha256,omitempty"`
}

// validUserID reports whether s may be used verbatim as the user part of a
// username: 1 to 128 bytes of [A-Za-z0-9._~+/=@-] and '_' (base58 and
// base64 peer ids fit).
func validUserID(s string) bool {
	if len(s) == 0 || len(s) > maxUserIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._~+/=@-_", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// userIDFor returns user if it is a valid user id, and otherwise a stable
// hash of it, so per-user quotas still apply to the same caller.
func userIDFor(user string) string {
	if validUserID(user) {
		return user
	}
	sum := sha256.Sum256([]byte("callsign/v1/turn-user\x00" + user))
	return hashedUserPrefix + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// formatUsername builds "<expiry>:<user>".
func formatUsername(expiry int64, user string) string {
	return strconv.FormatInt(expiry, 10) + ":" + user
}

// parseUsername splits a username into its expiry (Unix seconds) and user
// id. It accepts exactly the form formatUsername produces for a valid user
// id: 1 to 12 ASCII digits without a leading zero, one ':', a valid user id.
// It never panics and allocates nothing beyond the returned substring.
func parseUsername(username string) (expiry int64, user string, err error) {
	if len(username) > MaxUsernameLen {
		return 0, "", fmt.Errorf("%w: longer than %d bytes", ErrMalformedUsername, MaxUsernameLen)
	}
	ts, user, ok := strings.Cut(username, ":")
	if !ok {
		return 0, "", fmt.Errorf("%w: no ':' separator", ErrMalformedUsername)
	}
	if len(ts) == 0 || len(ts) > maxExpiryDigits {
		return 0, "", fmt.Errorf("%w: expiry must have 1 to %d digits", ErrMalformedUsername, maxExpiryDigits)
	}
	if ts[0] == '0' {
		return 0, "", fmt.Errorf("%w: expiry has a leading zero", ErrMalformedUsername)
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, "", fmt.Errorf("%w: expiry is not decimal", ErrMalformedUsername)
		}
	}
	expiry, err = strconv.ParseInt(ts, 10, 64)
	if err != nil { // unreachable with 12 digits; kept so a change of limits stays safe
		return 0, "", fmt.Errorf("%w: expiry: %v", ErrMalformedUsername, err)
	}
	if !validUserID(user) {
		return 0, "", fmt.Errorf("%w: user id must be 1 to %d characters of [A-Za-z0-9._~+/=@_-]",
			ErrMalformedUsername, maxUserIDLen)
	}
	return expiry, user, nil
}

// restPassword is base64(HMAC-SHA1(secret, username)).
func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkExpiry applies the validity window to an expiry: it must lie after
// now and no further ahead than ttl plus clock skew.
func checkExpiry(expiry int64, now time.Time, ttl time.Duration) error {
	if expiry <= now.Unix() {
		return ErrExpired
	}
	if expiry > now.Add(ttl+clockSkew).Unix() {
		return ErrFarFuture
	}
	return nil
}

// Credentials issues credentials for user, valid for the server's
// CredentialTTL from now. user is an opaque id (a peer id, say); one made of
// other characters than [A-Za-z0-9._~+/=@_-] or longer than 128 bytes is
// replaced by a stable hash of it. The URLs are those of URLs(), so
// Credentials is meant to be called after Start. Safe for concurrent use.
func (s *Server) Credentials(user string) Credentials {
	// The username carries whole seconds; truncating keeps the expiry
	// inside the window Verify accepts.
	exp := s.now().Add(s.cfg.CredentialTTL).Truncate(time.Second)
	username := formatUsername(exp.Unix(), userIDFor(user))
	return Credentials{
		Username: username,
		Password: restPassword(s.secret, username),
		Expires:  exp.UTC(),
		URLs:     s.URLs(),

		TLSCertSHA256: s.TLSCertSHA256(),
	}
}

// Verify checks a username and password pair the way the server would for
// a new allocation and returns the user id inside the username. Errors wrap
// ErrMalformedUsername, ErrExpired, ErrFarFuture or ErrForged. The password
// is compared in constant time. Safe for concurrent use.
func (s *Server) Verify(username, password string) (user string, err error) {
	expiry, user, err := parseUsername(username)
	if err != nil {
		return "", err
	}
	if err := checkExpiry(expiry, s.now(), s.cfg.CredentialTTL); err != nil {
		return "", err
	}
	want := restPassword(s.secret, username)
	if subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 {
		return "", ErrForged
	}
	return user, nil
}
