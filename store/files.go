package store

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// Before badger opens the database, Open checks badger's files itself,
// because badger turns some damage into silent loss:
//
//   - A table (.sst) block that fails its checksum makes badger's
//     iterators stop at it without an error, so a scan silently skips
//     the rest of the table, and a compaction over it drops those
//     entries for good. Damage in a table's footer or index makes badger
//     panic or exit the process. checkTables reads every block of every
//     table the manifest lists, decrypts it and verifies its checksum
//     (the same work as badger's ChecksumVerificationMode OnTableRead,
//     whose verifier panics on some damage in badger v4.9.6), and Open
//     refuses a damaged table with a *CorruptError naming the file and the
//     keys of the damaged block.
//   - At every open badger reads the newest value log (.vlog) file and
//     truncates it at the first entry whose CRC fails: one flipped bit
//     there loses every value written after it. checkValueLog walks that
//     file's entries (their framing and CRCs need no key); an entry whose
//     CRC fails but whose header is intact, followed by valid entries,
//     is damage in the middle of the file, not a torn tail, and it gets
//     its CRC rewritten in place, so badger keeps the file. Its value then
//     fails authentication (seal.go) and reads report that one entry as
//     damaged. Damage it cannot frame (a damaged entry header with valid
//     entries after it) makes Open refuse, rather than let badger
//     truncate.
//
// Every other byte badger reads is covered by a checksum badger verifies
// with the options Open sets (VerifyValueChecksum for value log entries,
// OnBlockRead for table blocks read after Open), by badger's own CRCs
// (the manifest, the memtable WAL), or by the sealing of values.

// problemMissing is the problem of a table the manifest lists and the
// directory lacks.
const problemMissing = "the table is missing"

// fileDamage is one damaged region of one of badger's files.
type fileDamage struct {
	file     string // base name: 000003.sst
	block    int    // table block, or -1
	from, to []byte // keys of a damaged table block: its first key, the next block's first key (nil: the table's end)
	offset   int64  // value log: offset of the damaged entry
	problem  string
}

func (d fileDamage) String() string {
	s := d.file
	switch {
	case d.block >= 0 && d.from != nil:
		to := "the end of the table"
		if d.to != nil {
			to = describeKey(d.to)
		}
		s += fmt.Sprintf(" block %d (from %s to %s)", d.block, describeKey(d.from), to)
	case d.block >= 0:
		s += fmt.Sprintf(" block %d", d.block)
	case strings.HasSuffix(d.file, ".vlog"):
		s += fmt.Sprintf(" at offset %d", d.offset)
	}
	return s + ": " + d.problem
}

// checkTables verifies every block of every table the manifest in dir
// lists. A table it cannot check (the manifest unreadable, a data key
// missing) is left to badger, which reports those conditions itself.
func checkTables(dir string, key []byte, report func(fileDamage)) (tables int, err error) {
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	man, _, err := badger.ReplayManifestFile(mf, 0, badger.DefaultOptions(dir).WithLogger(nil))
	mf.Close()
	if err != nil {
		report(fileDamage{file: badger.ManifestFilename, block: -1, problem: err.Error()})
		return 0, nil
	}
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
	if err != nil {
		return 0, nil // Open reports a wrong key, or damage, in its own words
	}
	defer kr.Close()
	ids := make([]uint64, 0, len(man.Tables))
	for id := range man.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tm := man.Tables[id]
		if tm.Compression != options.None {
			continue // the store writes no compressed tables
		}
		dk, err := kr.DataKey(tm.KeyID)
		if err != nil {
			continue
		}
		name := fmt.Sprintf("%06d.sst", id)
		// Read, not mapped: DB.Verify runs this beside badger's compactions.
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				report(fileDamage{file: name, block: -1, problem: problemMissing})
				continue
			}
			return tables, err
		}
		if changedSince(filepath.Join(dir, name), len(b)) {
			continue // compacted away while read: not damage
		}
		tables++
		var data []byte
		if dk != nil {
			data = dk.Data
		}
		checkTable(name, b, data, report)
	}
	return tables, nil
}

