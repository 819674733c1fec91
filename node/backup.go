package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callsign/callsign/devices"
	"github.com/callsign/callsign/groupchat"
	"github.com/callsign/callsign/identity"
	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// Restored is what RestoreBackup brought back.
type Restored struct {
	Account identity.AccountID
	Items   int // the backup's items, the account key included
}

// RestoreBackup brings the account in the backup file back into dataDir as
// a new device of it (docs/DEVICES.md §5): the account key, its handles,
// contacts, call settings and community nodes; the node started on dataDir
// afterwards makes new device keys, certifies them with the account key
// and publishes them, so contacts reach it and see no key change. The
// file is read, authenticated and restored into memory first, so a
// damaged file, a wrong passphrase or an item no node would have stored
// leaves nothing behind; then it is written (importBackup). dataDir may
// be new, hold a store without an account, or one whose account was never
// used (store.Tx.DiscardUnusedAccount); storePass is its store's
// passphrase, as for Config.Passphrase. It holds the data directory's
// lock meanwhile.
func RestoreBackup(ctx context.Context, dataDir string, storePass []byte, file string, backupPass []byte) (Restored, error) {
	f, size, err := openFile(file)
	if err != nil {
		return Restored{}, err
	}
	defer f.Close()
	return restoreBackup(ctx, dataDir, storePass, f, size, backupPass)
}

// restoreBackup is RestoreBackup of the size bytes of r.
func restoreBackup(ctx context.Context, dataDir string, storePass []byte, r io.ReaderAt, size int64, backupPass []byte) (Restored, error) {
	bk, items, err := openBackup(r, size, backupPass)
	if err != nil {
		return Restored{}, err
	}
	// Every item is checked before the data directory is touched: a
	// restore into memory first (as `backup verify`), since the real one
	// writes the history in several transactions.
	if _, err := inspect(ctx, bk, items); err != nil {
		return Restored{}, err
	}
	return restoreChecked(ctx, dataDir, storePass, bk, items)
}

// restoreChecked is restoreBackup of bk, opened, authenticated and
// restored into memory already (inspect).
func restoreChecked(ctx context.Context, dataDir string, storePass []byte, bk *devices.Backup, items int) (Restored, error) {
	n, db, err := openOffline(ctx, Config{DataDir: dataDir, Passphrase: storePass})
	if err != nil {
		return Restored{}, err
	}
	defer n.Close()
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		sec, err := tx.Secrets()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if sec.AccountSeed == nil {
			return tx.BeginRestore()
		}
		// The account a first start made, never used, gives way.
		if err := tx.DiscardUnusedAccount(); err != nil {
			ak, kerr := identity.AccountKeyFromSeed(sec.AccountSeed)
			if kerr != nil {
				return kerr
			}
			return withHint(fmt.Errorf("the data directory %s already holds an account (%s) in use: %w", n.cfg.DataDir, ak.Public().ID(), err),
				"restore into a new directory with --data DIR; if this one was restored already, start it without --restore")
		}
		return tx.BeginRestore()
	})
	if err != nil {
		return Restored{}, backupError(err)
	}
	seed, err := importBackup(db, bk)
	if err != nil {
		return Restored{}, backupError(err)
	}
	ak, err := identity.AccountKeyFromSeed(seed)
	if err != nil {
		return Restored{}, backupError(fmt.Errorf("%w: no account key in it", devices.ErrBackupDamaged))
	}
	return Restored{Account: ak.Public().ID(), Items: items}, nil
}

