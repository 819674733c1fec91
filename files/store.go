package files

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store keeps sealed files in one directory: a complete file under its
// hash, a download in progress under its hash and ".part", a file being
// added under a random name and ".tmp" (removed at the next start). A file
// appears under its hash only whole and checked, so a crash leaves either
// nothing or the whole file.
type Store struct {
	dir   string
	limit int64
}

// OpenStore opens (creating it) the store in dir. limit caps a file's
// plaintext: 0 means DefaultLimit.
func OpenStore(dir string, limit int64) (*Store, error) {
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 0 || limit > MaxLimit {
		return nil, fmt.Errorf("files: a limit of %d bytes (at most %d)", limit, int64(MaxLimit))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if err != nil {
		return nil, err
	}
	for _, t := range tmps {
		os.Remove(t)
	}
	return &Store{dir: dir, limit: limit}, nil
}

// Limit is the largest plaintext the store takes.
func (s *Store) Limit() int64 { return s.limit }

func (s *Store) path(h Hash) string { return filepath.Join(s.dir, h.String()) }
func (s *Store) part(h Hash) string { return s.path(h) + ".part" }

// Add seals src under a fresh random key into the store and returns its
// reference, named name with media type typ (checked as a Ref is).
func (s *Store) Add(src io.Reader, name, typ string) (Ref, error) {
	r := Ref{Name: name, Type: typ}
	if r.Type == "" {
		r.Type = "application/octet-stream"
	}
	if err := r.Check(); err != nil {
		return Ref{}, err
	}
	if _, err := rand.Read(r.Key[:]); err != nil {
		return Ref{}, err
	}
	f, err := os.CreateTemp(s.dir, "add-*.tmp")
	if err != nil {
		return Ref{}, fmt.Errorf("files: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	sealed, h, err := Seal(f, src, &r.Key, s.limit)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Ref{}, err
	}
	r.Hash, r.Size = h, PlainSize(sealed)
	if err := s.commit(f.Name(), h); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// commit moves a checked file into place under its hash.
func (s *Store) commit(from string, h Hash) error {
	if err := os.Rename(from, s.path(h)); err != nil {
		return fmt.Errorf("files: %w", err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Has reports whether the store holds the whole file.
func (s *Store) Has(h Hash) bool {
	_, err := os.Stat(s.path(h))
	return err == nil
}

// Partial is how many sealed bytes of a download the store holds (0 when
// none).
func (s *Store) Partial(h Hash) int64 {
	fi, err := os.Stat(s.part(h))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// sealedFile opens a whole file for reading, with its sealed size.
func (s *Store) sealedFile(h Hash) (*os.File, int64, error) {
	f, err := os.Open(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %v", ErrNotFound, h)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Read writes the plaintext of the file r names to dst.
func (s *Store) Read(dst io.Writer, r Ref) error {
	f, size, err := s.sealedFile(r.Hash)
	if err != nil {
		return err
	}
	defer f.Close()
	if size != SealedSize(r.Size) {
		return fmt.Errorf("%w: %v holds %d sealed bytes, the reference says %d plain", ErrCorrupt, r.Hash, size, r.Size)
	}
	_, err = Open(dst, f, &r.Key)
	return err
}

// Remove deletes the file and any download of it.
func (s *Store) Remove(h Hash) error {
	err := os.Remove(s.path(h))
	if perr := os.Remove(s.part(h)); err == nil || errors.Is(err, fs.ErrNotExist) {
		err = perr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Incoming is a file arriving in the store, sealed bytes in order, into
// its ".part" file: started again where an earlier one stopped, it appears
// under its hash only whole and matching it (Finish). Fetch receives
// through one; so does a mailbox that parks files for its members.
type Incoming struct {
	s     *Store
	h     Hash
	f     *os.File
	sum   hash.Hash
	have  int64
	total int64
}

// Begin starts receiving the file h of total sealed bytes, resuming what
// an earlier Incoming left: what is there is hashed again, so Finish can
// check the whole in one pass. The caller serialises Incomings of one
// file, and Closes the one it began.
func (s *Store) Begin(h Hash, total int64) (*Incoming, error) {
	if total <= 0 || total > SealedSize(s.limit) {
		return nil, fmt.Errorf("%w: %d sealed bytes, this store takes at most %d", ErrTooLarge, total, SealedSize(s.limit))
	}
	f, err := os.OpenFile(s.part(h), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	in := &Incoming{s: s, h: h, f: f, sum: sha256.New(), total: total}
	if in.have, err = io.Copy(in.sum, f); err == nil && in.have > total {
		// Longer than the file: not this file's start. Start over.
		in.sum.Reset()
		in.have = 0
		if err = f.Truncate(0); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("files: %w", err)
	}
	return in, nil
}

// Have is how many sealed bytes arrived so far, Total how many make the
// whole.
func (in *Incoming) Have() int64  { return in.have }
func (in *Incoming) Total() int64 { return in.total }

// Write appends sealed bytes; it refuses any past Total.
func (in *Incoming) Write(b []byte) (int, error) {
	if int64(len(b)) > in.total-in.have {
		return 0, fmt.Errorf("%w: more than the %d sealed bytes announced", ErrTooLarge, in.total)
	}
	n, err := in.f.Write(b)
	in.sum.Write(b[:n])
	in.have += int64(n)
	return n, err
}

// Finish checks the whole file against its hash and moves it into place.
// A file that does not match is deleted (ErrHashMismatch), so the next
// try starts from nothing; one still short of Total fails and is kept.
func (in *Incoming) Finish() error {
	if in.have < in.total {
		return fmt.Errorf("files: %d of %d bytes: %w", in.have, in.total, io.ErrUnexpectedEOF)
	}
	if Hash(in.sum.Sum(nil)) != in.h {
		in.Discard()
		return fmt.Errorf("%w: the bytes received hash to another file", ErrHashMismatch)
	}
	err := in.f.Sync()
	if cerr := in.f.Close(); err == nil {
		err = cerr
	}
	in.f = nil
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	return in.s.commit(in.s.part(in.h), in.h)
}

// Discard deletes what arrived.
func (in *Incoming) Discard() {
	if in.f != nil {
		in.f.Close()
		in.f = nil
	}
	os.Remove(in.s.part(in.h))
}

// Close ends an Incoming that did not Finish, keeping what arrived for the
// next one (nothing arrived: no trace). After Finish, a no-op.
func (in *Incoming) Close() error {
	if in.f == nil {
		return nil
	}
	err := in.f.Close()
	in.f = nil
	if in.have == 0 {
		os.Remove(in.s.part(in.h))
	}
	return err
}

// Sealed opens the whole file h for reading its sealed bytes, with their
// size: what a node sends when it parks a file at a mailbox.
func (s *Store) Sealed(h Hash) (*os.File, int64, error) { return s.sealedFile(h) }

// Hashes lists the files the store holds, whole or arriving.
func (s *Store) Hashes() ([]Hash, error) {
	es, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	var out []Hash
	for _, e := range es {
		name := e.Name()
		if h, err := ParseHash(strings.TrimSuffix(name, ".part")); err == nil && !e.IsDir() {
			if len(out) == 0 || out[len(out)-1] != h {
				out = append(out, h)
			}
		}
	}
	return out, nil
}
