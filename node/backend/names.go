package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/contacts"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// mapError is apiError for a method's named error result: every exported
// method defers it, so no domain error leaves the backend unmapped.
func mapError(err *error) { *err = apiError(*err) }

// Handles implements api.Backend.
func (s *Service) Handles(ctx context.Context) (_ []api.Handle, err error) {
	defer mapError(&err)
	return s.node.Handles(ctx)
}

// ClaimHandle implements api.Backend: it claims name on the DHT and returns
// once a read has confirmed the claim, or says who holds it.
func (s *Service) ClaimHandle(ctx context.Context, name string) (_ api.Claim, err error) {
	defer mapError(&err)
	norm, err := identity.NormalizeHandle(name)
	if err != nil {
		return api.Claim{}, invalidName(name, err)
	}
	if peers, err := s.node.Peers(ctx); err == nil && len(peers) == 0 {
		return api.Claim{}, explain(dht.ErrNoPeers, "start the node with --bootstrap ADDR of a node already on the network",
			"not connected to any peer: a claim must be stored and confirmed by other nodes")
	}
	res, err := s.node.Claim(ctx, norm, func(st dht.ClaimStage) {
		s.events.publish(api.NewEvent(api.EventClaimProgress, api.ClaimProgress{Name: norm, Stage: string(st)}))
	})
	switch {
	case errors.Is(err, identity.ErrInvalidHandle):
		return api.Claim{}, invalidName(name, err)
	case err != nil:
		return api.Claim{}, explain(onNetwork(err), "check `callsign status`: the node needs peers to store the claim", "claim @%s: %v", norm, err)
	}
	out := api.Claim{Name: res.Name, Status: string(res.Status), Owner: res.Owner.ID().String()}
	switch res.Status {
	case dht.ClaimTaken:
		return out, nil
	case dht.ClaimConflict:
		return api.Claim{}, api.Errorf(api.CodeConflict, "another owner's record is held by part of the network; try again later",
			"claim @%s: the closest peers disagree about who holds it", norm)
	}
	s.events.publish(api.NewEvent(EventHandle, out))
	return out, nil
}

// invalidName words a handle's syntax error (identity.ErrInvalidHandle).
func invalidName(input string, err error) error {
	reason := err.Error()
	if he, ok := errors.AsType[*identity.HandleError](err); ok {
		reason = he.Reason
	}
	return explain(err, "", "invalid handle %q: %s", input, reason)
}

// resolve looks name up on the network: a handle, self-certifying or
// global, or an account id.
func (s *Service) resolve(ctx context.Context, name string) (*dht.Resolution, error) {
	res, err := s.dir.Resolve(ctx, name)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, identity.ErrInvalidHandle):
		return nil, invalidName(name, err)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, explain(onNetwork(err), "check `callsign status`: the node needs peers to look names up", "resolve %s: %v", name, err)
}

// observe checks what name resolved to against the contacts (trust on
// first use) and raises a key change the first time it is seen.
func (s *Service) observe(res *dht.Resolution) (contacts.Trust, error) {
	t, err := s.contacts.Observe(res.Name, res.Owner)
	if err == nil && t.Marked != nil {
		s.events.publish(api.NewEvent(api.EventKeyChange, api.KeyChange{
			Contact: t.Marked.Contact.Petname, Handle: t.Marked.Handle, Pinned: t.Marked.Contact.Account, Now: t.Marked.Now.String(),
		}))
	}
	return t, err
}

// Whois implements api.Backend.
func (s *Service) Whois(ctx context.Context, name string) (_ api.Whois, err error) {
	defer mapError(&err)
	res, err := s.resolve(ctx, name)
	if err != nil {
		return api.Whois{}, err
	}
	w := api.Whois{Query: name, Status: string(res.Status), Name: res.Name, Devices: []api.Device{}}
	for _, c := range res.Conflicts {
		w.Owners = append(w.Owners, api.OwnerCount{Account: c.Owner.ID().String(), Count: c.Count})
	}
	if res.Status != dht.StatusOK {
		return w, nil
	}
	w.Account = res.Owner.ID().String()
	if rec := res.Identity; rec != nil {
		for _, h := range rec.Handles {
			if identity.IsSelfCert(h) && identity.VerifySelfCert(h, res.Owner) {
				w.Handle = h
				break
			}
		}
		for _, d := range rec.Devices {
			pid, err := peer.IDFromBytes(d.PeerID)
			if err != nil {
				continue
			}
			w.Devices = append(w.Devices, api.Device{Peer: pid.String(), Created: d.Created.UTC(), Expires: d.Expires.UTC()})
		}
		w.DisplayName = rec.DisplayName
	}
	if identity.IsSelfCert(res.Name) && w.Handle == "" {
		w.Handle = res.Name
	}
	t, err := s.observe(res)
	if err != nil {
		return api.Whois{}, err
	}
	w.Pinned, w.KeyChanged = t.Pinned, t.Changed
	if w.KeyChanged {
		w.Warning = fmt.Sprintf("@%s now resolves to a different key than the one you pinned; compare safety numbers before you trust it", res.Name)
	}
	return w, nil
}