// openOffline opens cfg.DataDir's store, creating the directory, for work
// done without the network (a restore, the new device's side of a link):
// the returned node only holds the directory's lock until it is closed,
// after db.
func openOffline(ctx context.Context, cfg Config) (*Node, *store.DB, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*Node, *store.DB, error) {
		n.Close()
		return nil, nil, err
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fail(withHint(fmt.Errorf("create data directory: %w", err), "pick a directory you can write to with --data"))
	}
	if err := n.takeLock(); err != nil {
		return fail(err)
	}
	if err := checkDataDir(n.cfg.DataDir, n.log); err != nil {
		return fail(err)
	}
	db, err := store.Open(ctx, store.Options{Dir: n.cfg.DataDir, Passphrase: n.cfg.Passphrase, Checks: storeChecks})
	if err != nil {
		return fail(storeError(err))
	}
	return n, db, nil
}

// checkRestored refuses a store a restore began writing and did not
// finish: a node started on it would make a new account beside a part of
// the backup.
func checkRestored(db *store.DB) error {
	return db.View(func(tx *store.Tx) error {
		r, err := tx.Restoring()
		if err != nil || !r {
			return err
		}
		return withHint(store.ErrRestoreInterrupted, "run `callsign up --restore FILE` again with the same backup and this --data: it completes the restore")
	})
}

// openFile opens the backup file and returns it with its size.
func openFile(file string) (*os.File, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, withHint(fmt.Errorf("backup: %w", err), "give the file `callsign backup create` wrote")
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("backup %s: %w", file, err)
	}
	return f, fi.Size(), nil
}

// openBackup opens the backup in the size bytes of r with passphrase and
// authenticates all of it (Verify); it returns the backup and its item
// count.
func openBackup(r io.ReaderAt, size int64, passphrase []byte) (*devices.Backup, int, error) {
	bk, err := devices.OpenBackup(r, size, passphrase)
	var items int
	if err == nil {
		items, err = bk.Verify()
	}
	if err != nil {
		return nil, 0, backupError(err)
	}
	return bk, items, nil
}

// historyBatch is how many history items one transaction of a restore
// writes.
const historyBatch = 512

