package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/dht"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// The node implements the local API.
var _ api.Backend = (*Node)(nil)

// ID implements api.Backend.
func (n *Node) ID(ctx context.Context) (api.ID, error) {
	handle, err := n.selfCertHandle()
	if err != nil {
		return api.ID{}, err
	}
	return api.ID{
		Account: n.keys.account.Public().ID().String(),
		Handle:  handle,
		Peer:    n.host.ID().String(),
		Addrs:   n.fullAddrs(),
		API:     n.api.Addr(),
	}, nil
}

// fullAddrs are the host's addresses with /p2p/<id>, ready to hand to
// another node's --bootstrap.
func (n *Node) fullAddrs() []string {
	infos, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(infos))
	for _, a := range infos {
		out = append(out, a.String())
	}
	return out
}

// Status implements api.Backend.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{
		Peers:        len(n.host.Network().Peers()),
		RoutingTable: n.dht.RoutingTableSize(),
		Public:       n.cfg.Public,
		Relays:       n.relaysInUse(),
		Encryption:   n.db.Encryption(),
		UptimeS:      int64(time.Since(n.started) / time.Second),
		DataDir:      n.cfg.DataDir,
		Version:      Version,
		Invite:       n.inviteInfo(),
		MDNS:         n.mdnsOn(),
	}
	st.Hint = n.aloneHint(st.Peers)
	n.fillMailboxStatus(&st)
	n.fillTURNStatus(&st)
	return st, nil
}

// relaysInUse lists the relays this node holds reservations on (taken from
// its /p2p-circuit addresses); a public node is its own relay.
func (n *Node) relaysInUse() []string {
	seen := map[string]bool{}
	out := []string{}
	for _, a := range n.host.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			continue
		}
		if id, err := a.ValueForProtocol(ma.P_P2P); err == nil && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Peers implements api.Backend.
