package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

const (
	keyFileName  = "store.key"
	saltFileName = "store.salt"
	dbDirName    = "store"

	keySize   = 32
	saltSize  = 16
	checkSize = 24

	labelStoreKey   = "callsign/v1/store-key"
	labelStoreCheck = "callsign/v1/store-key-check"
)

var saltMagic = [8]byte{'C', 'S', 'S', 'A', 'L', 'T', 0, 1}

const saltFileSize = 8 + 4 + 4 + 1 + 1 + saltSize + checkSize

// kdfParams are the Argon2id parameters for new passphrase stores.
// Tests in this package lower them to keep the suite fast.
var kdfParams = argonParams{Time: 3, MemoryKiB: 64 * 1024, Lanes: 4}

type argonParams struct {
	Time      uint32
	MemoryKiB uint32
	Lanes     uint8
}

// Upper bounds on parameters read from store.salt, so a damaged or planted
// file cannot make Open allocate gigabytes or spin for minutes.
const (
	maxArgonTime      = 64
	maxArgonMemoryKiB = 1024 * 1024 // 1 GiB
)

type saltFile struct {
	params argonParams
	salt   [saltSize]byte
	check  [checkSize]byte
}

func (s *saltFile) marshal() []byte {
	b := make([]byte, 0, saltFileSize)
	b = append(b, saltMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, s.params.Time)
	b = binary.BigEndian.AppendUint32(b, s.params.MemoryKiB)
	b = append(b, s.params.Lanes, 0)
	b = append(b, s.salt[:]...)
	b = append(b, s.check[:]...)
	return b
}

func parseSaltFile(b []byte) (*saltFile, error) {
	if len(b) != saltFileSize || !bytes.Equal(b[:8], saltMagic[:]) {
		return nil, errors.New("not a callsign store salt file (bad size or magic)")
	}
	s := &saltFile{}
	s.params.Time = binary.BigEndian.Uint32(b[8:])
	s.params.MemoryKiB = binary.BigEndian.Uint32(b[12:])
	s.params.Lanes = b[16]
	if b[17] != 0 {
		return nil, errors.New("salt file: reserved byte is not zero")
	}
	p := s.params
	if p.Time == 0 || p.Time > maxArgonTime || p.Lanes == 0 ||
		p.MemoryKiB < 8*uint32(p.Lanes) || p.MemoryKiB > maxArgonMemoryKiB {
		return nil, fmt.Errorf("salt file: Argon2id parameters out of range (t=%d m=%dKiB p=%d)", p.Time, p.MemoryKiB, p.Lanes)
	}
	copy(s.salt[:], b[18:])
	copy(s.check[:], b[18+saltSize:])
	return s, nil
}

// deriveKeys runs Argon2id and expands the result into the badger master
// key and the key-check value.
func deriveKeys(passphrase []byte, salt []byte, p argonParams) (key []byte, check [checkSize]byte, err error) {
	secret := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Lanes, keySize)
	defer clear(secret)
	key, err = hkdf.Expand(sha256.New, secret, labelStoreKey, keySize)
	if err != nil {
		return nil, check, err
	}
	c, err := hkdf.Expand(sha256.New, secret, labelStoreCheck, checkSize)
	if err != nil {
		return nil, check, err
	}
	copy(check[:], c)
	return key, check, nil
}

// exists reports whether path exists; other stat errors are returned.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// dbHasData reports whether the badger directory exists and is not empty.
func dbHasData(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(ents) > 0, nil
}

// loadKey finds or creates the store's master key in dir. It never writes
// anything unless the store is new (no key file, no salt file, no data).
func loadKey(dir string, passphrase []byte) (key []byte, encryption string, err error) {
	keyPath := filepath.Join(dir, keyFileName)
	saltPath := filepath.Join(dir, saltFileName)
	hasKey, err := exists(keyPath)
	if err != nil {
		return nil, "", err
	}
	hasSalt, err := exists(saltPath)
	if err != nil {
		return nil, "", err
	}
	switch {
	case hasKey && hasSalt:
		return nil, "", fmt.Errorf("both %s and %s exist in %s; one of them does not belong to this store", keyFileName, saltFileName, dir)
	case hasKey && passphrase != nil:
		return nil, "", ErrHasKeyFile
	case hasSalt && passphrase == nil:
		return nil, "", ErrNeedPassphrase
	case hasKey:
		key, err := readKeyFile(keyPath)
		return key, EncryptionKeyFile, err
	case hasSalt:
		key, err := openSalt(saltPath, passphrase)
		return key, EncryptionPassphrase, err
	}
	// New store: refuse if data exists without its key.
	has, err := dbHasData(filepath.Join(dir, dbDirName))
	if err != nil {
		return nil, "", err
	}
	if has {
		return nil, "", fmt.Errorf("%w: %s holds a database but neither %s nor %s", ErrKeyMissing, dir, keyFileName, saltFileName)
	}
	if passphrase != nil {
		key, err := createSalt(saltPath, passphrase)
		return key, EncryptionPassphrase, err
	}
	key, err = createKeyFile(keyPath)
	return key, EncryptionKeyFile, err
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, readable by others\nhint: chmod 600 %s", ErrKeyFileMode, path, perm, path)
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("key file %s: want %d bytes: %w", path, keySize, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("key file %s: longer than %d bytes", path, keySize)
	}
	return key, nil
}

// writeNew writes b to a new file at path with mode 0600, failing if the
// file exists, and syncs it and its directory.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, keySize)
	rand.Read(key)
	if err := writeNew(path, key); err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	return key, nil
}

func createSalt(path string, passphrase []byte) ([]byte, error) {
	s := &saltFile{params: kdfParams}
	rand.Read(s.salt[:])
	key, check, err := deriveKeys(passphrase, s.salt[:], s.params)
	if err != nil {
		return nil, err
	}
	s.check = check
	if err := writeNew(path, s.marshal()); err != nil {
		return nil, fmt.Errorf("create salt file: %w", err)
	}
	return key, nil
}

func openSalt(path string, passphrase []byte) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parseSaltFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, check, err := deriveKeys(passphrase, s.salt[:], s.params)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(check[:], s.check[:]) != 1 {
		clear(key)
		return nil, ErrWrongPassphrase
	}
	return key, nil
}