// importBackup writes every item of bk into db and returns the account
// seed among them: the history (msg.ImportHistory) and the groups' logs
// and messages (groupchat.ImportBackup) first, in transactions of
// historyBatch items, then the account, the groups' records (each group
// checked whole: groupchat.FinishImport) and everything else in one
// transaction, which also ends the mark of a restore under way
// (store.Tx.BeginRestore, set by the caller). An interrupted restore thus
// leaves no account behind, a node refuses to start on it, and run again
// it completes, adding no message twice.
func importBackup(db *store.DB, bk *devices.Backup) (seed []byte, err error) {
	type item struct {
		kind byte
		body []byte
	}
	var batch []item
	flush := func() error {
		err := db.Update(func(tx *store.Tx) error {
			for _, it := range batch {
				var err error
				if groupchat.IsBackupKind(it.kind) {
					err = groupchat.ImportBackup(tx, it.kind, it.body)
				} else {
					err = msg.ImportHistory(tx, it.kind, it.body)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	err = bk.Each(func(kind byte, body []byte) error {
		if !batched(kind) {
			return nil
		}
		batch = append(batch, item{kind, append([]byte(nil), body...)})
		if len(batch) < historyBatch {
			return nil
		}
		return flush()
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *store.Tx) error {
		err := bk.Each(func(kind byte, body []byte) error {
			if batched(kind) {
				return nil
			}
			if kind == store.PortableAccountSeed {
				seed = append([]byte(nil), body...)
			}
			if groupchat.IsBackupKind(kind) {
				return groupchat.ImportBackup(tx, kind, body)
			}
			return tx.ImportPortable(kind, body)
		})
		if err != nil {
			return err
		}
		ak, err := identity.AccountKeyFromSeed(seed)
		if err != nil {
			return fmt.Errorf("%w: no account key in it", devices.ErrBackupDamaged)
		}
		if err := groupchat.FinishImport(tx, ak.Public()); err != nil {
			return err
		}
		// The restored device takes the place of the devices the account
		// had: the backup's owner lost them, or is moving.
		if err := tx.SetReplaceDevices(true); err != nil {
			return err
		}
		return tx.EndRestore()
	})
	return seed, err
}

// batched reports whether a restore writes items of kind in batches
// before the rest: there may be many.
func batched(kind byte) bool {
	return kind == store.PortableConversation || kind == store.PortableMessage ||
		kind == store.PortableGroupOp || kind == store.PortableGroupMessage
}

// BackupContents is what a backup file holds, as `callsign backup verify`
// shows it.
type BackupContents struct {
	Created        time.Time          `json:"created"`
	Account        identity.AccountID `json:"account"`
	Handles        []string           `json:"handles"`
	Contacts       int                `json:"contacts"`
	CallSettings   bool               `json:"call_settings"`
	CommunityNodes int                `json:"community_nodes"`
	Groups         int                `json:"groups"`        // joined, or invited to
	Conversations  int                `json:"conversations"` // with messages only
	Messages       int                `json:"messages"`
	GroupMessages  int                `json:"group_messages"` // with messages only
	Items          int                `json:"items"`
}

// InspectBackup checks that the backup in file opens with passphrase and
// is whole, and restores it into a store in memory to read what it holds:
// every check a restore makes, with nothing written anywhere.
func InspectBackup(ctx context.Context, file string, passphrase []byte) (BackupContents, error) {
	f, size, err := openFile(file)
	if err != nil {
		return BackupContents{}, err
	}
	defer f.Close()
	bk, items, err := openBackup(f, size, passphrase)
	if err != nil {
		return BackupContents{}, err
	}
	return inspect(ctx, bk, items)
}

// inspect restores bk, opened and authenticated, into a store in memory
// and reads what it holds.
func inspect(ctx context.Context, bk *devices.Backup, items int) (BackupContents, error) {
	db, err := store.Open(ctx, store.Options{InMemory: true})
	if err != nil {
		return BackupContents{}, err
	}
	defer db.Close()
	c := BackupContents{Created: bk.Created(), Items: items, Handles: []string{}}
	seed, err := importBackup(db, bk)
	if err != nil {
		return BackupContents{}, backupError(err)
	}
	err = bk.Each(func(kind byte, _ []byte) error {
		switch kind {
		case store.PortableConversation:
			c.Conversations++
		case store.PortableMessage:
			c.Messages++
		case store.PortableGroupMessage:
			c.GroupMessages++
		case store.PortableGroup:
			c.Groups++
		}
		return nil
	})
	if err != nil {
		return BackupContents{}, backupError(err)
	}
	err = db.View(func(tx *store.Tx) error {
		ak, err := identity.AccountKeyFromSeed(seed)
		if err != nil {
			return fmt.Errorf("%w: no account key in it", devices.ErrBackupDamaged)
		}
		c.Account = ak.Public().ID()
		claims, err := tx.Claims()
		if err != nil {
			return err
		}
		for _, cl := range claims {
			c.Handles = append(c.Handles, cl.Name)
		}
		contacts, err := tx.Contacts()
		if err != nil {
			return err
		}
		c.Contacts = len(contacts)
		_, err = tx.CallSettings()
		c.CallSettings = err == nil
		boots, err := tx.Bootstraps()
		c.CommunityNodes = len(boots)
		return err
	})
	if err != nil {
		return BackupContents{}, backupError(err)
	}
	return c, nil
}

// backupError gives a backup's errors their hints.
func backupError(err error) error {
	var he *Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, devices.ErrWrongPassphrase):
		return withHint(err, "the passphrase is the one given when the backup was made; $CALLSIGN_BACKUP_PASSPHRASE may hold another")
	case errors.Is(err, devices.ErrBackupNewer), errors.Is(err, store.ErrPortableKind):
		return withHint(err, "restore it with a newer callsign")
	case errors.Is(err, devices.ErrBackupDamaged), errors.Is(err, devices.ErrBackupTruncated), errors.Is(err, store.ErrInvalid):
		return withHint(fmt.Errorf("%w; nothing was restored", err), "use another copy of the backup")
	}
	return err
}
