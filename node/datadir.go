package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/callsign/callsign/api"
)

// secretFiles are the files of the data directory that hold secrets: the
// API token and the store's key file (store.Open's, when no passphrase is
// set).
var secretFiles = []string{api.TokenFile, "store.key"}

// checkDataDir makes sure only this user can read the data directory and
// its secrets. A directory or secret another user owns is refused with a
// hint; one that others may read or write is tightened (the directory to
// 0700, a secret to 0600), with a warning. An API token others could read
// is replaced: it is removed here, and startAPI makes a new one.
func checkDataDir(dir string, log *slog.Logger) error {
	uid := os.Geteuid()
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return withHint(fmt.Errorf("data directory %s is not a directory", dir), "pick a directory with --data")
	}
	if err := ownedBy(fi, uid, dir); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return withHint(fmt.Errorf("tighten data directory %s (mode %04o): %w", dir, fi.Mode().Perm(), err),
				fmt.Sprintf("run: chmod 700 %s", dir))
		}
		log.Warn("the data directory was open to other users; made it private (0700)", "dir", dir, "was", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	for _, name := range secretFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return withHint(fmt.Errorf("%s is not a regular file", path), "remove it; the node writes its own")
		}
		if err := ownedBy(fi, uid, path); err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		if mode&0o077 == 0 {
			continue
		}
		if name == api.TokenFile {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("replace API token: %w", err)
			}
			log.Warn("the API token was readable by other users; it is replaced, and clients holding the old one must sign in again",
				"file", path, "was", fmt.Sprintf("%04o", mode))
			continue
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return withHint(fmt.Errorf("tighten %s (mode %04o): %w", path, mode, err), fmt.Sprintf("run: chmod 600 %s", path))
		}
		log.Warn("a secret was readable by other users; made it private (0600); whoever read it can decrypt copies of the store",
			"file", path, "was", fmt.Sprintf("%04o", mode))
	}
	return nil
}

// ownedBy refuses a file another user owns.
func ownedBy(fi fs.FileInfo, uid int, path string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == uid {
		return nil
	}
	return withHint(fmt.Errorf("%s belongs to another user (uid %d)", path, st.Uid),
		"run callsign as the user that owns it, or pick another directory with --data")
}
