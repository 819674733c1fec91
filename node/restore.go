package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/store"
)

// restoreRequest is a backup Restore checked, for Run to restore.
type restoreRequest struct {
	bk    *devices.Backup // opened, authenticated and restored into memory (inspect)
	items int
	join  *joined // or: a link the web app made (linkweb.go)
}

// Run starts a node on cfg, calls ready with it once it runs, and keeps it
// running until ctx ends; then it closes the node and returns. When the
// web app restores a backup onto the node's never-used account (Restore),
// Run closes the node, restores the backup into its data directory (as
// `callsign up --restore` would) and starts the node again on the same API
// address, calling ready again: the web app's token stays valid, so the
// page carries on with the restored account.
func Run(ctx context.Context, cfg Config, ready func(*Node)) error {
	for {
		if ctx.Err() != nil {
			return nil // stopped while restoring
		}
		n, err := New(cfg)
		if err != nil {
			return err
		}
		n.restoreCh = make(chan restoreRequest, 1)
		if err := n.Start(ctx); err != nil {
			return err
		}
		ready(n)
		var req restoreRequest
		select {
		case <-ctx.Done():
			return n.Close()
		case req = <-n.restoreCh:
		}
		cfg.APIAddr = n.APIAddr()
		if err := n.Close(); err != nil {
			n.log.Warn("closing the node to restore a backup", "err", err)
		}
		if req.join != nil {
			if err := writeJoined(ctx, cfg, req.join); err != nil {
				n.log.Error("storing the account the link brought failed; starting again with the node's own account", "err", err)
				continue
			}
			n.log.Info("linked as a new device of an account", "account", req.join.plan.ak.Public().ID())
			continue
		}
		r, err := restoreChecked(ctx, cfg.DataDir, cfg.Passphrase, req.bk, req.items)
		if err != nil {
			// Restore checked the same before answering; what changed
			// meanwhile (a message to the old account) keeps it.
			n.log.Error("restoring the backup failed; starting again with the node's own account", "err", err)
			continue
		}
		n.log.Info("restored the account from a backup, as a new device of it", "account", r.Account, "items", r.Items)
	}
}

// Restore checks a backup the web app sent: that this node's account was
// never used (store.Tx.AccountUse), that it opens with passphrase and is
// whole, and what it holds (a restore into memory, as `callsign backup
// verify`). It then hands it to Run, which restarts the node with the
// backup's account, and answers with that account at once.
func (n *Node) Restore(ctx context.Context, backup []byte, passphrase string) (api.Restoring, error) {
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	if n.restoreSent {
		return api.Restoring{}, fmt.Errorf("%w: the node is restarting with a restored account", store.ErrClosed)
	}
	var use string
	if err := n.db.View(func(tx *store.Tx) (err error) { use, err = tx.AccountUse(); return err }); err != nil {
		return api.Restoring{}, err
	}
	if use != "" {
		return api.Restoring{}, fmt.Errorf("%w: it holds %s", store.ErrAccountInUse, use)
	}
	if n.restoreCh == nil {
		return api.Restoring{}, fmt.Errorf("this node was not started by `callsign up`, so it cannot start again with a restored account: %w", errors.ErrUnsupported)
	}
	bk, items, err := openBackup(bytes.NewReader(backup), int64(len(backup)), []byte(passphrase))
	if err != nil {
		return api.Restoring{}, err
	}
	c, err := inspect(ctx, bk, items)
	if err != nil {
		return api.Restoring{}, err
	}
	n.restoreSent = true
	n.restoreCh <- restoreRequest{bk: bk, items: items} // buffered, sent once
	return api.Restoring{Account: c.Account.String(), Handles: c.Handles, Contacts: c.Contacts, Groups: c.Groups}, nil
}