// target is who a name in a request refers to, found once per operation.
type target struct {
	id      identity.AccountID
	contact *store.Contact  // nil: not a contact
	res     *dht.Resolution // the name's resolution, when it was looked up on the network
}

// target finds the account a name refers to: a contact (petname, handle
// or account id), an account id, or — when network is set — a handle
// resolved on the DHT, whose resolution it keeps so that the rest of the
// operation (pinning the key of a new contact) does not look it up again.
// A handle that now resolves to another key than a contact's is refused.
func (s *Service) target(ctx context.Context, name string, network bool) (target, error) {
	c, err := s.contacts.Find(name)
	if err == nil {
		return target{id: identity.AccountID(c.Account), contact: &c}, nil
	}
	if !errors.Is(err, contacts.ErrNotFound) {
		return target{}, err
	}
	if id, err := identity.ParseAccountID(name); err == nil {
		return target{id: id}, nil
	}
	if !network {
		return target{}, explain(err, "use a contact's petname or handle, or an account id", "no conversation with %q", name)
	}
	res, err := s.resolve(ctx, name)
	if err != nil {
		return target{}, err
	}
	if res.Status != dht.StatusOK {
		return target{}, explain(dht.ErrNotFound, "check the name with `callsign whois`", "cannot send to %s: %s", name, strings.ReplaceAll(string(res.Status), "_", " "))
	}
	if t, err := s.observe(res); err != nil {
		return target{}, err
	} else if t.Changed {
		return target{}, keyChanged(name, fmt.Sprintf("@%s now resolves", res.Name))
	}
	return target{id: res.Owner.ID(), res: res}, nil
}

// keyChanged refuses an operation with a contact whose key changed.
func keyChanged(name, what string) error {
	return explain(contacts.ErrKeyChanged, "compare safety numbers with `callsign verify "+name+"`, then confirm with --confirmed",
		"held back: %s to a different key than the one you pinned", what)
}

// accountKey finds the public key of an account and the handles its
// record claims: from res when this operation resolved it already, else
// from its identity record on the DHT.
func (s *Service) accountKey(ctx context.Context, t target) (identity.AccountPub, []string, error) {
	if res := t.res; res != nil && res.Owner.ID() == t.id { // looked up already in this operation
		var handles []string
		if res.Identity != nil {
			handles = res.Identity.Handles
		}
		return res.Owner, handles, nil
	}
	rec, err := s.dir.ResolveIdentity(ctx, t.id)
	if err != nil {
		return identity.AccountPub{}, nil, explain(onNetwork(err), "try again once the node has peers", "look up %s: %v", t.id, err)
	}
	return rec.Account, rec.Handles, nil
}

// verifiedHandle picks the name to show for an account from the handles
// its identity record claims. A record can claim anything, so a global
// handle is shown only if it resolves to this account; else the
// self-certifying handle, which is checked against the key.
func (s *Service) verifiedHandle(ctx context.Context, owner identity.AccountPub, handles []string) string {
	self := ""
	tried := 0
	for _, h := range handles {
		if identity.IsSelfCert(h) {
			if identity.VerifySelfCert(h, owner) && self == "" {
				self = h
			}
			continue
		}
		if tried == 2 {
			continue
		}
		tried++
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := s.dir.Resolve(lctx, h)
		cancel()
		if err == nil && res.Status == dht.StatusOK && res.Owner.Equal(owner) {
			return h
		}
	}
	return self
}

// Contacts implements api.Backend.
func (s *Service) Contacts(ctx context.Context) (_ []api.Contact, err error) {
	defer mapError(&err)
	cs, err := s.contacts.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, contactToAPI(c))
	}
	return out, nil
}

