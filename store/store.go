package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Encryption modes reported by DB.Encryption.
const (
	EncryptionPassphrase = "passphrase" // key derived from a passphrase with Argon2id
	EncryptionKeyFile    = "keyfile"    // key read from Dir/store.key
	EncryptionMemory     = "memory"     // InMemory store: random key, nothing on disk
)

// Errors returned by Open and the accessors.
var (
	// ErrWrongPassphrase means the passphrase does not open this store.
	ErrWrongPassphrase = errors.New("wrong passphrase for the store")
	// ErrNeedPassphrase means the store is protected by a passphrase and none was given.
	ErrNeedPassphrase = errors.New("the store is protected by a passphrase; none was given")
	// ErrHasKeyFile means a passphrase was given but the store uses a key file.
	ErrHasKeyFile = errors.New("a passphrase was given but the store uses a key file (store.key), not a passphrase")
	// ErrKeyFileMode means store.key is readable by group or others.
	ErrKeyFileMode = errors.New("store key file is readable by other users")
	// ErrKeyMissing means the database exists but its key material does not.
	ErrKeyMissing = errors.New("store key material is missing")
	// ErrKeyMismatch means badger rejected the key (the key file belongs to another store).
	ErrKeyMismatch = errors.New("the store key does not match the database")
	// ErrSchemaTooNew means the database was written by a newer callsign.
	ErrSchemaTooNew = errors.New("the store was written by a newer version of callsign")
	// ErrInUse means another process has the database open.
	ErrInUse = errors.New("the store is in use by another process")
	// ErrClosed is returned by operations on a closed DB.
	ErrClosed = errors.New("store is closed")
	// ErrNotFound is returned by getters when nothing is stored under the key.
	ErrNotFound = errors.New("not found")
	// ErrTxnTooBig means one transaction tried to write more than badger can commit at once.
	ErrTxnTooBig = errors.New("transaction too big for the store")
	// ErrPetnameTaken means another contact already uses the petname.
	ErrPetnameTaken = errors.New("petname is already used by another contact")
	// ErrInvalid is wrapped by errors about malformed arguments (empty ids, NUL bytes).
	ErrInvalid = errors.New("invalid argument")
)

// GCInterval is how often the DB runs badger's value-log GC.
const GCInterval = 10 * time.Minute

// gcDiscardRatio: rewrite a value log file when at least half of it is garbage.
const gcDiscardRatio = 0.5

// Options configure Open.
type Options struct {
	// Dir is the data directory; the database lives in Dir/store and the key
	// material in Dir/store.key or Dir/store.salt. Required unless InMemory.
	// Created with mode 0700 if missing.
	Dir string
	// Passphrase protects the store through Argon2id. nil means use (or
	// create) the key file Dir/store.key. An empty non-nil passphrase is
	// rejected.
	Passphrase []byte
	// Logger receives badger's logs (debug/info at Debug, warnings at Warn,
	// errors at Error) and the store's own. nil discards.
	Logger *slog.Logger
	// InMemory keeps everything in memory with a random key; Dir and
	// Passphrase are ignored. For tests.
	InMemory bool
	// Checks decode and cross-check, for Verify, the values of the
	// keyspaces that packages above store own (Tx.Space), by owner
	// (SpaceMsg: msg.Check). nil: those values are only authenticated.
	Checks map[string]Check
}

// DB is the open store. Its methods are safe for concurrent use.
type DB struct {
	bdb        *badger.DB
	seal       *sealer // the value key (seal.go)
	key        []byte  // the store key, for Verify's table check; cleared by Close
	log        *slog.Logger
	checks     map[string]Check // Options.Checks, for Verify
	encryption string
	dir        string

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu       sync.RWMutex // held for reading by every transaction, for writing by Close
	closed   bool         // guarded by mu
	closeErr error
}

