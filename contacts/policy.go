package contacts

import (
	"errors"

	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// Admission is what happens to a message from an account.
type Admission int

const (
	// Request: held in requests until the user accepts the sender.
	Request Admission = iota
	// Deliver: shown in the conversation.
	Deliver
	// Drop: dropped silently (a blocked account).
	Drop
)

// MessageFrom decides what happens to a message from an account:
// contacts' messages are delivered, blocked accounts' dropped, and
// everyone else's wait in requests, as do a contact's whose key changed
// (the conversation stays with the pinned key until the user verifies
// again). A failed lookup holds the message as a request and returns the
// error for the caller to log.
func (b *Book) MessageFrom(from identity.AccountID) (Admission, error) {
	c, err := b.db.Contact(from.String())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Request, nil
	case err != nil:
		return Request, err
	case c.Blocked:
		return Drop, nil
	case c.KeyChanged:
		return Request, nil
	}
	return Deliver, nil
}

// Call policies: who may ring this node.
const (
	CallsEveryone  = "everyone"
	CallsContacts  = "contacts" // the default
	CallsFollowing = "following"
	CallsVerified  = "verified"
	CallsNobody    = "nobody"
)

// ValidCallPolicy reports whether p is one of the call policies.
func ValidCallPolicy(p string) bool {
	switch p {
	case CallsEveryone, CallsContacts, CallsFollowing, CallsVerified, CallsNobody:
		return true
	}
	return false
}

// CallRules are the user's call settings that apply to one caller.
type CallRules struct {
	Policy string // one of the call policies; "" = CallsContacts
	Rule   string // the caller's own rule: "allow", "deny" or "" (the policy's)
}

// CallDecision is whether a caller may ring, and how its call connects.
type CallDecision struct {
	Allow bool
	// RelayOnly: the call uses the relay only, so a stranger never learns
	// this node's address.
	RelayOnly bool
}

// CallFrom decides whether from may ring this node under rules: a
// caller's own rule first, then a blocked contact or one whose key changed
// never rings, then the policy. Strangers' calls are relay only.
func (b *Book) CallFrom(from identity.AccountID, rules CallRules) CallDecision {
	c, err := b.db.Contact(from.String())
	isContact := err == nil
	d := CallDecision{RelayOnly: !isContact}
	switch rules.Rule {
	case "deny":
		return CallDecision{}
	case "allow":
		d.Allow = true
		return d
	}
	if isContact && (c.Blocked || c.KeyChanged) {
		return CallDecision{}
	}
	switch rules.Policy {
	case CallsEveryone:
		d.Allow = true
	case CallsContacts, "":
		d.Allow = isContact
	case CallsFollowing:
		d.Allow = isContact && c.Following
	case CallsVerified:
		d.Allow = isContact && c.Verified
	}
	return d
}
