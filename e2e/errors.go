package e2e

import "errors"

// Errors returned by this package. Callers branch on them with errors.Is; the
// returned errors wrap them with the operation that failed.
var (
	// ErrDecrypt means a message did not authenticate: it was tampered with,
	// belongs to another session, or was encrypted with keys this side does
	// not have. The session is unchanged.
	ErrDecrypt = errors.New("e2e: message failed to decrypt")

	// ErrReplay means the message was already decrypted (its key is used up)
	// or its session was retired. The session is unchanged.
	ErrReplay = errors.New("e2e: message replayed")

	// ErrTooManySkipped means accepting the message would require skipping
	// more than MaxSkip message keys in one chain. The session is unchanged.
	ErrTooManySkipped = errors.New("e2e: too many skipped messages")

	// ErrBadSignature means a prekey or identity key signature did not verify
	// against the expected account key.
	ErrBadSignature = errors.New("e2e: bad signature")

	// ErrMalformed means bytes did not parse: wrong version, length, field
	// order or value.
	ErrMalformed = errors.New("e2e: malformed input")

	// ErrUnknownPrekey means an initial message names a prekey this side does
	// not hold: a one-time prekey already consumed, or a signed prekey
	// retired past its grace period.
	ErrUnknownPrekey = errors.New("e2e: unknown prekey")

	// ErrNoSession means a SessionSet holds no session to encrypt with.
	ErrNoSession = errors.New("e2e: no session")
)
