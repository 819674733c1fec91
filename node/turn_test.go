package node_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/callsign/callsign/call"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/internal/testnet"
	"github.com/callsign/callsign/p2p"
	"github.com/callsign/callsign/p2p/p2ptest"
)

// turnRequest is a credential request naming account (the call package
// doc has the format).
func turnRequest(account identity.AccountID) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), string(account))
}

// TestTURNForMembersOnly: a public node's TURN relay gives credentials to
// a node that joined through it, at its first request, and to nobody who
// merely connects: neither a peer naming an account of its own nor one
// naming the member's account.
func TestTURNForMembersOnly(t *testing.T) {
	net := testnet.New(t, 2, testnet.Options{})
	hub, member := net.Nodes[0], net.Nodes[1]
	ctx := ctxT(t, time.Minute)

	stranger := p2ptest.NewHost(t, nil)
	p2ptest.Connect(t, stranger, hub.Host())
	own, err := identity.GenerateAccountKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for what, account := range map[string]identity.AccountID{
		"its own account":      own.Public().ID(),
		"the member's account": member.Account(),
	} {
		resp, err := p2p.Request(ctx, stranger, hub.Host().ID(), call.ProtocolTURN, false, turnRequest(account), 2048)
		if code, ok := p2p.CodeOf(err); !ok || code != p2p.CodeBadRequest || len(resp) != 0 {
			t.Errorf("a stranger naming %s: %d bytes, %v; want bad-request and nothing", what, len(resp), err)
		}
	}

	start := time.Now()
	resp, err := p2p.Request(ctx, member.Host(), hub.Host().ID(), call.ProtocolTURN, false, turnRequest(member.Account()), 2048)
	if err != nil {
		t.Fatalf("the member: %v", err)
	}
	// Calls ask with a 3 s budget; a member's first request must fit.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the member's first request took %v", d)
	}
	if !strings.Contains(string(resp), ":"+member.Host().ID().String()) {
		t.Errorf("credentials not issued to the member's peer: %q", resp)
	}
}
