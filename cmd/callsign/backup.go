package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/node"
)

// backupPassEnv holds a backup's passphrase for scripts; on a terminal the
// CLI asks for it instead.
const backupPassEnv = "CALLSIGN_BACKUP_PASSPHRASE"

func backupCreateCommand() *command {
	var messages bool
	return &command{
		name:    "backup create",
		args:    "FILE",
		summary: "write your account, sealed under a passphrase, to FILE (restore it with `callsign up --restore FILE`)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&messages, "messages", false, "also back up every conversation and message")
		},
		details: []string{
			"The backup holds your account key, your handles, contacts, call settings and community nodes: what you need to be you again on a new machine, without a new proof of work and without your contacts seeing a key change. With --messages it holds your conversations and messages too (a message not yet sent comes back as failed). Restored, the account runs as a new device: contacts' messages reach it from then on.",
			"The file is sealed with a key from the passphrase (Argon2id, 256 MiB), so it can be kept on a USB stick or in a cloud folder; the passphrase must have at least 12 characters. Keep the passphrase apart from the file: whoever has both has your account.",
			"The passphrase is asked for twice on a terminal, or read from $" + backupPassEnv + ". FILE must not exist.",
			"  callsign backup create ~/callsign.backup",
		},
		read: true,
		run: func(ctx context.Context, e *env, args []string) error {
			return runBackupCreate(ctx, e, args, messages)
		},
	}
}

func backupVerifyCommand() *command {
	return &command{
		name:    "backup verify",
		args:    "FILE",
		summary: "check that a backup opens with its passphrase and is whole, and show what it holds (restores nothing)",
		details: []string{
			"Reads all of FILE as `up --restore` would, into memory only: a wrong passphrase, a damaged or cut file is reported as the restore would report it. Needs no node. The passphrase is asked for on a terminal, or read from $" + backupPassEnv + ".",
			"  callsign backup verify ~/callsign.backup",
		},
		read: true,
		run:  runBackupVerify,
	}
}

// backupContents is what `callsign backup verify --json` prints.
type backupContents struct {
	File string `json:"file"`
	node.BackupContents
}

func runBackupVerify(ctx context.Context, e *env, args []string) error {
	if err := needArgs(args, 1, "FILE"); err != nil {
		return err
	}
	pass, err := backupPassphrase(e, false)
	if err != nil {
		return err
	}
	c, err := node.InspectBackup(ctx, args[0], []byte(pass))
	if err != nil {
		return err
	}
	return e.print(backupContents{File: args[0], BackupContents: c}, func(w io.Writer) {
		handles := "none"
		if len(c.Handles) > 0 {
			handles = "@" + strings.Join(c.Handles, ", @")
		}
		fmt.Fprintf(w, "%s opens and is whole: made %s\n  account   %s\n  handles   %s\n  contacts  %d\n  groups    %d\n  community nodes  %d\n",
			args[0], c.Created.Local().Format("2006-01-02 15:04"), c.Account, handles, c.Contacts, c.Groups, c.CommunityNodes)
		if c.Messages > 0 || c.Conversations > 0 || c.GroupMessages > 0 {
			fmt.Fprintf(w, "  messages  %d in %d conversations, %d in groups\n", c.Messages, c.Conversations, c.GroupMessages)
		}
	})
}

// backupReport is what `callsign backup create --json` prints.
type backupReport struct {
	File  string `json:"file"`
	Bytes int    `json:"bytes"`
}

func runBackupCreate(ctx context.Context, e *env, args []string, messages bool) error {
	c, err := e.clientFor(args, 1, "FILE")
	if err != nil {
		return err
	}
	path, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return &hintError{msg: fmt.Sprintf("%s exists", path), hint: "pick another name, or remove the old backup first"}
	}
	pass, err := backupPassphrase(e, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := c.Backup(ctx, api.BackupRequest{Passphrase: pass, Messages: messages})
	if err != nil {
		return err
	}
	if err := writeNewFile(path, b); err != nil {
		return err
	}
	return e.print(backupReport{File: path, Bytes: len(b)}, func(w io.Writer) {
		fmt.Fprintf(w, "wrote your backup to %s (%d bytes)\nrestore it on a new machine with: callsign up --restore %s\n", path, len(b), path)
	})
}

// writeNewFile writes b to path, which must not exist, readable by this
// user only; a file cut short by an error is removed.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return &hintError{msg: fmt.Sprintf("%s exists", path), hint: "pick another name, or remove the old backup first"}
	}
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
		return fmt.Errorf("write the backup: %w", err)
	}
	return nil
}

// backupPassphrase reads a backup's passphrase from $CALLSIGN_BACKUP_PASSPHRASE
// or, on a terminal, from the person, twice when confirm is set.
func backupPassphrase(e *env, confirm bool) (string, error) {
	if p, ok := os.LookupEnv(backupPassEnv); ok && p != "" {
		return p, nil
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !isTerminal(in) {
		return "", &hintError{msg: "no backup passphrase", hint: "set $" + backupPassEnv + ", or run the command on a terminal to type it"}
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(e.stderr)
		return strings.TrimRight(string(b), "\r\n"), err
	}
	p, err := read("backup passphrase: ")
	if err != nil {
		return "", err
	}
	if confirm {
		if len([]rune(p)) < api.MinBackupPassphrase {
			return "", &hintError{msg: fmt.Sprintf("a backup passphrase needs at least %d characters", api.MinBackupPassphrase),
				hint: "four or more words no one could guess make a good one"}
		}
		again, err := read("the same again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", &hintError{msg: "the two passphrases differ", hint: "run the command again"}
		}
	}
	return p, nil
}
