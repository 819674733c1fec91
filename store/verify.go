package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Damage is one damaged item Verify found: an entry (Key set), or a
// region of one of the database's files (File set).
type Damage struct {
	// Kind is what is damaged: one of the Kind constants (KindMessage,
	// KindContact, ...), or KindTableBlock, KindValueLog, KindFile.
	Kind string `json:"kind"`
	// Peer is the conversation's (or contact's) account id, for the kinds
	// that have one.
	Peer string `json:"peer,omitempty"`
	// ID is the item's id within its kind: a message id, a setting's
	// name, a secret's field.
	ID string `json:"id,omitempty"`
	// At is the time in a message's or call's key.
	At time.Time `json:"at,omitzero"`
	// Key is the entry's key, Go-quoted.
	Key string `json:"key,omitempty"`
	// File is the damaged file in the data directory's store/.
	File string `json:"file,omitempty"`
	// From and To describe the keys of a damaged table block: entries
	// from From, up to (not including) To, are lost or unreadable. To is
	// empty when the block is the table's last.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Problem says what is wrong.
	Problem string `json:"problem"`
}

// Kinds of damage that are not one entry.
const (
	KindTableBlock = "table block" // a block of a table file (.sst)
	KindValueLog   = "value log"   // an entry of a value log file (.vlog)
	KindFile       = "file"        // a file badger cannot open
)

// String is one line for a person: what is damaged, and how.
func (d Damage) String() string {
	var what string
	switch {
	case d.Kind == KindTableBlock:
		what = fmt.Sprintf("table block in %s, entries from %s to %s", d.File, d.From, orEnd(d.To))
	case d.File != "":
		what = d.Kind + " " + d.File
	default:
		ki := keyInfo{Kind: d.Kind, Peer: d.Peer, ID: d.ID}
		what = ki.String()
		if ki.Kind == KindUnknown {
			what = "entry " + d.Key
		}
		if !d.At.IsZero() {
			what += " (" + d.At.UTC().Format(time.RFC3339) + ")"
		}
	}
	return what + ": " + d.Problem
}

func orEnd(s string) string {
	if s == "" {
		return "the end of the table"
	}
	return s
}

// VerifyStats summarises a Verify run.
type VerifyStats struct {
	Entries int            `json:"entries"` // entries read and checked
	Kinds   map[string]int `json:"kinds"`   // entries per kind
	Tables  int            `json:"tables"`  // table files whose every block was checked
	Damaged int            `json:"damaged"` // damage reported
	// Partial says why some of the store could not be checked, when so.
	Partial string `json:"partial,omitempty"`
}

// Verify checks the whole store: every block of every table file (its
// checksum), then every entry: that its value reads back, authenticates
// under its key, and decodes, and that the message entries and their index
// entries point at each other. It calls report (if not nil) for each
// damaged item, in key order, and returns the counts. The error is for a
// check that could not run (a closed store, ctx done), not for damage.
// Verify reads one snapshot and may run while the store is in use.
func (db *DB) Verify(ctx context.Context, report func(Damage)) (VerifyStats, error) {
	st := VerifyStats{Kinds: map[string]int{}}
	emit := func(d Damage) {
		st.Damaged++
		if report != nil {
			report(d)
		}
	}
	if db.encryption != EncryptionMemory {
		// Tables compacted away while this runs are gone, not damaged.
		n, err := checkTables(db.dir, db.key, func(d fileDamage) {
			if d.problem != problemMissing {
				emit(d.damage())
			}
		})
		if err != nil {
			return st, err
		}
		st.Tables = n
	}
	err := db.View(func(tx *Tx) error { return tx.walk(ctx, &st, emit, db.checks) })
	return st, err
}

// damage converts file damage found by checkTables or checkValueLog.
func (d fileDamage) damage() Damage {
	out := Damage{Kind: KindFile, File: d.file, Problem: d.problem}
	switch {
	case d.block >= 0:
		out.Kind = KindTableBlock
		if d.from != nil {
			out.From = describeKey(d.from)
		}
		if d.to != nil {
			out.To = describeKey(d.to)
		}
	case filepath.Ext(d.file) == ".vlog":
		out.Kind = KindValueLog
		out.Problem = fmt.Sprintf("at offset %d: %s", d.offset, d.problem)
	}
	return out
}

