package devices

// The backup file (docs/DEVICES.md §5): the account sealed under a
// passphrase, made to be copied to a USB stick or a cloud folder and so to
// be attacked offline; hence Argon2id at 256 MiB, four times the store's.
// This file is the container; what the items hold (the account, claims,
// contacts, settings and, if asked, messages) is the node's, as in linking.
//
//	header (71 bytes, integers big-endian; the associated data of every chunk)
//	  0  8  magic "CSBACKUP"     8  1  version = 1     9  1  kdf = 1 (Argon2id)
//	  10 4  t (1..10)            14 4  m KiB (65,536..2,097,152)     18 1  p (1..16)
//	  19 16 salt                 35 16 key check       51 8  created (unix s)
//	  59 4  chunk size (4 KiB..4 MiB)
//	  63 8  SHA-256(bytes 0..62)[:8]: a damaged header is told from a wrong
//	        passphrase, and before Argon2id runs
//	secret    = Argon2id(passphrase, salt, t, m, p, 32 bytes)
//	key check = HKDF-SHA256(secret, no salt, info "callsign/v1/backup-key-check")[:16]
//	key       = HKDF-SHA256(secret, no salt, info "callsign/v1/backup-key"), 32 bytes
//	chunk i   = ChaCha20-Poly1305(key, nonce BE64(i) || BE32(final ? 1 : 0), ad = header):
//	            chunk size bytes of plaintext in every chunk but the last,
//	            0..chunk size in the last, the only one sealed as final
//
// The plaintext is a run of items, each kind (1 byte, 1..255) || BE32(len)
// || body (≤ MaxBackupItem), then End: kind 0 || BE32(40) || BE64(items
// before it) || SHA-256 of those items as framed. Nothing follows End.
//
// Reading authenticates as it goes, so a restore reads the file twice:
// Verify first (every chunk and End, nothing kept), then Each to write.
// A cut at a chunk boundary is ErrBackupTruncated (the last chunk there
// opens, but not as the final one); a cut inside a chunk can't be told
// from tampering and is ErrBackupDamaged.

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors from reading a backup; each means nothing was kept.
var (
	ErrBackupDamaged   = errors.New("backup damaged or tampered")
	ErrBackupTruncated = errors.New("backup damaged: truncated")
	ErrWrongPassphrase = errors.New("wrong passphrase")
	ErrBackupNewer     = errors.New("backup made by a newer callsign")
)

// BackupParams are a backup's Argon2id cost and chunk size.
type BackupParams struct {
	Time      uint32 // Argon2id passes, 1..10
	MemoryKiB uint32 // Argon2id memory, 64 MiB..2 GiB
	Lanes     uint8  // Argon2id parallelism, 1..16
	ChunkSize uint32 // plaintext bytes per chunk, 4 KiB..4 MiB
}

// DefaultBackupParams are what a new backup is written with: about a
// second on a laptop, within a home server's memory.
var DefaultBackupParams = BackupParams{Time: 3, MemoryKiB: 256 << 10, Lanes: 4, ChunkSize: 1 << 20}

// MaxBackupItem is the largest item body.
const MaxBackupItem = 16 << 20

const (
	backupMagic        = "CSBACKUP"
	backupVersion      = 1
	backupKDFArgon2id  = 1
	backupHeaderSize   = 71
	backupTagSize      = chacha20poly1305.Overhead
	backupEnd          = 0
	backupEndSize      = 8 + sha256.Size
	labelBackupKey     = "callsign/v1/backup-key"
	labelBackupCheck   = "callsign/v1/backup-key-check"
	backupItemHeadSize = 5
)

func (p BackupParams) check() error {
	if p.Time < 1 || p.Time > 10 || p.MemoryKiB < 64<<10 || p.MemoryKiB > 2<<20 ||
		p.Lanes < 1 || p.Lanes > 16 || p.ChunkSize < 4<<10 || p.ChunkSize > 4<<20 {
		return fmt.Errorf("backup parameters out of range (t=%d m=%dKiB p=%d chunk=%d)", p.Time, p.MemoryKiB, p.Lanes, p.ChunkSize)
	}
	return nil
}

