package backend

import (
	"errors"
	"fmt"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/group"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/media"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// How a domain error becomes an API error: apiError, once, where a Backend
// method returns (every exported method ends in it). The code is the one
// errorCodes gives the first sentinel the error wraps; the message is the
// error's text; the hint is the call site's (explain) or else the
// sentinel's. The backend's own checks of a request (an empty message, an
// unknown action) and answers that are not errors (a claim in conflict)
// are api.Errorf where they are made.

// errNetwork marks a lookup or publication on the network that failed
// without a sentinel (kad-dht's own errors): the node may have no peers
// yet. See onNetwork.
var errNetwork = errors.New("the network did not answer")

// errorCodes maps every sentinel of the domain packages to its API code
// and a default hint. Order matters only where one sentinel wraps another
// (the first listed wins); errNetwork comes last, so a sentinel it wraps
// wins. A sentinel that never reaches a person from a running node (the
// store's start-up errors, a peer's malformed record) maps to internal.
var errorCodes = []struct {
	err  error
	code string
	hint string
}{
	// The address book.
	{contacts.ErrNotFound, api.CodeNotFound, "`callsign contacts list` shows your contacts"},
	{contacts.ErrPetnameTaken, api.CodeConflict, "pick another with --as PETNAME"},
	{contacts.ErrInvalidPetname, api.CodeBadRequest, "use 1 to 64 characters without leading or trailing spaces"},
	{contacts.ErrKeyChanged, api.CodeConflict, "compare safety numbers with `callsign verify NAME`, then confirm with --confirmed"},

	// Names and keys.
	{identity.ErrInvalidHandle, api.CodeInvalidName, "handles are 3 to 32 letters or digits of one script, with . _ - inside"},
	{identity.ErrInvalidAccountID, api.CodeInvalidName, "an account id is csa1 followed by 52 letters and digits; `callsign id` shows yours"},
	{identity.ErrInvalidDeviceID, api.CodeInvalidName, "a device id is 13 letters a-z and digits 2-7"},
	{identity.ErrInvalidKey, api.CodeInternal, ""},
	{identity.ErrMalformedCert, api.CodeInternal, ""},
	{identity.ErrCertSignature, api.CodeInternal, ""},
	{identity.ErrCertExpired, api.CodeInternal, ""},
	{identity.ErrCertNotYetValid, api.CodeInternal, ""},

	// The address book on the network. dht.ErrInvalidHandle wraps
	// identity's and maps the same.
	{dht.ErrInvalidHandle, api.CodeInvalidName, "handles are 3 to 32 letters or digits of one script, with . _ - inside"},
	{dht.ErrNotFound, api.CodeNotFound, "check the spelling, or ask them for their self-certifying handle"},
	{dht.ErrIncumbent, api.CodeConflict, "the name is held by someone else; pick another"},
	{dht.ErrNoPeers, api.CodeUnavailable, "check `callsign status`: the node needs peers"},
	{dht.ErrNotConfirmed, api.CodeUnavailable, "check `callsign status`: the node needs peers to store it"},
	{dht.ErrBusy, api.CodeUnavailable, "try again in a moment"},
	{dht.ErrClosed, api.CodeUnavailable, "the node is stopping"},
	{dht.ErrStaleSeq, api.CodeUnavailable, "try again in a moment"},
	{dht.ErrKeepRefused, api.CodeUnavailable, ""},                                                                   // and ErrBackdated, ErrOutOfWindow, ErrKeepStale, ErrKeepFull
	{dht.ErrInvalidRecord, api.CodeUnavailable, "a peer answered with a record that does not check out; try again"}, // and its kinds
	{dht.ErrMalformed, api.CodeUnavailable, "a peer answered with a record that does not check out; try again"},
	{dht.ErrTooLarge, api.CodeInternal, ""},

	// Messages.
	{msg.ErrTooLarge, api.CodeTooLarge, "split it into several messages"},
	{msg.ErrBadRecipient, api.CodeBadRequest, ""},
	{msg.ErrNotYours, api.CodeForbidden, "you can react to it, or reply"},
	{msg.ErrTooLate, api.CodeConflict, "a message can be edited or deleted for everyone for 24 hours after it was sent, and a file can only be deleted"},
	{msg.ErrDeviceRevoked, api.CodeConflict, "another device of your account removed this one; to use it again, link it anew from a device of yours (`callsign up --link CODE` in a new data directory)"},
	{msg.ErrClosed, api.CodeUnavailable, "the node is stopping"},
	{msg.ErrSignalTooLarge, api.CodeInternal, ""},
	{msg.ErrSignalUndelivered, api.CodeUnavailable, "they may be offline; try again later"},

	// Calls.
	{call.ErrInCall, api.CodeConflict, "hang up first: callsign hangup"},
	{call.ErrSelf, api.CodeBadRequest, ""},
	{call.ErrNotRinging, api.CodeConflict, ""},
	{call.ErrUnknownCall, api.CodeNotFound, "`callsign calls` lists calls"},
	{call.ErrClosed, api.CodeUnavailable, "the node is stopping"},
	{call.ErrMalformed, api.CodeInternal, ""},
	{media.ErrBadSDP, api.CodeBadRequest, "use a browser that offers Opus audio and VP8 video, on this machine"},
	{media.ErrBadCandidate, api.CodeBadRequest, ""},
	{media.ErrBadClip, api.CodeBadRequest, "use an Ogg/Opus file or stream (one packet per page), an IVF/VP8 file or stream, or tone/pattern"},
	{media.ErrSignal, api.CodeConflict, ""},
	{media.ErrEnded, api.CodeConflict, ""},
	{media.ErrWrongRole, api.CodeConflict, ""},
	{media.ErrTooMany, api.CodeBadRequest, ""},
	{media.ErrClosed, api.CodeUnavailable, "the node is stopping"},
	{media.ErrBridged, api.CodeInternal, ""},

	// The store.
	{store.ErrCorrupt, api.CodeInternal, "stop the node and run `callsign store verify` to list what is damaged"},
	{store.ErrNotFound, api.CodeNotFound, ""},
	{store.ErrInvalid, api.CodeBadRequest, ""},
	{store.ErrPetnameTaken, api.CodeConflict, "pick another with --as PETNAME"},
	{store.ErrTxnTooBig, api.CodeTooLarge, ""},
	{store.ErrClosed, api.CodeUnavailable, "the node is stopping"},
	{store.ErrInUse, api.CodeInternal, ""},
	{store.ErrWrongPassphrase, api.CodeInternal, ""},
	{store.ErrNeedPassphrase, api.CodeInternal, ""},
	{store.ErrHasKeyFile, api.CodeInternal, ""},
	{store.ErrKeyFileMode, api.CodeInternal, ""},
	{store.ErrKeyMissing, api.CodeInternal, ""},
	{store.ErrKeyMismatch, api.CodeInternal, ""},
	{store.ErrSchemaTooNew, api.CodeInternal, ""},
	{store.ErrPortableKind, api.CodeBadRequest, "restore it with a newer callsign"},
	{store.ErrRestoreInterrupted, api.CodeInternal, ""},
	{store.ErrAccountInUse, api.CodeConflict, "a backup is restored onto a node that was just set up: run `callsign up --restore FILE --data NEWDIR`"},

	// Backups and linked devices.
	{devices.ErrWrongPassphrase, api.CodeBadRequest, "the passphrase is the one given when the backup was made"},
	{devices.ErrBackupNewer, api.CodeBadRequest, "restore it with a newer callsign"},
	{devices.ErrBackupTruncated, api.CodeBadRequest, "use another copy of the backup"},
	{devices.ErrBackupDamaged, api.CodeBadRequest, "use another copy of the backup"},
	{devices.ErrLinkBusy, api.CodeConflict, ""},
	{devices.ErrLinkSpent, api.CodeBadRequest, ""},
	{devices.ErrLinkWrongCode, api.CodeBadRequest, ""},
	{devices.ErrLinkExpired, api.CodeBadRequest, ""},
	{devices.ErrLinkCode, api.CodeBadRequest, "copy the whole code `callsign devices link` shows"},
	{devices.ErrLinkDeclined, api.CodeConflict, ""},
	{devices.ErrLinkCanceled, api.CodeConflict, ""},
	{devices.ErrLinkMismatch, api.CodeConflict, "someone may be in the middle: link again, face to face"},
	{devices.ErrLinkFrame, api.CodeUnavailable, "the other device sent what this one cannot read: update both"},
	{devices.ErrLinkTooLarge, api.CodeTooLarge, "remove contacts you no longer need, or link from a backup: `callsign backup create`, then `callsign up --restore`"},
	{devices.ErrRevoked, api.CodeConflict, ""},
	{devices.ErrMalformed, api.CodeInternal, ""},

	// Group chats.
	{groupchat.ErrNotFound, api.CodeNotFound, "`callsign group list` shows your groups"},
	{groupchat.ErrNotMember, api.CodeForbidden, ""},
	{groupchat.ErrNoText, api.CodeBadRequest, ""},
	{groupchat.ErrTooLarge, api.CodeTooLarge, "split it into several messages"},
	{groupchat.ErrMalformed, api.CodeInternal, ""},
	{groupchat.ErrNotYours, api.CodeForbidden, "you can react to it, or reply"},
	{groupchat.ErrTooLate, api.CodeConflict, "a message can be edited or deleted for everyone for 24 hours after it was sent, and a file can only be deleted"},
	{groupchat.ErrNoMessage, api.CodeNotFound, ""},
	{groupchat.ErrInvalid, api.CodeBadRequest, ""},
	{group.ErrNotAllowed, api.CodeForbidden, "only the group's admins add, remove, rename and make admins; and someone is added once"},
	{group.ErrFull, api.CodeConflict, "a group has at most 1,000 members"},
	{group.ErrMalformed, api.CodeBadRequest, ""},
	{group.ErrBadSignature, api.CodeInternal, ""},
	{group.ErrOtherGroup, api.CodeInternal, ""},
	{group.ErrReplayed, api.CodeInternal, ""},
	{group.ErrUnknownParent, api.CodeInternal, ""},

	{errNetwork, api.CodeUnavailable, "check `callsign status`: the node needs peers"},
}

// apiError returns err as the API reports it: an *api.Error for an error
// that wraps a sentinel of errorCodes (or is one already), else err itself
// (the API server reports it as internal; context errors as unavailable).
func apiError(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*api.Error](err); ok {
		return e
	}
	x, explained := errors.AsType[*explained](err)
	for _, m := range errorCodes {
		if !errors.Is(err, m.err) {
			continue
		}
		code, hint := m.code, m.hint
		if explained && x.hint != "" {
			hint = x.hint
		}
		if explained && x.code != "" {
			code = x.code
		}
		return api.Errorf(code, hint, "%s", err.Error())
	}
	if explained && x.code != "" {
		return api.Errorf(x.code, x.hint, "%s", err.Error())
	}
	return err
}

// explained is a domain error in the words of the call site that met it:
// its message, a hint better than the sentinel's default, and, rarely, a
// code that says more than the sentinel's (a store miss for ids a request
// named is the request's fault).
type explained struct {
	err             error
	msg, hint, code string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// explain words err for the user; hint "" keeps the sentinel's.
func explain(err error, hint, format string, args ...any) error {
	return &explained{err: err, msg: fmt.Sprintf(format, args...), hint: hint}
}

// badRequest reports err, which a request's own arguments caused, as the
// request's fault (bad_request), whatever its sentinel.
func badRequest(err error) error {
	return &explained{err: err, msg: err.Error(), code: api.CodeBadRequest}
}

// onNetwork marks err, a failure on the network, so that it maps to
// unavailable when it wraps no more precise sentinel.
func onNetwork(err error) error { return &netError{err} }

type netError struct{ err error }

func (e *netError) Error() string   { return e.err.Error() }
func (e *netError) Unwrap() []error { return []error{e.err, errNetwork} }
