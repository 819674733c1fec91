package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/callsign/callsign/msg"
	"github.com/callsign/callsign/store"
)

// StoreDamage is one damaged item a store check found (store.Damage).
type StoreDamage = store.Damage

// StoreStats summarises a store check (store.VerifyStats).
type StoreStats = store.VerifyStats

// storeChecks decode and cross-check, for a store check, the values of
// the keyspaces other packages own: messaging's (msg.Check).
var storeChecks = map[string]store.Check{store.SpaceMsg: msg.Check}

// VerifyStore checks the store of a stopped node: every table block and
// every entry, authenticated, decoded and cross-checked (store.Verify). It
// holds the data directory's lock meanwhile, so it fails with
// ErrAlreadyRunning while a node runs with dataDir. passphrase is the
// store's passphrase (nil: the key file), as for Config.Passphrase. report
// is called for each damaged item; damage is not an error.
func VerifyStore(ctx context.Context, dataDir string, passphrase []byte, report func(StoreDamage)) (StoreStats, error) {
	n, err := New(Config{DataDir: dataDir})
	if err != nil {
		return StoreStats{}, err
	}
	defer n.Close()
	if _, err := os.Stat(n.cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return StoreStats{}, withHint(fmt.Errorf("no data directory %s", n.cfg.DataDir), "pass the node's data directory with --data")
	}
	if err := n.takeLock(); err != nil {
		return StoreStats{}, err
	}
	opts := store.Options{Dir: n.cfg.DataDir, Passphrase: passphrase, Checks: storeChecks}
	st, err := store.Verify(ctx, opts, report)
	if err != nil {
		return st, storeError(err)
	}
	return st, nil
}