// walk checks every entry in tx's snapshot, the values of the keyspaces
// other packages own with their checks; see Verify.
func (tx *Tx) walk(ctx context.Context, st *VerifyStats, emit func(Damage), checks map[string]Check) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	it := tx.txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if st.Entries%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		item := it.Item()
		k := item.KeyCopy(nil)
		ki := parseKey(k)
		st.Entries++
		st.Kinds[ki.Kind]++
		report := func(ki keyInfo, k []byte, problem string) {
			emit(Damage{Kind: ki.Kind, Peer: ki.Peer, ID: ki.ID, At: ki.At, Key: fmt.Sprintf("%q", k), Problem: problem})
		}
		if problem := tx.checkEntry(item, k, ki, report, checks); problem != "" {
			report(ki, k, problem)
		}
	}
	return nil
}

// checkEntry reads, authenticates and decodes one entry, and checks it
// against the entries it points at; it returns what is wrong with it, or
// "", and reports damage it finds in other entries (a message missing
// behind its index entry) itself. The value of a keyspace another package
// owns is decoded by that owner's check, if it has one.
func (tx *Tx) checkEntry(item *badger.Item, k []byte, ki keyInfo, report func(keyInfo, []byte, string), checks map[string]Check) string {
	switch ki.Kind {
	case KindCursor:
		return "" // raw, and only there while a migration runs
	case KindSchema:
		var err error
		if verr := item.Value(func(b []byte) error { _, err = decodeSchema(tx.s, b); return nil }); verr != nil {
			err = verr
		}
		return problemOf(err)
	}
	v, err := tx.value(item)
	if err != nil {
		return problemOf(err)
	}
	switch ki.Kind {
	case KindContact:
		c, err := unmarshalContact(v)
		if err == nil && c.Account != ki.Peer {
			return "the contact does not match its key"
		}
		return problemOf(err)
	case KindPetname:
		c, err := tx.Contact(string(v))
		switch {
		case errors.Is(err, ErrNotFound):
			return fmt.Sprintf("names contact %q, which is missing", v)
		case err == nil && c.Petname != ki.ID:
			return fmt.Sprintf("names contact %q, whose petname is %q", v, c.Petname)
		}
	case KindClaim:
		c, err := unmarshalClaim(v)
		if err == nil && c.Name != ki.ID {
			return "the claim does not match its key"
		}
		return problemOf(err)
	case KindListenPorts:
		_, err := unmarshalListenPorts(v)
		return problemOf(err)
	case KindCallSettings:
		_, err := unmarshalCallSettings(v)
		return problemOf(err)
	case KindCall:
		c, err := unmarshalCall(v)
		if err == nil && c.ID != ki.ID {
			return "the call does not match its key"
		}
		return problemOf(err)
	default:
		if owner := spaceOf(k); checks[owner] != nil {
			return checks[owner](tx.Space(owner), k, v, func(k []byte, problem string) {
				report(parseKey(k), k, problem)
			})
		}
	}
	return ""
}

// problemOf is the cause in err, without the entry's name.
func problemOf(err error) string {
	if err == nil {
		return ""
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce.Err.Error()
	}
	return err.Error()
}

// Verify checks the store in opts.Dir without the caller opening it (the
// node must be stopped): it opens the store and runs DB.Verify. A store
// that does not open because a table file is damaged (see checkTables)
// has every damaged block reported, with the keys it held, and its
// entries are not checked one by one (Partial says so): badger would skip
// the damaged blocks without a word. Verify never creates a store: an
// empty or missing one is an error. InMemory is ignored.
func Verify(ctx context.Context, opts Options, report func(Damage)) (VerifyStats, error) {
	st := VerifyStats{Kinds: map[string]int{}}
	if opts.Dir == "" {
		return st, fmt.Errorf("verify store: %w: Options.Dir is empty", ErrInvalid)
	}
	dir := filepath.Join(opts.Dir, dbDirName)
	if has, err := dbHasData(dir); err != nil || !has {
		if err == nil {
			err = fmt.Errorf("no store in %s", opts.Dir)
		}
		return st, fmt.Errorf("verify store: %w", err)
	}
	opts.InMemory = false
	db, err := Open(ctx, opts)
	if err == nil {
		defer db.Close()
		return db.Verify(ctx, report)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Key != nil {
		return st, err
	}
	emit := func(d Damage) {
		st.Damaged++
		if report != nil {
			report(d)
		}
	}
	for _, d := range ce.files {
		emit(d.damage())
	}
	if len(ce.files) == 0 {
		// Damage badger found: its error names it.
		d := Damage{Kind: KindFile, File: ce.File, Problem: ce.Err.Error()}
		if filepath.Ext(ce.File) == ".vlog" {
			d.Kind = KindValueLog
		}
		emit(d)
	}
	st.Partial = "the store does not open with a damaged file, so its entries were not checked one by one"
	return st, nil
}
