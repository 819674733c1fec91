// Package diskstore is the go-datastore a public node's DHT keeps records
// in: badger under a directory of the node's data directory, so that a
// restart blanks no name. DHT records are public and signed, so the store is
// not encrypted; its memory is kept small (a few MiB of tables and caches).
//
// Package dht must not import badger; the node opens a Store and hands it
// to dht.Config.Datastore. Only this package imports badger for the DHT.
package diskstore

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// Store is a ds.Batching over badger. Every write is synced before it
// returns.
type Store struct {
	db *badger.DB
}

var _ ds.Batching = (*Store)(nil)

// Open opens (creating it, mode 0700) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dht store: %w", err)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithIndexCacheSize(1 << 20).
		WithBlockCacheSize(1 << 20).
		WithMemTableSize(2 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).
		WithBaseTableSize(1 << 20).
		WithNumCompactors(2).
		WithCompression(options.None)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("dht store: open %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Get implements ds.Read.
func (s *Store) Get(_ context.Context, key ds.Key) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key.Bytes())
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ds.ErrNotFound
	}
	return out, err
}

// Has implements ds.Read.
func (s *Store) Has(ctx context.Context, key ds.Key) (bool, error) {
	_, err := s.GetSize(ctx, key)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// GetSize implements ds.Read.
func (s *Store) GetSize(_ context.Context, key ds.Key) (int, error) {
	size := -1
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key.Bytes())
		if err != nil {
			return err
		}
		size = int(it.ValueSize())
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return -1, ds.ErrNotFound
	}
	return size, err
}

// Query implements ds.Read: the entries under q.Prefix are read in one
// transaction, then filtered, ordered and limited as q says.
func (s *Store) Query(_ context.Context, q dsq.Query) (dsq.Results, error) {
	var entries []dsq.Entry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(under(q.Prefix, !q.KeysOnly))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			e := dsq.Entry{Key: string(item.KeyCopy(nil)), Size: int(item.ValueSize())}
			if !q.KeysOnly {
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				e.Value = v
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	nq := q
	nq.Prefix = ""
	return dsq.NaiveQueryApply(nq, dsq.ResultsWithEntries(q, entries)), nil
}

// CountKeys counts the keys under prefix (a datastore key, such as
// "/csid") without reading or copying them, for the DHT's records-held
// figure.
func (s *Store) CountKeys(_ context.Context, prefix string) (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(under(prefix, false))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// under is the iterator over the keys under the datastore key prefix
// (all keys for "" or "/"), prefetching values when asked.
func under(prefix string, values bool) badger.IteratorOptions {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = values
	if p := ds.NewKey(prefix).String(); p != "/" {
		o.Prefix = []byte(p + "/")
	}
	return o
}

// Put implements ds.Write.
func (s *Store) Put(_ context.Context, key ds.Key, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key.Bytes(), value) })
}

// Delete implements ds.Write; deleting a missing key is not an error.
func (s *Store) Delete(_ context.Context, key ds.Key) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key.Bytes()) })
}

// Sync implements ds.Datastore; writes are synced already.
func (s *Store) Sync(context.Context, ds.Key) error { return nil }

// Batch implements ds.Batching.
func (s *Store) Batch(context.Context) (ds.Batch, error) { return ds.NewBasicBatch(s), nil }

// Close closes badger.
func (s *Store) Close() error { return s.db.Close() }