// deriveBackupSecret is Argon2id; a variable so that tests can count and
// remember its runs.
var deriveBackupSecret = func(passphrase, salt []byte, p BackupParams) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Lanes, 32)
}

// backupKeys derives the key check and the chunk cipher from secret.
func backupKeys(secret []byte) (check []byte, aead cipher.AEAD) {
	check, err := hkdf.Key(sha256.New, secret, nil, labelBackupCheck, 16)
	if err != nil {
		panic(err) // 16 bytes of SHA-256's HKDF can't fail
	}
	key, err := hkdf.Key(sha256.New, secret, nil, labelBackupKey, chacha20poly1305.KeySize)
	if err != nil {
		panic(err)
	}
	aead, err = chacha20poly1305.New(key)
	if err != nil {
		panic(err)
	}
	return check, aead
}

func backupNonce(i uint64, final bool) []byte {
	n := binary.BigEndian.AppendUint64(make([]byte, 0, chacha20poly1305.NonceSize), i)
	if final {
		return binary.BigEndian.AppendUint32(n, 1)
	}
	return binary.BigEndian.AppendUint32(n, 0)
}

// BackupWriter writes a backup: Add each item, then Close.
type BackupWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	header []byte
	size   int
	buf    []byte // plaintext not yet sealed
	chunk  uint64
	items  uint64
	digest hash.Hash
	err    error // the first error, returned from then on
}

// NewBackupWriter writes the header of a backup sealed under passphrase
// to w and returns the writer for its items. It runs Argon2id.
func NewBackupWriter(w io.Writer, passphrase []byte, p BackupParams, created time.Time) (*BackupWriter, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return newBackupWriter(w, passphrase, p, created, salt)
}

func newBackupWriter(w io.Writer, passphrase []byte, p BackupParams, created time.Time, salt []byte) (*BackupWriter, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("backup: empty passphrase")
	}
	check, aead := backupKeys(deriveBackupSecret(passphrase, salt, p))
	h := make([]byte, 0, backupHeaderSize)
	h = append(h, backupMagic...)
	h = append(h, backupVersion, backupKDFArgon2id)
	h = binary.BigEndian.AppendUint32(h, p.Time)
	h = binary.BigEndian.AppendUint32(h, p.MemoryKiB)
	h = append(h, p.Lanes)
	h = append(h, salt...)
	h = append(h, check...)
	h = binary.BigEndian.AppendUint64(h, uint64(created.Unix()))
	h = binary.BigEndian.AppendUint32(h, p.ChunkSize)
	sum := sha256.Sum256(h)
	h = append(h, sum[:8]...)
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &BackupWriter{w: w, aead: aead, header: h, size: int(p.ChunkSize),
		buf: make([]byte, 0, p.ChunkSize), digest: sha256.New()}, nil
}

// Add writes one item; kind 0 is End's, written by Close.
func (bw *BackupWriter) Add(kind byte, body []byte) error {
	if bw.err != nil {
		return bw.err
	}
	if kind == backupEnd {
		return errors.New("backup: item kind 0 is End's")
	}
	if len(body) > MaxBackupItem {
		return fmt.Errorf("backup: item of %d bytes, over %d", len(body), MaxBackupItem)
	}
	head := binary.BigEndian.AppendUint32([]byte{kind}, uint32(len(body)))
	bw.digest.Write(head)
	bw.digest.Write(body)
	bw.items++
	if err := bw.write(head); err != nil {
		return err
	}
	return bw.write(body)
}

