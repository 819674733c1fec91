package files

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