// mapFile maps the file at path read-only; unmap releases it. Only for a
// file badger does not have open: badger truncates a table or value log it
// deletes before removing it, and a mapping of a file truncated under it
// faults (SIGBUS). Tables of an open store are read (os.ReadFile) instead.
func mapFile(path string) (b []byte, unmap func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, func() {}, nil
	}
	b, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", path, err)
	}
	return b, func() { syscall.Munmap(b) }, nil
}

// changedSince reports whether the file at path is gone or no longer n
// bytes long: badger deleted it (a compaction) while it was read.
func changedSince(path string, n int) bool {
	st, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist) || err == nil && st.Size() != int64(n)
}

// checkTable verifies the footer, the index and every block of the table
// b (badger's table format, table/builder.go), decrypted with dataKey
// (nil: plain). It never panics on damaged input.
func checkTable(name string, b, dataKey []byte, report func(fileDamage)) {
	whole := func(problem string) { report(fileDamage{file: name, block: -1, problem: problem}) }
	defer func() {
		if r := recover(); r != nil {
			whole(fmt.Sprintf("unreadable (%v)", r))
		}
	}()
	// Footer: ... index | index length (4) | checksum | checksum length (4).
	if len(b) < 8 {
		whole("too short for a table")
		return
	}
	end := len(b) - 4
	chkLen := int(binary.BigEndian.Uint32(b[end:]))
	if chkLen > end-4 {
		whole("damaged footer (checksum length)")
		return
	}
	end -= chkLen
	var chk pb.Checksum
	if err := proto.Unmarshal(b[end:end+chkLen], &chk); err != nil {
		whole("damaged footer (index checksum)")
		return
	}
	end -= 4
	indexLen := int(binary.BigEndian.Uint32(b[end:]))
	if indexLen > end {
		whole("damaged footer (index length)")
		return
	}
	index := b[end-indexLen : end]
	if err := verifyChecksum(index, &chk); err != nil {
		whole("damaged index: " + err.Error())
		return
	}
	if dataKey != nil {
		var err error
		if index, err = decryptBlock(nil, index, dataKey); err != nil {
			whole("damaged index: " + err.Error())
			return
		}
	}
	ti := fb.GetRootAsTableIndex(index, 0)
	n := ti.OffsetsLength()
	var bo fb.BlockOffset
	firstKey := func(i int) []byte {
		if i >= n || !ti.Offsets(&bo, i) {
			return nil
		}
		return y.ParseKey(bytes.Clone(bo.KeyBytes()))
	}
	var scratch []byte // one block's plaintext at a time
	for i := range n {
		if !ti.Offsets(&bo, i) {
			whole("damaged index")
			return
		}
		off, l := int(bo.Offset()), int(bo.Len())
		var problem string
		switch {
		case off < 0 || l < 0 || off+l > len(b)-indexLen-8-chkLen:
			problem = "block outside the table"
		default:
			problem = checkBlock(&scratch, b[off:off+l], dataKey)
		}
		if problem != "" {
			report(fileDamage{file: name, block: i, from: firstKey(i), to: firstKey(i + 1), problem: problem})
		}
	}
}

// checkBlock decrypts one table block and verifies its checksum, returning
// what is wrong, or "". Block: entries | entry offsets | count (4) |
// checksum | checksum length (4), then the 16-byte IV when encrypted.
func checkBlock(scratch *[]byte, blk, dataKey []byte) (problem string) {
	defer func() {
		if r := recover(); r != nil {
			problem = fmt.Sprintf("unreadable block (%v)", r)
		}
	}()
	if dataKey != nil {
		var err error
		if blk, err = decryptBlock(*scratch, blk, dataKey); err != nil {
			return err.Error()
		}
		*scratch = blk
	}
	if len(blk) < 8 {
		return "block too short"
	}
	end := len(blk) - 4
	chkLen := int(binary.BigEndian.Uint32(blk[end:]))
	if chkLen > end-4 {
		return "damaged block (checksum length)"
	}
	end -= chkLen
	var chk pb.Checksum
	if err := proto.Unmarshal(blk[end:end+chkLen], &chk); err != nil {
		return "damaged block (checksum)"
	}
	if err := verifyChecksum(blk[:end], &chk); err != nil {
		return "damaged block: " + err.Error()
	}
	return ""
}

