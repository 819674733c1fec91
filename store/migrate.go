package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

// Prefixes of layouts that are gone.
var (
	pfxOutDue = []byte("outdue/") // schema 1 only: the outbox index by time
	pfxSeen   = []byte("seen/")   // schema ≤ 3 only: seen ids are msgid/ markers since 4
)

// keyMigrateCursor remembers, between the batches of a migration, the last
// key it converted, so each batch starts where the previous one ended.
var keyMigrateCursor = []byte("meta/migrate-cursor")

// Batch limits of migrateBinaryValues: well inside badger's transaction
// limit (15% of the 8 MiB memtable) whatever the values' sizes.
const (
	migrateBatchEntries = 512
	migrateBatchBytes   = 512 << 10
)

// migrateBinaryValues (schema 1 → 2) deletes the outbox's time index
// (outdue/) and rewrites the JSON values under conv/, msg/ and out/ in their
// binary encodings, in batches. Other keys do not change. A value that is
// already binary (a batch committed before a crash) is left alone: JSON
// values start with '{', binary ones never do.
func migrateBinaryValues(txn *badger.Txn) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = pfxOutDue
	o.PrefetchValues = false
	it := txn.NewIterator(o)
	var dead [][]byte
	for it.Rewind(); it.Valid() && len(dead) < migrateBatchEntries; it.Next() {
		dead = append(dead, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range dead {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	if len(dead) == migrateBatchEntries {
		return errMigrateMore
	}

	return migrateEach(txn, [][]byte{pfxConv, pfxMsg, pfxOut}, func(pfx, k, v []byte) (int, error) {
		if len(v) == 0 || v[0] != '{' {
			return 0, nil // already binary
		}
		nv, err := convertJSON(pfx, v)
		if err != nil {
			return 0, err
		}
		return len(k) + len(nv), txn.Set(k, nv)
	})
}

// migrateStateToIndex (schema 2 → 3) moves each message's state out of its
// msg/ value into its msgid/ index entry, which until then held only the
// msg/ key (migrate_msg.go: the schema-5 form it writes).
func migrateStateToIndex(txn *badger.Txn) error {
	return migrateEach(txn, [][]byte{pfxMsg}, func(_, k, v []byte) (int, error) {
		m, err := unmarshalMessageV2(v)
		if err != nil {
			return 0, err
		}
		at, ok := msgKeyTime(k)
		if !ok {
			return 0, fmt.Errorf("%w: malformed message key", errCorrupt)
		}
		index, err := marshalIndexV5(at, m.Direction, m.State)
		if err != nil {
			return 0, err
		}
		if err := txn.Set(key(pfxMsgID, []byte(m.Peer), sep, []byte(m.ID)), index); err != nil {
			return 0, err
		}
		n := len(k) + len(index)
		if m.State != "" {
			m.State = ""
			nv, err := m.marshal()
			if err != nil {
				return 0, err
			}
			if err := txn.Set(k, nv); err != nil {
				return 0, err
			}
			n += len(k) + len(nv)
		}
		return n, nil
	})
}

// migrateSeenToIndex (schema 3 → 4) turns each seen/<peer>0x00<id> entry
// into a seen-only marker under msgid/<peer>0x00<id>, unless a message
// already holds that index entry (then the message dedups the id), and
// deletes the seen/ entry. Afterwards one read of msgid/ tells a fresh
// incoming id from a duplicate.
func migrateSeenToIndex(txn *badger.Txn) error {
	return migrateEach(txn, [][]byte{pfxSeen}, func(_, k, v []byte) (int, error) {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < 0 {
			return 0, fmt.Errorf("%w: seen entry is not a time", errCorrupt)
		}
		idKey := append(bytes.Clone(pfxMsgID), k[len(pfxSeen):]...)
		n := len(k)
		switch _, err := txn.Get(idKey); {
		case errors.Is(err, badger.ErrKeyNotFound):
			marker := append([]byte{0}, v...)
			if err := txn.Set(idKey, marker); err != nil {
				return 0, err
			}
			n += len(idKey) + len(marker)
		case err != nil:
			return 0, err
		}
		return n, txn.Delete(k)
	})
}

// migrateIndexTime (schema 4 → 5) rewrites each message's msgid/ entry
// from the schema-3 form (the whole msg/ key, direction, state) to the
// schema-5 form (direction, the message's time, state): ~100 bytes less in
// every index write. Seen-only markers, and entries a crashed earlier
// batch already rewrote, start with a byte below 3 and are left alone.
func migrateIndexTime(txn *badger.Txn) error {
	return migrateEach(txn, [][]byte{pfxMsgID}, func(_, k, v []byte) (int, error) {
		if len(v) > 0 && v[0] <= dirOutCode {
			return 0, nil // a marker, or already in the schema-5 form
		}
		msgKey, dir, state, err := unmarshalIndexV3(v)
		if err != nil {
			return 0, err
		}
		at, ok := msgKeyTime(msgKey)
		if !ok {
			return 0, fmt.Errorf("%w: message index: malformed msg/ key", errCorrupt)
		}
		nv, err := marshalIndexV5(at, dir, state)
		if err != nil {
			return 0, err
		}
		return len(k) + len(nv), txn.Set(k, nv)
	})
}

// migrateOutboxToIndex (schema 5 → 6) moves each text message's outbox
// entry into the message's index entry (kind 3, queued, with the
// envelope), keeps qstart/<peer> at or before the oldest, and deletes the
// out/ entry. An out/ entry with no outgoing message under its id is a
// control message and stays.
func migrateOutboxToIndex(txn *badger.Txn) error {
	return migrateEach(txn, [][]byte{pfxOut}, func(_, k, v []byte) (int, error) {
		e, err := unmarshalOutboxV2(v)
		if err != nil {
			return 0, err
		}
		idKey := key(pfxMsgID, []byte(e.Peer), sep, []byte(e.ID))
		var ix indexV6
		switch it, err := txn.Get(idKey); {
		case errors.Is(err, badger.ErrKeyNotFound):
			return 0, nil // a control message
		case err != nil:
			return 0, err
		default:
			if err := it.Value(func(b []byte) error { ix, err = unmarshalIndexV6(b); return err }); err != nil {
				return 0, fmt.Errorf("index of %q: %w", k, err)
			}
		}
		if ix.dir != dirOutV2 || ix.queued {
			return 0, nil
		}
		nv, err := marshalQueuedV6(ix.at, ix.state, e.Envelope)
		if err != nil {
			return 0, err
		}
		if err := txn.Set(idKey, nv); err != nil {
			return 0, err
		}
		qk := key(pfxQueueStart, []byte(e.Peer))
		start := ix.at
		switch it, err := txn.Get(qk); {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return 0, err
		default:
			if err := it.Value(func(b []byte) error {
				if len(b) == 8 && int64(binary.BigEndian.Uint64(b)) < start.UnixNano() {
					start = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
				}
				return nil
			}); err != nil {
				return 0, err
			}
		}
		if err := txn.Set(qk, be64(start)); err != nil {
			return 0, err
		}
		return len(idKey) + len(nv) + len(qk) + 8, txn.Delete(k)
	})
}

// unmarshalIndexV3 decodes a msgid/ value of schemas 3 and 4:
//
//	uvarint  length of the msg/ key (≥ 14, so never a schema-5 first byte)
//	bytes    the msg/ key of the message
//	byte     direction: 1 in, 2 out
//	bytes    state, UTF-8, the rest of the value (≤ maxStateLen)
func unmarshalIndexV3(b []byte) (msgKey []byte, dir, state string, err error) {
	n, l := protowire.ConsumeVarint(b)
	if l < 0 || protowire.SizeVarint(n) != l || n > uint64(len(b)-l) || n < uint64(len(pfxMsg))+10 {
		return nil, "", "", fmt.Errorf("%w: message index: bad key length", errCorrupt)
	}
	msgKey = b[l : l+int(n)]
	rest := b[l+int(n):]
	if !bytes.HasPrefix(msgKey, pfxMsg) || len(rest) < 1 {
		return nil, "", "", fmt.Errorf("%w: message index: malformed", errCorrupt)
	}
	switch rest[0] {
	case dirInCode:
		dir = dirInV2
	case dirOutCode:
		dir = dirOutV2
	default:
		return nil, "", "", fmt.Errorf("%w: message index: unknown direction", errCorrupt)
	}
	if len(rest[1:]) > maxStateLen || !utf8.Valid(rest[1:]) {
		return nil, "", "", fmt.Errorf("%w: message index: bad state", errCorrupt)
	}
	return msgKey, dir, string(rest[1:]), nil
}

// msgKeyTime returns the time in a msg/<peer>0x00<at:8><id> key.
func msgKeyTime(k []byte) (time.Time, bool) {
	i := bytes.IndexByte(k, 0)
	if !bytes.HasPrefix(k, pfxMsg) || i < 0 || len(k) < i+1+8 {
		return time.Time{}, false
	}
	ns := int64(binary.BigEndian.Uint64(k[i+1:]))
	return time.Unix(0, ns), ns >= 0
}

// migrateSeal (schema 6 → 7) seals every value (seal.go) but meta/schema,
// which checkSchema writes sealed with the version bump, and the
// migration's own cursor. Batches go in key order and each commits with
// its cursor, so after a crash the keys up to the cursor are sealed and
// the rest are not. A value badger cannot read back (a damaged value log
// entry), or one under a key in damaged (entries whose CRC checkFiles
// rewrote), is left as it is: it fails authentication from now on, and
// reads and Verify report it as damaged, instead of the node failing to
// start, or the damage being sealed as if it were the value.
func migrateSeal(txn *badger.Txn, s *sealer, damaged [][]byte) error {
	return migrateEachValue(txn, [][]byte{{}}, true, func(_, k, v []byte) (int, error) {
		if bytes.Equal(k, keySchema) || bytes.Equal(k, keyMigrateCursor) {
			return 0, nil
		}
		for _, d := range damaged {
			if bytes.Equal(k, d) {
				return 0, nil
			}
		}
		sv := s.seal(k, v)
		return len(k) + len(sv), txn.Set(k, sv)
	})
}

// migrateEach calls fn for every key under the prefixes (given in key
// order), resuming after meta/migrate-cursor, and returns errMigrateMore
// with the cursor saved once a batch is full. fn reports how many bytes it
// wrote. The cursor is deleted when every key is done.
func migrateEach(txn *badger.Txn, prefixes [][]byte, fn func(pfx, k, v []byte) (int, error)) error {
	return migrateEachValue(txn, prefixes, false, fn)
}

// migrateEachValue is migrateEach; with skipUnreadable, a key whose value
// badger cannot read is passed over instead of failing the migration.
func migrateEachValue(txn *badger.Txn, prefixes [][]byte, skipUnreadable bool, fn func(pfx, k, v []byte) (int, error)) error {
	cursor := []byte(nil)
	switch it, err := txn.Get(keyMigrateCursor); {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		if cursor, err = it.ValueCopy(nil); err != nil {
			return err
		}
	}
	entries, size := 0, 0
	for _, pfx := range prefixes {
		if cursor != nil && bytes.Compare(cursor, pfx) >= 0 && !bytes.HasPrefix(cursor, pfx) {
			continue // this prefix was done in an earlier batch
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = pfx
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		start := pfx
		if bytes.HasPrefix(cursor, pfx) {
			start = append(bytes.Clone(cursor), 0) // the key right after the cursor
		}
		for it.Seek(start); it.ValidForPrefix(pfx); it.Next() {
			item := it.Item()
			k := item.KeyCopy(nil)
			v, err := item.ValueCopy(nil)
			if err != nil && skipUnreadable && !errors.Is(err, badger.ErrDBClosed) {
				continue
			}
			if err != nil {
				it.Close()
				return err
			}
			n, err := fn(pfx, k, v)
			if err != nil {
				it.Close()
				return fmt.Errorf("migrate %q: %w", k, err)
			}
			if n == 0 {
				continue
			}
			entries++
			size += n
			if entries >= migrateBatchEntries || size >= migrateBatchBytes {
				it.Close()
				if err := txn.Set(keyMigrateCursor, k); err != nil {
					return err
				}
				return errMigrateMore
			}
		}
		it.Close()
	}
	return txn.Delete(keyMigrateCursor)
}

// convertJSON re-encodes one schema-1 value found under pfx.
func convertJSON(pfx, b []byte) ([]byte, error) {
	switch {
	case bytes.Equal(pfx, pfxConv):
		var c conversationV2
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, err
		}
		return c.marshal()
	case bytes.Equal(pfx, pfxMsg):
		var m messageV2
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		return m.marshal()
	case bytes.Equal(pfx, pfxOut):
		var e outboxV2
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, err
		}
		return e.marshal()
	}
	return nil, fmt.Errorf("bug: no migration for prefix %q", pfx)
}

// The JSON forms of schema 7 and before, frozen here so that the stored
// types can change without changing what the migration reads. Each has
// the fields of its type, so a value converts with a type conversion.
type (
	jsonClaim struct {
		Name      string    `json:"name"`
		Nonce     uint64    `json:"nonce"`
		Seq       uint64    `json:"seq"`
		ClaimedAt time.Time `json:"claimed_at"`
	}
	jsonListenPorts struct {
		TCP  int `json:"tcp"`
		QUIC int `json:"quic"`
	}
	jsonContact struct {
		Account    string    `json:"account"`
		PubKey     []byte    `json:"pubkey"`
		Petname    string    `json:"petname,omitempty"`
		Handle     string    `json:"handle,omitempty"`
		AddedAt    time.Time `json:"added_at"`
		PinnedAt   time.Time `json:"pinned_at"`
		KeyChanged bool      `json:"key_changed,omitempty"`
		SeenPubKey []byte    `json:"seen_pubkey,omitempty"`
		Verified   bool      `json:"verified,omitempty"`
		Following  bool      `json:"following,omitempty"`
		Blocked    bool      `json:"blocked,omitempty"`
		Accepted   bool      `json:"accepted,omitempty"`
	}
	jsonCall struct {
		ID              string        `json:"id"`
		Peer            string        `json:"peer"`
		Direction       string        `json:"direction"`
		Start           time.Time     `json:"start"`
		Duration        time.Duration `json:"duration"`
		EndReason       string        `json:"end_reason"`
		Path            string        `json:"path"`
		PacketsSent     uint64        `json:"packets_sent"`
		PacketsReceived uint64        `json:"packets_received"`
		BytesSent       uint64        `json:"bytes_sent"`
		BytesReceived   uint64        `json:"bytes_received"`
		Loss            float64       `json:"loss"`
		RTT             time.Duration `json:"rtt"`
		Blocked         bool          `json:"blocked,omitempty"`
	}
	jsonMailboxMember struct {
		Account    []byte    `json:"account"`
		Peers      [][]byte  `json:"peers"`
		Registered time.Time `json:"registered"`
		Count      int       `json:"count"`
		Bytes      int64     `json:"bytes"`
		Next       uint64    `json:"next"`
	}
	// jsonCallSettings is the node's (the API's) JSON of the call
	// settings, which schema 7 kept as the setting set/calls.
	jsonCallSettings struct {
		Policy      string            `json:"policy"`
		AlwaysRelay bool              `json:"always_relay"`
		AutoAnswer  bool              `json:"autoanswer"`
		RecordDir   string            `json:"record_dir,omitempty"`
		Rules       map[string]string `json:"rules,omitempty"`
	}
)

// keyCallSettingsV7 is where schema 7 kept the call settings, as JSON.
var keyCallSettingsV7 = []byte("set/calls")

// migrateJSONValues (schema 7 → 8) rewrites every JSON value in its binary
// encoding (valuecodec.go): claim/, conf/listen-ports, contact/, call/,
// mbox/m/, and set/calls, which becomes conf/call-settings. Values are
// sealed (schema 7), so each is opened, converted and sealed again. A value
// that is not JSON (a batch committed before a crash converted it) is left
// as it is, and so is one that does not open, does not parse or cannot be
// encoded: it was damage before and is reported as damage after (reads and
// Verify name it), instead of keeping the node from starting. JSON is
// parsed as leniently as the schema-7 accessors read it.
func migrateJSONValues(txn *badger.Txn, s *sealer) error {
	type jsonConv struct {
		pfx  []byte
		conv func([]byte) ([]byte, error)
	}
	convs := []jsonConv{ // in key order, as migrateEach wants its prefixes
		{pfxCall, viaJSON(func(j jsonCall) Call { return Call(j) }, marshalCall)},
		{pfxClaim, viaJSON(func(j jsonClaim) HandleClaim { return HandleClaim(j) }, marshalClaim)},
		{keyListenPorts, viaJSON(func(j jsonListenPorts) ListenPorts { return ListenPorts(j) }, marshalListenPorts)},
		{pfxContact, viaJSON(func(j jsonContact) Contact { return Contact(j) }, marshalContact)},
		{pfxMboxMember, viaJSON(func(j jsonMailboxMember) MailboxMember { return MailboxMember(j) }, marshalMailboxMember)},
		{keyCallSettingsV7, viaJSON(func(j jsonCallSettings) CallSettings { return CallSettings(j) }, marshalCallSettings)},
	}
	prefixes := make([][]byte, len(convs))
	for i, c := range convs {
		prefixes[i] = c.pfx
	}
	return migrateEachValue(txn, prefixes, true, func(pfx, k, sv []byte) (int, error) {
		v, err := s.open(nil, k, sv)
		if err != nil || !isJSONValue(v) {
			return 0, nil
		}
		i := slices.IndexFunc(convs, func(c jsonConv) bool { return bytes.Equal(c.pfx, pfx) })
		nv, err := convs[i].conv(v)
		if err != nil {
			return 0, nil
		}
		to := k
		if bytes.Equal(pfx, keyCallSettingsV7) {
			if !bytes.Equal(k, keyCallSettingsV7) {
				return 0, nil // another setting whose name starts with "calls"
			}
			to = keyCallSettings
			if err := txn.Delete(k); err != nil {
				return 0, err
			}
		}
		out := s.seal(to, nv)
		return len(to) + len(out), txn.Set(to, out)
	})
}

// viaJSON converts a schema-7 JSON value: parsed into its frozen form J,
// converted to its type T and encoded.
func viaJSON[J, T any](conv func(J) T, enc func(*T) ([]byte, error)) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		var j J
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, err
		}
		v := conv(j)
		return enc(&v)
	}
}