// write buffers p, sealing each full chunk once more follows it: the
// last chunk is sealed by Close, as final.
func (bw *BackupWriter) write(p []byte) error {
	for len(p) > 0 {
		if len(bw.buf) == bw.size {
			if err := bw.seal(false); err != nil {
				return err
			}
		}
		n := min(bw.size-len(bw.buf), len(p))
		bw.buf = append(bw.buf, p[:n]...)
		p = p[n:]
	}
	return nil
}

func (bw *BackupWriter) seal(final bool) error {
	ct := bw.aead.Seal(nil, backupNonce(bw.chunk, final), bw.buf, bw.header)
	bw.chunk++
	bw.buf = bw.buf[:0]
	if _, err := bw.w.Write(ct); err != nil {
		bw.err = err
		return err
	}
	return nil
}

// Close writes End and the final chunk. It does not close the underlying
// writer.
func (bw *BackupWriter) Close() error {
	if bw.err != nil {
		return bw.err
	}
	end := binary.BigEndian.AppendUint32([]byte{backupEnd}, backupEndSize)
	end = binary.BigEndian.AppendUint64(end, bw.items)
	end = bw.digest.Sum(end)
	if err := bw.write(end); err != nil {
		return err
	}
	if err := bw.seal(true); err != nil {
		return err
	}
	bw.err = errors.New("backup: writer closed")
	return nil
}

// Backup is an opened backup file, its passphrase checked.
type Backup struct {
	r       io.ReaderAt
	size    int64
	header  []byte
	params  BackupParams
	created time.Time
	aead    cipher.AEAD
}

// OpenBackup reads the header of the backup in r (size bytes), checks its
// bounds, runs Argon2id and checks the passphrase. Nothing past the header
// is read yet: Verify or Each does.
func OpenBackup(r io.ReaderAt, size int64, passphrase []byte) (*Backup, error) {
	h := make([]byte, backupHeaderSize)
	n, err := r.ReadAt(h, 0)
	if n < len(backupMagic) || !bytes.Equal(h[:len(backupMagic)], []byte(backupMagic)) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: not a callsign backup", ErrBackupDamaged)
	}
	if n > 8 && h[8] > backupVersion {
		return nil, fmt.Errorf("%w (version %d)", ErrBackupNewer, h[8])
	}
	if n < backupHeaderSize {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %d bytes, not even a header", ErrBackupTruncated, n)
	}
	if sum := sha256.Sum256(h[:63]); !bytes.Equal(sum[:8], h[63:]) {
		return nil, fmt.Errorf("%w: its header does not match its checksum", ErrBackupDamaged)
	}
	if h[8] != backupVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBackupDamaged, h[8])
	}
	if h[9] > backupKDFArgon2id {
		return nil, fmt.Errorf("%w (key derivation %d)", ErrBackupNewer, h[9])
	}
	if h[9] != backupKDFArgon2id {
		return nil, fmt.Errorf("%w: key derivation %d", ErrBackupDamaged, h[9])
	}
	p := BackupParams{
		Time:      binary.BigEndian.Uint32(h[10:]),
		MemoryKiB: binary.BigEndian.Uint32(h[14:]),
		Lanes:     h[18],
		ChunkSize: binary.BigEndian.Uint32(h[59:]),
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupDamaged, err)
	}
	check, aead := backupKeys(deriveBackupSecret(passphrase, h[19:35], p))
	if subtle.ConstantTimeCompare(check, h[35:51]) != 1 {
		return nil, ErrWrongPassphrase
	}
	created := time.Unix(int64(binary.BigEndian.Uint64(h[51:])), 0)
	return &Backup{r: r, size: size, header: h, params: p, created: created, aead: aead}, nil
}

// Created is when the backup was written, as its writer's clock said.
func (b *Backup) Created() time.Time { return b.created }

// Verify reads the whole backup and authenticates every chunk and End,
// keeping nothing, and returns the number of items.
func (b *Backup) Verify() (int, error) {
	n := 0
	err := b.Each(func(byte, []byte) error { n++; return nil })
	return n, err
}