// decryptBlock undoes badger's AES-CTR encryption of a table block or
// index, whose last 16 bytes are the IV, into dst's storage if it is big
// enough.
func decryptBlock(dst, b, key []byte) ([]byte, error) {
	if len(b) < aes.BlockSize {
		return nil, errors.New("too short for its IV")
	}
	iv := b[len(b)-aes.BlockSize:]
	out := dst[:0]
	if cap(out) < len(b)-aes.BlockSize {
		out = make([]byte, len(b)-aes.BlockSize)
	}
	out = out[:len(b)-aes.BlockSize]
	if err := y.XORBlock(out, b[:len(out)], key, iv); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyChecksum is y.VerifyChecksum, without its panic on an unknown
// algorithm (a damaged checksum can name one).
func verifyChecksum(data []byte, c *pb.Checksum) error {
	if c.Algo != pb.Checksum_CRC32C && c.Algo != pb.Checksum_XXHash64 {
		return fmt.Errorf("unknown checksum algorithm %d", c.Algo)
	}
	if y.CalculateChecksum(data, c.Algo) != c.Sum {
		return errors.New("checksum mismatch")
	}
	return nil
}

// Value log and memtable WAL entry framing (badger's structs.go and
// memtable.go): a file starts with a 20-byte header (data key id, base
// IV); each entry is
//
//	meta (1) | user meta (1) | uvarint key length | uvarint value length |
//	uvarint expiry | key and value (AES-CTR, IV = base IV | offset) |
//	CRC32-C of all before (4, big-endian)
//
// The key ends in badger's 8-byte version. An entry of a transaction has
// meta bit 0x40; the transaction ends with an entry with bit 0x80 whose
// value is the version in decimal.
const (
	vlogHeaderSize = 20
	vlogMaxKey     = 1 << 16 // badger's limit when it reads one
	vlogMaxValue   = 1 << 30 // badger's value limit
	bitTxn         = 1 << 6
	bitFinTxn      = 1 << 7
)

// logEntry is one framed entry of a log file.
type logEntry struct {
	off, end   int
	meta       byte
	kv         []byte // key and value, encrypted
	klen       int
	crcOK      bool
	framedNext bool // the entry after it frames and has a good CRC
}

// parseLogEntry frames the entry at off in b. ok is false when no entry
// can be framed there (a zero header, lengths past the end of b).
func parseLogEntry(b []byte, off int) (e logEntry, ok bool) {
	if off+2 > len(b) {
		return e, false
	}
	p := off + 2
	var lens [3]uint64
	for i := range lens {
		v, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return e, false
		}
		lens[i] = v
		p += n
	}
	klen, vlen := lens[0], lens[1]
	if klen == 0 || klen > vlogMaxKey || vlen > vlogMaxValue {
		return e, false
	}
	end := p + int(klen) + int(vlen) + 4
	if end > len(b) {
		return e, false
	}
	e = logEntry{off: off, end: end, meta: b[off], kv: b[p : end-4], klen: int(klen)}
	e.crcOK = crc32.Checksum(b[off:end-4], y.CastagnoliCrcTable) == binary.BigEndian.Uint32(b[end-4:end])
	return e, true
}

// logFile is a value log or memtable WAL file being checked.
type logFile struct {
	name    string
	b       []byte
	dataKey []byte // nil: not encrypted
	baseIV  []byte
}

// decrypt returns the first n bytes of e's key and value, decrypted.
func (f *logFile) decrypt(e logEntry, n int) []byte {
	out := make([]byte, n)
	if f.dataKey == nil {
		copy(out, e.kv)
		return out
	}
	iv := make([]byte, aes.BlockSize)
	copy(iv, f.baseIV)
	binary.BigEndian.PutUint32(iv[12:], uint32(e.off))
	if err := y.XORBlock(out, e.kv[:n], f.dataKey, iv); err != nil {
		return nil
	}
	return out
}

// key returns e's key without badger's version, decrypted.
func (f *logFile) key(e logEntry) []byte { return y.ParseKey(f.decrypt(e, e.klen)) }

// logRepair is a CRC to rewrite: that of a damaged log entry that valid
// entries follow.
type logRepair struct {
	file     string
	off      int    // the entry's offset
	crcOff   int    // where its CRC is
	crc, was uint32 // the CRC of what is there, and the one stored
	key      []byte // the entry's key, without badger's version
}

