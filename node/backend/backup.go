package backend

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// backups lets one backup be made at a time: each runs Argon2id over
// DefaultBackupParams' 256 MiB.
var backups sync.Mutex

// Backup implements api.Backend: the account's portable items
// (store.ExportPortable: the account key, handles, contacts, call
// settings, community nodes) and the groups it is in
// (groupchat.ExportBackup) sealed in a backup file (devices.BackupWriter)
// under the request's passphrase; with req.Messages every conversation
// and message too (msg.ExportHistory), the groups' included. Never a
// device key: a restore is a new device of the account (docs/DEVICES.md
// §5).
func (s *Service) Backup(ctx context.Context, req api.BackupRequest) (_ *api.Download, err error) {
	defer mapError(&err)
	if n := utf8.RuneCountInString(req.Passphrase); n < api.MinBackupPassphrase {
		return nil, api.Errorf(api.CodeBadRequest, "four or more words no one could guess make a good one; keep it apart from the file",
			"a backup passphrase needs at least %d characters (this one has %d)", api.MinBackupPassphrase, n)
	}
	if !backups.TryLock() {
		return nil, api.Errorf(api.CodeUnavailable, "try again in a few seconds", "another backup is being made")
	}
	defer backups.Unlock()
	// Argon2id first, outside any transaction; then the items go straight
	// from one read transaction into the sealed chunks.
	var buf bytes.Buffer
	now := time.Now()
	bw, err := devices.NewBackupWriter(&buf, []byte(req.Passphrase), s.backupParams, now)
	if err != nil {
		return nil, err
	}
	err = s.db.View(func(tx *store.Tx) error {
		if err := tx.ExportPortable(bw.Add); err != nil {
			return err
		}
		if err := groupchat.ExportBackup(tx, req.Messages, bw.Add); err != nil {
			return err
		}
		if req.Messages {
			return msg.ExportHistory(tx, bw.Add)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := bw.Close(); err != nil {
		return nil, err
	}
	return &api.Download{Name: "callsign-" + now.Format("2006-01-02") + ".backup", Data: buf.Bytes()}, nil
}

// Restore implements api.Backend: a backup file from the web app's first
// run, restored onto this node in place of the account its first start
// made, if that one was never used (node.Restore, store.Tx.AccountUse).
func (s *Service) Restore(ctx context.Context, req api.RestoreRequest) (_ api.Restoring, err error) {
	defer mapError(&err)
	if len(req.Backup) == 0 {
		return api.Restoring{}, api.Errorf(api.CodeBadRequest, "choose the file `callsign backup create` or Settings → Back up your account saved", "no backup file")
	}
	if req.Passphrase == "" {
		return api.Restoring{}, api.Errorf(api.CodeBadRequest, "", "no passphrase: give the one the backup was made with")
	}
	r, err := s.node.Restore(ctx, req.Backup, req.Passphrase)
	if errors.Is(err, errors.ErrUnsupported) {
		return r, api.Errorf(api.CodeUnavailable, "stop the node and run `callsign up --restore FILE --data NEWDIR`", "%s", err.Error())
	}
	return r, err
}