func contactToAPI(c store.Contact) api.Contact {
	return api.Contact{Account: c.Account, Petname: c.Petname, Handle: c.Handle, AddedAt: c.AddedAt.UTC(),
		KeyChanged: c.KeyChanged, Verified: c.Verified, Following: c.Following, Blocked: c.Blocked}
}

// AddContact implements api.Backend: it resolves name and pins the key it
// resolves to (trust on first use).
func (s *Service) AddContact(ctx context.Context, name, petname string) (_ api.Contact, err error) {
	defer mapError(&err)
	res, err := s.resolve(ctx, name)
	if err != nil {
		return api.Contact{}, err
	}
	c, err := s.pin(ctx, name, res, petname)
	if err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(c), nil
}

// pin adds the owner of res, what name resolved to, as a contact.
func (s *Service) pin(ctx context.Context, name string, res *dht.Resolution, petname string) (store.Contact, error) {
	switch res.Status {
	case dht.StatusOK:
	case dht.StatusConflict:
		return store.Contact{}, api.Errorf(api.CodeConflict, "ask them for their self-certifying handle (name~suffix) and add that",
			"the closest peers disagree about who holds @%s; not adding it", res.Name)
	default:
		return store.Contact{}, explain(dht.ErrNotFound, "", "nobody holds %s (%s)", name, strings.ReplaceAll(string(res.Status), "_", " "))
	}
	// The handle the contact is known by: the one looked up, else (for an
	// account id) one its record claims and that checks out.
	handle := res.Name
	if handle == "" && res.Identity != nil {
		handle = s.verifiedHandle(ctx, res.Owner, res.Identity.Handles)
	}
	return s.contacts.Pin(res.Owner, handle, petname)
}

// RemoveContact implements api.Backend; name is a petname, a handle or an
// account id.
func (s *Service) RemoveContact(ctx context.Context, name string) (err error) {
	defer mapError(&err)
	return s.contacts.Remove(name)
}

// Accept implements api.Backend: the sender of a message request becomes
// a contact (its key pinned) and its conversation a normal one.
func (s *Service) Accept(ctx context.Context, name string) (_ api.Contact, err error) {
	defer mapError(&err)
	t, err := s.target(ctx, name, true)
	if err != nil {
		return api.Contact{}, err
	}
	var key *identity.AccountPub
	var handles []string
	if t.contact == nil {
		pub, hs, err := s.accountKey(ctx, t)
		if err != nil {
			return api.Contact{}, err
		}
		key, handles = &pub, hs
	}
	c, err := s.contacts.Accept(t.id, key, handles)
	if err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(c), nil
}

// SetContactFlag implements api.Backend for block and follow. Blocking or
// following someone who is not a contact yet makes them one.
func (s *Service) SetContactFlag(ctx context.Context, name, flag string, on bool) (_ api.Contact, err error) {
	defer mapError(&err)
	f := contacts.Flag(flag)
	if f != contacts.Blocked && f != contacts.Following {
		return api.Contact{}, api.Errorf(api.CodeBadRequest, "", "unknown flag %q", flag)
	}
	t, err := s.target(ctx, name, true)
	if err != nil {
		return api.Contact{}, err
	}
	var key *identity.AccountPub
	if t.contact == nil && on {
		pub, _, err := s.accountKey(ctx, t)
		if err != nil {
			return api.Contact{}, err
		}
		key = &pub
	}
	c, err := s.contacts.SetFlag(t.id, key, name, f, on)
	if err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(c), nil
}

// Safety implements api.Backend: the safety number with a contact, and with
// confirm, marking it verified. After a key change the number is the one
// for the new key, and confirming re-pins the contact to it.
func (s *Service) Safety(ctx context.Context, name string, confirm bool) (_ api.Safety, err error) {
	defer mapError(&err)
	c, err := s.contacts.Find(name)
	if err != nil {
		return api.Safety{}, err
	}
	pub, err := contacts.Key(c)
	if err != nil {
		return api.Safety{}, err
	}
	out := api.Safety{Name: c.Petname, Account: pub.ID().String(), SafetyNumber: identity.SafetyNumber(s.self, pub),
		Verified: c.Verified && !c.KeyChanged, KeyChanged: c.KeyChanged}
	if !confirm {
		return out, nil
	}
	if _, err := s.contacts.Verify(name, pub); err != nil {
		return api.Safety{}, err
	}
	out.Verified, out.KeyChanged = true, false
	return out, nil
}