func (n *Node) Peers(ctx context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		ap := api.Peer{Peer: p.String(), Direction: "outbound"}
		for _, c := range conns {
			ap.Addrs = append(ap.Addrs, c.RemoteMultiaddr().String())
			if c.Stat().Direction == network.DirInbound {
				ap.Direction = "inbound"
			}
			if c.Stat().Limited {
				ap.Limited = true
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

// Handles implements api.Backend.
func (n *Node) Handles(ctx context.Context) ([]api.Handle, error) {
	var claims []store.HandleClaim
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		claims, err = tx.Claims()
		return err
	}); err != nil {
		return nil, err
	}
	out := []api.Handle{{Name: identity.SelfCertHandle(primaryName(claims), n.keys.account.Public()), SelfCert: true}}
	for _, c := range claims {
		out = append(out, api.Handle{Name: c.Name, ClaimedAt: c.ClaimedAt})
	}
	return out, nil
}

// ClaimHandle implements api.Backend: it claims name on the DHT and returns
// once a read has confirmed the claim, or says who holds it.
func (n *Node) ClaimHandle(ctx context.Context, name string) (api.Claim, error) {
	norm, err := identity.NormalizeHandle(name)
	if err != nil {
		return api.Claim{}, invalidName(name, err)
	}
	if len(n.host.Network().Peers()) == 0 {
		return api.Claim{}, api.Errorf(api.CodeUnavailable, "start the node with --bootstrap ADDR of a node already on the network",
			"not connected to any peer: a claim must be stored and confirmed by other nodes")
	}
	var prev *dht.HandleClaim
	if err := n.db.View(func(tx *store.Tx) error {
		cs, err := tx.Claims()
		for _, c := range cs {
			if c.Name == norm {
				prev = &dht.HandleClaim{Name: c.Name, Nonce: c.Nonce, Seq: c.Seq, ClaimedAt: c.ClaimedAt}
			}
		}
		return err
	}); err != nil {
		return api.Claim{}, err
	}
	res, err := n.dht.ClaimHandleProgress(ctx, n.keys.account, norm, prev, func(st dht.ClaimStage) {
		n.events.publish(api.NewEvent(api.EventClaimProgress, api.ClaimProgress{Name: norm, Stage: string(st)}))
	})
	if err != nil {
		if errors.Is(err, dht.ErrInvalidHandle) || errors.Is(err, identity.ErrInvalidHandle) {
			return api.Claim{}, invalidName(name, err)
		}
		return api.Claim{}, api.Errorf(api.CodeUnavailable, "check `callsign status`: the node needs peers to store the claim", "claim @%s: %v", norm, err)
	}
	out := api.Claim{Name: res.Name, Status: string(res.Status), Owner: res.Owner.ID().String()}
	switch res.Status {
	case dht.ClaimTaken:
		return out, nil
	case dht.ClaimConflict:
		return api.Claim{}, api.Errorf(api.CodeConflict, "another owner's record is held by part of the network; try again later",
			"claim @%s: the closest peers disagree about who holds it", norm)
	}
	c := res.Claim
	if err := n.db.Update(func(tx *store.Tx) error {
		return tx.PutClaim(store.HandleClaim{Name: c.Name, Nonce: c.Nonce, Seq: c.Seq, ClaimedAt: c.ClaimedAt})
	}); err != nil {
		return api.Claim{}, fmt.Errorf("store claim: %w", err)
	}
	// The identity record lists our handles, and the self-certifying handle
	// takes its name from the first one: publish both before answering, so
	// that whatever the user looks up next is already there.
	if err := n.publish(ctx); err != nil {
		n.log.Info("republish after claim", "err", err)
	}
	n.events.publish(api.NewEvent(EventHandle, out))
	return out, nil
}

func invalidName(input string, err error) error {
	reason := err.Error()
	var he *identity.HandleError
	if errors.As(err, &he) {
		reason = he.Reason
	}
	return api.Errorf(api.CodeInvalidName, "handles are 3 to 32 letters or digits of one script, with . _ - inside",
		"invalid handle %q: %s", input, reason)
}

// Whois implements api.Backend.
func (n *Node) Whois(ctx context.Context, name string) (api.Whois, error) {
	res, err := n.resolve(ctx, name)
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
	w.Pinned, w.KeyChanged, err = n.checkPin(res)
	if err != nil {
		return api.Whois{}, err
	}
	if w.KeyChanged {
		w.Warning = fmt.Sprintf("@%s now resolves to a different key than the one you pinned; compare safety numbers before you trust it", res.Name)
	}
	return w, nil
}

func (n *Node) resolve(ctx context.Context, name string) (*dht.Resolution, error) {
	res, err := n.dht.Resolve(ctx, name)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, dht.ErrInvalidHandle) || errors.Is(err, identity.ErrInvalidHandle):
		return nil, invalidName(name, err)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, api.Errorf(api.CodeUnavailable, "check `callsign status`: the node needs peers to look names up", "resolve %s: %v", name, err)
}

// checkPin compares a resolution with the contacts (trust on first use):
// pinned when the owner is a contact; key changed when a contact holds
// this name under another key. A key change is remembered on the contact
// and raised as an event until the user re-verifies.
func (n *Node) checkPin(res *dht.Resolution) (pinned, changed bool, err error) {
	owner := res.Owner.ID().String()
	var update *store.Contact // a contact to mark key-changed
	err = n.db.View(func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for _, c := range cs {
			switch {
			case c.Account == owner:
				pinned = true
			case c.Handle == res.Name && !identity.IsSelfCert(res.Name):
				changed = true
				if !c.KeyChanged || !bytes.Equal(c.SeenPubKey, res.Owner.Bytes()) {
					c.KeyChanged, c.SeenPubKey = true, res.Owner.Bytes()
					update = &c
				}
			}
		}
		return err
	})
	if err == nil && update != nil {
		// Marked in a transaction of its own (most resolves change nothing
		// and stay read-only), on the contact as it is now, so a concurrent
		// edit (a petname, a block) is not overwritten.
		account, seen := update.Account, update.SeenPubKey
		err = n.db.Update(func(tx *store.Tx) error {
			c, err := tx.Contact(account)
			if errors.Is(err, store.ErrNotFound) {
				update = nil // removed meanwhile: nothing to mark
				return nil
			}
			if err != nil {
				return err
			}
			c.KeyChanged, c.SeenPubKey = true, seen
			update = &c
			return tx.PutContact(c)
		})
		if err == nil && update != nil {
			n.events.publish(api.NewEvent(EventKeyChange, api.KeyChange{
				Contact: update.Petname, Handle: res.Name, Pinned: update.Account, Now: owner,
			}))
		}
	}
	if changed {
		pinned = false
	}
	return pinned, changed, err
}