// apply writes the CRC.
func (r logRepair) apply(dir string) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], r.crc)
	return rewriteAt(filepath.Join(dir, r.file), b[:], int64(r.crcOff))
}

// checkLogs checks the files badger reads from start to end when it
// opens, and truncates at the first bad entry: the newest value log file,
// and every memtable WAL (.mem; there are none after a clean close). It
// returns the CRCs to rewrite for damaged entries that valid entries
// follow (see the comment at the top), and reports damage that badger
// would answer by cutting off committed entries after it.
func checkLogs(dir string, kr *badger.KeyRegistry, report func(fileDamage)) (repairs []logRepair, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	lastVlog, maxFid := "", -1
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".mem") {
			names = append(names, e.Name())
		}
		fid, ok := strings.CutSuffix(e.Name(), ".vlog")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(fid); err == nil && n > maxFid {
			maxFid, lastVlog = n, e.Name()
		}
	}
	if lastVlog != "" {
		names = append(names, lastVlog)
	}
	for _, name := range names {
		r, err := checkLogFile(dir, name, kr, report)
		if err != nil {
			return repairs, err
		}
		repairs = append(repairs, r...)
	}
	return repairs, nil
}

// checkLogFile is checkLogs for one file.
func checkLogFile(dir, name string, kr *badger.KeyRegistry, report func(fileDamage)) (repairs []logRepair, err error) {
	path := filepath.Join(dir, name)
	b, unmap, err := mapFile(path)
	if err != nil || len(b) < vlogHeaderSize {
		return nil, err
	}
	defer unmap()
	f := &logFile{name: name, b: b, baseIV: b[8:vlogHeaderSize]}
	dk, err := kr.DataKey(binary.BigEndian.Uint64(b[:8]))
	if err != nil {
		return nil, nil // badger reports a file it cannot decrypt
	}
	if dk != nil {
		f.dataKey = dk.Data
	}
	var entries []logEntry
	off := vlogHeaderSize
	for off < len(b) {
		e, ok := parseLogEntry(b, off)
		if ok && !e.crcOK {
			// If the next entry is valid, the damage is in this entry's
			// key, value or CRC, and its header framed it right.
			next, framed := parseLogEntry(b, e.end)
			ok = framed && next.crcOK
			if ok {
				repairs = append(repairs, logRepair{file: name, off: e.off, crcOff: e.end - 4,
					crc: crc32.Checksum(b[e.off:e.end-4], y.CastagnoliCrcTable),
					was: binary.BigEndian.Uint32(b[e.end-4:]), key: f.key(e)})
			}
		}
		if !ok {
			// The end of the entries, a last entry torn by a crash
			// (badger cuts it off), or damage this cannot frame: if a
			// valid entry starts later, it is damage.
			if next := resyncLog(b, off+1); next > 0 {
				report(fileDamage{file: name, block: -1, offset: int64(off),
					problem: fmt.Sprintf("damaged entry; valid entries follow at offset %d, which badger would cut off", next)})
			}
			break
		}
		entries = append(entries, e)
		off = e.end
	}
	// badger also stops at an entry that breaks the framing of
	// transactions (a damaged flag or version): if a committed
	// transaction follows, that is damage too.
	if at, culprit := txnBreak(f, entries); at >= 0 {
		for _, e := range entries[at:] {
			if e.meta&bitFinTxn != 0 || e.meta&(bitTxn|bitFinTxn) == 0 {
				report(fileDamage{file: name, block: -1, offset: int64(entries[culprit].off),
					problem: "damaged entry breaks the transaction framing; badger would cut off the committed entries after it"})
				break
			}
		}
	}
	return repairs, nil
}

