package node

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/store"
)

// The web app's "Link to an existing account": a node whose own account
// was never used runs the new device's side of a link (docs/DEVICES.md §1)
// over its own host, while the page shows the numbers and takes the
// person's answer. What it receives is kept in memory; once the link is
// done, Run closes the node, writes the account into the data directory
// in one transaction (keeping this device's keys, which the other device
// certified), and starts it again as a device of that account, on the
// same API address, as a restore does.

// maxJoinHistory caps the conversations a joining node keeps in memory
// until it writes them (the CLI writes each chunk as it comes).
const maxJoinHistory = 256 << 20

// joinRun is the link the web app started on this node.
type joinRun struct {
	mu      sync.Mutex
	state   string
	sas     string
	reason  string
	account identity.AccountID
	answer  chan bool // the person's answer to the digits; buffered, sent once
	replied bool
	cancel  context.CancelFunc
}

func (j *joinRun) status() api.LinkStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := api.LinkStatus{State: j.state, Reason: j.reason, Account: string(j.account)}
	if j.state == api.LinkSAS {
		st.SAS = j.sas
	}
	return st
}

func (j *joinRun) set(state string) {
	j.mu.Lock()
	j.state = state
	j.mu.Unlock()
}

// joined is what Run writes after a link from the web app.
type joined struct {
	plan    *linkedPlan
	history [][]byte
	keys    store.Secrets // this device's keys, as the link used them
}

// JoinAccount starts the new device's side of a link on this node, whose
// account must never have been used (nothing of it is lost): see above.
func (n *Node) JoinAccount(ctx context.Context, req api.JoinRequest) (api.LinkStatus, error) {
	name := req.Name
	if name == "" {
		name = defaultDeviceName()
	}
	if len(name) > devices.MaxDeviceName {
		return api.LinkStatus{}, api.Errorf(api.CodeBadRequest, fmt.Sprintf("use at most %d bytes", devices.MaxDeviceName), "device name of %d bytes", len(name))
	}
	if _, err := devices.ParseLinkCode(req.Code, time.Now()); err != nil {
		return api.LinkStatus{}, withHint(err, "copy the whole code your other device shows, within 10 minutes")
	}
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	if n.restoreSent {
		return api.LinkStatus{}, fmt.Errorf("%w: the node is restarting with another account", store.ErrClosed)
	}
	if n.restoreCh == nil {
		return api.LinkStatus{}, withHint(fmt.Errorf("this node was not started by `callsign up`, so it cannot start again as a linked device: %w", errors.ErrUnsupported),
			"link from the command line: callsign up --link CODE")
	}
	var use string
	if err := n.db.View(func(tx *store.Tx) (err error) { use, err = tx.AccountUse(); return err }); err != nil {
		return api.LinkStatus{}, err
	}
	if use != "" {
		return api.LinkStatus{}, fmt.Errorf("%w: it holds %s", store.ErrAccountInUse, use)
	}
	if j := n.joinAcct; j != nil {
		if st := j.status(); st.State != api.LinkFailed {
			return api.LinkStatus{}, api.Errorf(api.CodeConflict, "wait for it, or cancel it", "a link is under way (%s)", st.State)
		}
	}
	keys, err := n.db.Secrets()
	if err != nil {
		return api.LinkStatus{}, err
	}
	rctx, cancel := context.WithTimeout(n.ctx, linkTimeout)
	j := &joinRun{state: api.LinkConnecting, answer: make(chan bool, 1), cancel: cancel}
	n.joinAcct = j
	n.wg.Go(func() {
		defer cancel()
		n.runJoin(rctx, j, req.Code, name, store.Secrets{DeviceKey: keys.DeviceKey, X25519: keys.X25519})
	})
	return j.status(), nil
}

// runJoin runs the link JoinAccount started and hands what it received to
// Run.
func (n *Node) runJoin(ctx context.Context, j *joinRun, code, name string, keys store.Secrets) {
	var out joined
	out.keys = keys
	size := 0
	err := devices.Join(ctx, n.host, code, devices.JoinConfig{
		LinkConfig: devices.LinkConfig{Timeout: linkTimeout, Logger: n.log.With("component", "link")},
		ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
			j.mu.Lock()
			j.state, j.sas = api.LinkSAS, sas
			j.mu.Unlock()
			select {
			case ok := <-j.answer:
				if ok {
					j.set(api.LinkHandover)
				}
				return ok, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
		},
		Linked: func(_ context.Context, b []byte) ([]byte, error) {
			p, err := prepareLinked(n.host.ID(), n.keys.x25519, name, b)
			if err != nil {
				return nil, err
			}
			out.plan = p
			// This node's own account stops taking messages: what the
			// account's devices send the new one now waits in their
			// outboxes until it runs as that device.
			n.msg.Close()
			return p.payload, nil
		},
		History: func(_ context.Context, chunk []byte) error {
			if size += len(chunk); size > maxJoinHistory {
				return fmt.Errorf("more than %d MiB of conversations: link from the command line (callsign up --link), which stores them as they come", maxJoinHistory>>20)
			}
			out.history = append(out.history, bytes.Clone(chunk))
			return nil
		},
	})
	if err != nil && out.plan == nil {
		j.mu.Lock()
		j.state, j.reason = api.LinkFailed, explainLink(linkError(err))
		j.mu.Unlock()
		n.log.Info("linking this node to another device's account failed", "err", err)
		return
	}
	if err != nil {
		// The account came: the other device may not have taken this one
		// in, but this device publishes itself once it runs (as the CLI).
		n.log.Warn("the link did not finish after the account was received", "err", err)
	}
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	j.mu.Lock()
	j.state, j.account = api.LinkLinked, out.plan.ak.Public().ID()
	j.mu.Unlock()
	if n.restoreSent || ctx.Err() != nil && n.ctx.Err() != nil {
		return
	}
	n.restoreSent = true
	n.restoreCh <- restoreRequest{join: &out} // buffered, sent once
}