// Contacts implements api.Backend.
func (n *Node) Contacts(ctx context.Context) ([]api.Contact, error) {
	var cs []store.Contact
	if err := n.db.View(func(tx *store.Tx) error {
		var err error
		cs, err = tx.Contacts()
		return err
	}); err != nil {
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
func (n *Node) AddContact(ctx context.Context, name, petname string) (api.Contact, error) {
	res, err := n.resolve(ctx, name)
	if err != nil {
		return api.Contact{}, err
	}
	return n.addResolved(ctx, name, res, petname)
}

// addResolved adds the owner of res, what name resolved to, as a contact.
func (n *Node) addResolved(ctx context.Context, name string, res *dht.Resolution, petname string) (api.Contact, error) {
	switch res.Status {
	case dht.StatusOK:
	case dht.StatusConflict:
		return api.Contact{}, api.Errorf(api.CodeConflict, "ask them for their self-certifying handle (name~suffix) and add that",
			"the closest peers disagree about who holds @%s; not adding it", res.Name)
	default:
		return api.Contact{}, api.Errorf(api.CodeNotFound, "check the spelling, or ask them for their self-certifying handle",
			"nobody holds %s (%s)", name, strings.ReplaceAll(string(res.Status), "_", " "))
	}
	// The handle the contact is known by: the one looked up, else (for an
	// account id) one its record claims and that checks out.
	handle := res.Name
	if handle == "" && res.Identity != nil {
		handle = n.verifiedHandle(ctx, res.Owner, res.Identity.Handles)
	}
	if petname == "" {
		petname = handle
	}
	if petname == "" {
		petname = res.Owner.ID().String()
	}
	if err := checkPetname(petname); err != nil {
		return api.Contact{}, err
	}
	now := time.Now().UTC()
	c := store.Contact{Account: res.Owner.ID().String(), PubKey: res.Owner.Bytes(), Petname: petname, Handle: handle,
		AddedAt: now, PinnedAt: now}
	err := n.db.Update(func(tx *store.Tx) error {
		if old, err := tx.Contact(c.Account); err == nil {
			c.AddedAt, c.Verified, c.Following, c.Blocked, c.Accepted = old.AddedAt, old.Verified, old.Following, old.Blocked, old.Accepted
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if other, err := tx.ContactByPetname(petname); err == nil && other.Account != c.Account {
			return api.Errorf(api.CodeConflict, "pick another with --as PETNAME", "petname %q is already used for %s", petname, other.Account)
		}
		return tx.PutContact(c)
	})
	if err != nil {
		return api.Contact{}, err
	}
	return contactToAPI(c), nil
}

func checkPetname(p string) error {
	if !utf8.ValidString(p) || utf8.RuneCountInString(p) > 64 || strings.TrimSpace(p) != p || p == "" {
		return api.Errorf(api.CodeBadRequest, "use 1 to 64 characters without leading or trailing spaces", "invalid petname %q", p)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return api.Errorf(api.CodeBadRequest, "", "invalid petname %q: control characters", p)
		}
	}
	return nil
}

// RemoveContact implements api.Backend; name is a petname, a handle or an
// account id.
func (n *Node) RemoveContact(ctx context.Context, name string) error {
	return n.db.Update(func(tx *store.Tx) error {
		c, err := findContact(tx, name)
		if err != nil {
			return err
		}
		return tx.DeleteContact(c.Account)
	})
}

// findContact looks a contact up by petname, account id or handle.
func findContact(tx *store.Tx, name string) (store.Contact, error) {
	if c, err := tx.ContactByPetname(name); err == nil {
		return c, nil
	}
	if c, err := tx.Contact(name); err == nil {
		return c, nil
	}
	norm, _ := identity.NormalizeHandle(name)
	cs, err := tx.Contacts()
	if err != nil {
		return store.Contact{}, err
	}
	for _, c := range cs {
		if c.Handle == name || (norm != "" && c.Handle == norm) {
			return c, nil
		}
	}
	return store.Contact{}, api.Errorf(api.CodeNotFound, "`callsign contacts list` shows your contacts", "no contact %q", name)
}