// txnBreak replays badger's logFile.iterate over entries and returns the
// index of the entry it stops at, or -1 when it reads them all, and the
// entry to blame: the first of the transaction left open, if one is.
func txnBreak(f *logFile, entries []logEntry) (at, culprit int) {
	var lastCommit uint64
	start := 0
	for i, e := range entries {
		if lastCommit == 0 {
			start = i
		}
		switch {
		case e.meta&bitTxn != 0:
			ts := y.ParseTs(f.decrypt(e, e.klen))
			if lastCommit == 0 {
				lastCommit = ts
			}
			if lastCommit != ts {
				return i, start
			}
		case e.meta&bitFinTxn != 0:
			kv := f.decrypt(e, len(e.kv))
			ts, err := strconv.ParseUint(string(kv[e.klen:]), 10, 64)
			if err != nil || ts != lastCommit {
				return i, i
			}
			lastCommit = 0
		default:
			if lastCommit != 0 {
				return i, start
			}
		}
	}
	return -1, -1
}

// resyncLog returns the offset of the first valid entry at or after from,
// or 0. An entry is valid when it frames and its CRC holds (a false match
// is a 2^-32 chance per candidate that frames at all).
func resyncLog(b []byte, from int) int {
	for off := from; off+2 < len(b); off++ {
		if b[off+1] != 0 || b[off+2] == 0 {
			continue // the store writes no user meta, and no empty keys
		}
		if e, ok := parseLogEntry(b, off); ok && e.crcOK {
			return off
		}
	}
	return 0
}

// rewriteAt writes p at off in the file at path and syncs it.
func rewriteAt(path string, p []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(p, off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkFiles runs checkTables and checkLogs on the badger directory dir,
// holding badger's directory lock meanwhile (so that no other process has
// the database open). It returns the keys of the log entries it repaired
// (their values are damaged); table damage, or log damage it cannot
// repair, is a *CorruptError naming the first damaged file; ErrInUse when
// the lock is held.
func checkFiles(dir string, key []byte, log *slog.Logger) (damagedKeys [][]byte, err error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close() // releases the lock
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrInUse, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	var damage []fileDamage
	collect := func(d fileDamage) { damage = append(damage, d) }
	if _, err := checkTables(dir, key, collect); err != nil {
		return nil, err
	}
	var repairs []logRepair
	if len(damage) == 0 {
		kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
		if err != nil {
			return nil, nil // badger.Open reports it
		}
		repairs, err = checkLogs(dir, kr, collect)
		kr.Close()
		if err != nil {
			return nil, err
		}
	}
	if len(damage) == 0 {
		// Nothing refuses the open: rewrite the CRCs. The stored CRC is
		// logged, for whoever wants to find the flipped bit later.
		for _, r := range repairs {
			if err := r.apply(dir); err != nil {
				return nil, err
			}
			log.Warn("store log entry damaged; rewrote its CRC so that badger keeps the entries after it",
				"file", r.file, "offset", r.off, "crc_was", fmt.Sprintf("%08x", r.was), "entry", describeKey(r.key))
			damagedKeys = append(damagedKeys, r.key)
		}
		return damagedKeys, nil
	}
	for _, d := range damage {
		log.Error("store file damaged", "damage", d.String())
	}
	return nil, damagedFiles(damage)
}

// damagedFiles is the error for damage found in files: a *CorruptError
// naming the first, with how many more there are.
func damagedFiles(damage []fileDamage) error {
	cause := damage[0].String()
	if len(damage) > 1 {
		cause += fmt.Sprintf(" (and %d more)", len(damage)-1)
	}
	return &CorruptError{File: damage[0].file, Err: &corruptCause{cause}, files: damage}
}

// badgerOpenError marks an error from badger.Open that reports damaged
// files (a checksum that fails, a manifest or table it cannot read) as
// corruption, naming the file when the message does; others pass through.
// badger's errors carry no sentinel for these, hence the text.
func badgerOpenError(err error) error {
	msg := err.Error()
	damaged := false
	for _, s := range []string{"checksum", "corrupt", "manifest has", "MANIFEST", "failed to initialize table", "Invalid read", "ErrEOF", "unexpected EOF"} {
		if strings.Contains(msg, s) {
			damaged = true
			break
		}
	}
	if !damaged {
		return err
	}
	file := badgerFileRE.FindString(msg)
	return &CorruptError{File: file, Err: &wrappedCause{err}}
}

var badgerFileRE = regexp.MustCompile(`[0-9]{6}\.(sst|vlog|mem)|MANIFEST|KEYREGISTRY|DISCARD`)