// Each calls fn with every item in order, as it is authenticated; an
// error from fn stops it and is returned. An error after some items were
// passed means the file changed since Verify, or fn's own: a restore
// starts over.
func (b *Backup) Each(fn func(kind byte, body []byte) error) error {
	cr := &chunkReader{b: b}
	digest := sha256.New()
	var items uint64
	head := make([]byte, backupItemHeadSize)
	for {
		if _, err := io.ReadFull(cr, head); err != nil {
			return cr.fault(err, "an item cut short")
		}
		kind, n := head[0], binary.BigEndian.Uint32(head[1:])
		if n > MaxBackupItem || (kind == backupEnd && n != backupEndSize) {
			return fmt.Errorf("%w: an item of %d bytes", ErrBackupDamaged, n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(cr, body); err != nil {
			return cr.fault(err, "an item cut short")
		}
		if kind == backupEnd {
			if binary.BigEndian.Uint64(body) != items || !bytes.Equal(body[8:], digest.Sum(nil)) {
				return fmt.Errorf("%w: its items do not match their count and digest", ErrBackupDamaged)
			}
			if k, err := cr.Read(head[:1]); k != 0 || err != io.EOF {
				return cr.fault(err, "bytes after its end")
			}
			return nil
		}
		digest.Write(head)
		digest.Write(body)
		items++
		if err := fn(kind, body); err != nil {
			return err
		}
	}
}

// chunkReader reads the plaintext of b's chunks in order, opening each.
type chunkReader struct {
	b     *Backup
	i     uint64 // next chunk
	off   int64  // its offset
	plain []byte // what is left of the last chunk opened
	final bool   // the final chunk was opened
	err   error  // sticky: damaged or truncated
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	for len(cr.plain) == 0 {
		if cr.err != nil {
			return 0, cr.err
		}
		if cr.final {
			return 0, io.EOF
		}
		cr.err = cr.next()
	}
	n := copy(p, cr.plain)
	cr.plain = cr.plain[n:]
	return n, nil
}

// next opens chunk i: sealed as final when it is the file's last, not
// final otherwise.
func (cr *chunkReader) next() error {
	b := cr.b
	if cr.off == 0 {
		cr.off = backupHeaderSize
	}
	full := int64(b.params.ChunkSize) + backupTagSize
	left := b.size - cr.off
	if left <= 0 {
		return fmt.Errorf("%w: no final chunk", ErrBackupTruncated)
	}
	last := left <= full
	ct := make([]byte, min(left, full))
	if n, err := b.r.ReadAt(ct, cr.off); n < len(ct) {
		if err == nil || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the file is shorter than it was", ErrBackupTruncated)
		}
		return err
	}
	if len(ct) < backupTagSize {
		return fmt.Errorf("%w: a chunk of %d bytes", ErrBackupTruncated, len(ct))
	}
	// Not opened in place: a failed Open clears its output, and the
	// ciphertext may be tried again as a chunk that is not final.
	pt, err := b.aead.Open(nil, backupNonce(cr.i, last), ct, b.header)
	if err != nil {
		if last && int64(len(ct)) == full {
			if _, err := b.aead.Open(nil, backupNonce(cr.i, false), ct, b.header); err == nil {
				return fmt.Errorf("%w: it ends after chunk %d, which is not the final one", ErrBackupTruncated, cr.i)
			}
		}
		return fmt.Errorf("%w: chunk %d does not open", ErrBackupDamaged, cr.i)
	}
	cr.i++
	cr.off += int64(len(ct))
	cr.plain, cr.final = pt, last
	return nil
}

// fault names a read error: the reader's own (damaged, truncated, the
// file's) as it is, and the plaintext ending early (the final chunk
// opened, End not reached) as damage.
func (cr *chunkReader) fault(err error, what string) error {
	if cr.err != nil {
		return cr.err
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s", ErrBackupDamaged, what)
	}
	return err
}
