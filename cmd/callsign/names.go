package main

import (
	"context"
	"strings"
	"time"

	"github.com/callsign/callsign/api"
)

// missTTL is how long an account that is not in the contacts stays known
// as such: a stranger's stream of events costs one GET /api/v1/contacts
// per missTTL, not one per event.
const missTTL = 10 * time.Second

// petnames maps account ids to the names the user gave them. It reads the
// contacts once, at the first lookup, and again when an account is
// missing (a contact added since). Not safe for concurrent use.
type petnames struct {
	c        *api.Client
	loaded   bool
	contacts []api.Contact
	names    map[string]string    // account id -> petname
	missed   map[string]time.Time // account id -> when a refresh did not find it
	now      func() time.Time     // time.Now; tests set it
}

func newPetnames(c *api.Client) *petnames {
	return &petnames{c: c, missed: map[string]time.Time{}, now: time.Now}
}

func (p *petnames) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs, err := p.c.Contacts(ctx)
	if err != nil {
		return err
	}
	p.loaded, p.contacts = true, cs
	p.names = make(map[string]string, len(cs))
	for _, c := range cs {
		if c.Petname != "" {
			p.names[c.Account] = c.Petname
		}
	}
	return nil
}

// name returns the petname of account, or known if it has none (known is
// a name the node gave, such as api.Message.PeerName), or else the
// account id itself.
func (p *petnames) name(ctx context.Context, account, known string) string {
	if known != "" {
		return known
	}
	if account == "" {
		return ""
	}
	if n, ok := p.lookup(ctx, account); ok {
		return n
	}
	return account
}

func (p *petnames) lookup(ctx context.Context, account string) (string, bool) {
	if !p.loaded {
		if p.load(ctx) != nil {
			return "", false
		}
	}
	if n, ok := p.names[account]; ok {
		return n, true
	}
	if t, ok := p.missed[account]; ok && p.now().Sub(t) < missTTL {
		return "", false
	}
	if p.load(ctx) != nil {
		return "", false
	}
	if n, ok := p.names[account]; ok {
		return n, true
	}
	p.missed[account] = p.now()
	return "", false
}

// account returns the account id a contact's petname, handle or account
// id names, from the contacts.
func (p *petnames) account(ctx context.Context, name string) (string, bool) {
	if !p.loaded && p.load(ctx) != nil {
		return "", false
	}
	bare := strings.TrimPrefix(name, "@")
	for _, c := range p.contacts {
		if c.Account == name || strings.EqualFold(c.Petname, bare) ||
			(c.Handle != "" && strings.EqualFold(strings.TrimPrefix(c.Handle, "@"), bare)) {
			return c.Account, true
		}
	}
	return "", false
}
