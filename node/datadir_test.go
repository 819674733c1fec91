package node

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDataDir: a data directory and secrets open to other users are
// made private, with a warning each; an API token others could read is
// dropped (the node makes a new one); one another user owns is refused.
func TestCheckDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("api.token", 0o640)
	write("store.key", 0o604)
	write("api.addr", 0o644) // not a secret: left as it is
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := checkDataDir(dir, log); err != nil {
		t.Fatal(err)
	}
	mode := func(name string) os.FileMode {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return fi.Mode().Perm()
	}
	if m := mode(""); m != 0o700 {
		t.Errorf("directory mode %04o, want 0700", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "api.token")); !os.IsNotExist(err) {
		t.Errorf("a token others could read is kept: %v", err)
	}
	if m := mode("store.key"); m != 0o600 {
		t.Errorf("store.key mode %04o, want 0600", m)
	}
	if m := mode("api.addr"); m != 0o644 {
		t.Errorf("api.addr mode %04o changed", m)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, &logs)
	}

	// Private already: nothing to say.
	logs.Reset()
	if err := checkDataDir(dir, log); err != nil || logs.Len() != 0 {
		t.Errorf("a private directory: %v\n%s", err, &logs)
	}

	// Another user's directory or secret is refused, with a hint.
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner takes root")
	}
	for _, name := range []string{"store.key", ""} {
		p := filepath.Join(dir, name)
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		err := checkDataDir(dir, log)
		var ne *Error
		if err == nil || !strings.Contains(err.Error(), "belongs to another user") || !errors.As(err, &ne) || ne.Hint() == "" {
			t.Errorf("%s owned by another user: %v", p, err)
		}
		if err := os.Chown(p, os.Geteuid(), os.Getegid()); err != nil {
			t.Fatal(err)
		}
	}
}
