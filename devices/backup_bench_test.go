package devices

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// BenchmarkBackup: what a person waits for to make and to open a backup
// at the production parameters (Argon2id 256 MiB, t=3, p=4), with 1 MiB of
// items (several thousand contacts' worth), beside Argon2id alone at the
// same parameters: the baseline the container's own work adds to.
//
//	go test ./devices -run '^$' -bench Backup -benchtime 5x
func BenchmarkBackup(b *testing.B) {
	p := DefaultBackupParams
	pass := []byte("correct horse battery staple")
	items := bytes.Repeat([]byte{7}, 1<<10)
	write := func() []byte {
		var buf bytes.Buffer
		bw, err := NewBackupWriter(&buf, pass, p, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for range 1 << 10 {
			if err := bw.Add(3, items); err != nil {
				b.Fatal(err)
			}
		}
		if err := bw.Close(); err != nil {
			b.Fatal(err)
		}
		return buf.Bytes()
	}
	b.Run("argon2id-alone", func(b *testing.B) {
		for range b.N {
			argon2.IDKey(pass, make([]byte, 16), p.Time, p.MemoryKiB, p.Lanes, 32)
		}
	})
	b.Run("create", func(b *testing.B) {
		for range b.N {
			write()
		}
	})
	file := write()
	b.Run("open-and-verify", func(b *testing.B) {
		for range b.N {
			bk, err := OpenBackup(bytes.NewReader(file), int64(len(file)), pass)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := bk.Verify(); err != nil || n != 1<<10 {
				b.Fatal(n, err)
			}
		}
	})
}