// explainLink is a link error and its hint in one line, for the page.
func explainLink(err error) string {
	if e, ok := errors.AsType[*Error](err); ok && e.Hint() != "" {
		return err.Error() + ": " + e.Hint()
	}
	return err.Error()
}

// JoinStatus is the state of the link JoinAccount started.
func (n *Node) JoinStatus(context.Context) (api.LinkStatus, error) {
	n.restoreMu.Lock()
	j := n.joinAcct
	n.restoreMu.Unlock()
	if j == nil {
		return api.LinkStatus{State: api.LinkNone}, nil
	}
	return j.status(), nil
}

// ConfirmJoin takes the person's answer to the digits both devices show.
func (n *Node) ConfirmJoin(_ context.Context, match bool) (api.LinkStatus, error) {
	n.restoreMu.Lock()
	j := n.joinAcct
	n.restoreMu.Unlock()
	if j == nil {
		return api.LinkStatus{}, api.Errorf(api.CodeConflict, "start a link first", "no link is under way")
	}
	j.mu.Lock()
	if j.state != api.LinkSAS || j.replied {
		state := j.state
		j.mu.Unlock()
		return api.LinkStatus{}, api.Errorf(api.CodeConflict, "", "the link is %s, not waiting for the numbers", state)
	}
	j.replied = true
	j.mu.Unlock()
	j.answer <- match
	if !match {
		j.mu.Lock()
		j.state, j.reason = api.LinkFailed, "you said the numbers differ: nothing was linked"
		j.mu.Unlock()
	}
	return j.status(), nil
}

// CancelJoin stops the link JoinAccount started, unless the account has
// come already.
func (n *Node) CancelJoin(context.Context) (api.LinkStatus, error) {
	n.restoreMu.Lock()
	j := n.joinAcct
	n.restoreMu.Unlock()
	if j == nil {
		return api.LinkStatus{State: api.LinkNone}, nil
	}
	j.mu.Lock()
	if j.state == api.LinkLinked {
		j.mu.Unlock()
		return api.LinkStatus{}, api.Errorf(api.CodeConflict, "", "the link is done: the node is starting again as a device of the account")
	}
	j.state, j.reason = api.LinkFailed, "cancelled"
	j.mu.Unlock()
	j.cancel()
	return j.status(), nil
}

// writeJoined writes a link the web app made into the data directory of
// cfg, whose node is closed: this device's keys as the link used them
// (the node's own account, never used, gives way), the account in one
// transaction, then the conversations.
func writeJoined(ctx context.Context, cfg Config, j *joined) error {
	n, db, err := openOffline(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	defer db.Close()
	dh, err := ecdh.X25519().NewPrivateKey(j.keys.X25519)
	if err != nil {
		return fmt.Errorf("x25519 key: %w", err)
	}
	self := identity.DeviceIDOf(dh.PublicKey().Bytes())
	err = db.Update(func(tx *store.Tx) error {
		s, err := tx.Secrets()
		if err != nil {
			return err
		}
		if !bytes.Equal(s.DeviceKey, j.keys.DeviceKey) || !bytes.Equal(s.X25519, j.keys.X25519) {
			return errors.New("the data directory's device keys changed during the link")
		}
		if err := tx.DiscardUnusedAccount(); err != nil {
			return err
		}
		if err := tx.PutSecrets(j.keys); err != nil {
			return err
		}
		return writeLinked(tx, self, j.plan)
	})
	if err != nil {
		return err
	}
	var groups linkGroups
	for _, c := range j.history {
		if err := storeLinkHistory(db, c, &groups); err != nil {
			n.log.Warn("storing conversations the link brought", "err", err)
			break
		}
	}
	if err := groups.finish(db, j.plan.ak.Public()); err != nil {
		n.log.Warn("the groups the link brought were dropped; the other devices send them again", "err", err)
	}
	return nil
}