// Open opens or creates the store described by opts. It returns
// ErrWrongPassphrase, ErrNeedPassphrase, ErrHasKeyFile, ErrKeyFileMode,
// ErrSchemaTooNew or ErrInUse for the conditions they name, and a
// *CorruptError (ErrCorrupt) naming the file when one of the database's
// files is damaged in a way badger would turn into silent loss (see
// "Integrity" in the package doc; it checks every table block first). ctx
// bounds the wait before the (uninterruptible) key derivation and badger
// open start.
func Open(ctx context.Context, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "store")
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var (
		key        []byte
		encryption string
		dir        string
	)
	if opts.InMemory {
		key = make([]byte, keySize)
		rand.Read(key)
		encryption = EncryptionMemory
	} else {
		if opts.Dir == "" {
			return nil, fmt.Errorf("open store: %w: Options.Dir is empty", ErrInvalid)
		}
		if opts.Passphrase != nil && len(opts.Passphrase) == 0 {
			return nil, fmt.Errorf("open store: %w: empty passphrase (use nil for a key file)", ErrInvalid)
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		var err error
		key, encryption, err = loadKey(opts.Dir, opts.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("open store in %s: %w", opts.Dir, err)
		}
		dir = filepath.Join(opts.Dir, dbDirName)
	}
	defer clear(key)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	seal, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	bo := badgerOptions(dir, key, opts.InMemory, log)
	var damagedKeys [][]byte // entries checkFiles found damaged; left unsealed by migrateSeal
	if !opts.InMemory {
		// badger leaks goroutines when Open fails on a key mismatch, so
		// check the key against the key registry (read-only) first.
		if err := checkRegistryKey(dir, key); err != nil {
			if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
				err = ErrKeyMismatch
				if encryption == EncryptionPassphrase {
					err = ErrWrongPassphrase
				}
			}
			return nil, fmt.Errorf("open store: %w", err)
		}
		if damagedKeys, err = checkFiles(dir, key, log); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		switch {
		case errors.Is(err, badger.ErrEncryptionKeyMismatch):
			if encryption == EncryptionPassphrase {
				err = ErrWrongPassphrase
			} else {
				err = ErrKeyMismatch
			}
		case strings.Contains(err.Error(), "Cannot acquire directory lock"):
			err = fmt.Errorf("%w (%v)", ErrInUse, err)
		default:
			err = badgerOpenError(err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := checkSchema(bdb, currentSchema, migrationsFor(seal, damagedKeys), seal, log); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	gctx, cancel := context.WithCancel(context.Background())
	db := &DB{bdb: bdb, seal: seal, key: bytes.Clone(key), log: log, checks: opts.Checks, encryption: encryption, dir: dir, cancel: cancel}
	if !opts.InMemory {
		db.wg.Go(func() { db.gcLoop(gctx) })
	}
	log.Debug("store opened", "encryption", encryption)
	return db, nil
}

// checkRegistryKey opens badger's key registry read-only, if there is one,
// to check that key decrypts it. It writes nothing.
func checkRegistryKey(dir string, key []byte) error {
	if ok, err := exists(filepath.Join(dir, badger.KeyRegistryFileName)); err != nil || !ok {
		return err
	}
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
	if err != nil {
		return err
	}
	return kr.Close()
}

// Encryption reports how the store's key is protected: "passphrase",
// "keyfile", or "memory" for an InMemory store.
func (db *DB) Encryption() string { return db.encryption }

// Close stops the GC loop, waits for it and for transactions in flight, and
// closes badger. It is idempotent; later calls return the first call's
// result. Operations after Close return ErrClosed.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.cancel()
		db.wg.Wait()
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		db.closeErr = db.bdb.Close()
		clear(db.key)
	})
	return db.closeErr
}

func (db *DB) gcLoop(ctx context.Context) {
	t := time.NewTicker(GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.runGC(ctx)
		}
	}
}

// runGC rewrites value log files until badger finds nothing worth rewriting.
func (db *DB) runGC(ctx context.Context) {
	for i := 0; i < 16 && ctx.Err() == nil; i++ {
		err := db.bdb.RunValueLogGC(gcDiscardRatio)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			db.log.Warn("value log GC", "err", err)
		}
		return
	}
}

// badgerLogger routes badger's logs into slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
	}
}
func (b badgerLogger) Debugf(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
	}
}

// badgerOptions are the options Open gives badger for the directory dir
// (ignored when inMemory) encrypted with key; see "Tuning" in the package
// doc.
func badgerOptions(dir string, key []byte, inMemory bool, log *slog.Logger) badger.Options {
	bo := badger.DefaultOptions(dir).
		WithInMemory(inMemory).
		WithEncryptionKey(key).
		WithIndexCacheSize(8 << 20).
		WithBlockCacheSize(8 << 20).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(64 << 20).
		WithBaseTableSize(2 << 20).
		WithNumCompactors(2).
		WithCompression(options.None).
		// Verify the CRC of a value-log entry before decoding it, and a
		// table block's checksum when it is read from disk: damage is
		// then an error instead of bytes decoded wrongly (or a panic in
		// badger's decoders). Sealed values are authenticated anyway.
		WithVerifyValueChecksum(true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log})
	if inMemory {
		// Without a value log every value stays in the LSM tree, and badger
		// refuses one above the threshold: take the largest it allows.
		bo = bo.WithValueThreshold(1 << 20)
	}
	return bo
}
