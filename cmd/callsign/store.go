package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/callsign/callsign/node"
)

func storeVerifyCommand() *command {
	return &command{
		name:    "store verify",
		summary: "check the store of a stopped node for damage and name what is damaged",
		details: []string{
			"Reads every table block and every entry of the data directory's store: each value must authenticate under its key and decode, and each message must match its index entry. It prints each damaged item (which message of which conversation, which contact, which block of which file) and exits 1 if there is any.",
			"The node must be stopped. A store protected by a passphrase needs $CALLSIGN_PASSPHRASE, as `callsign up` does. The store is opened as `callsign up` opens it (an older store is upgraded first); the check itself writes nothing.",
		},
		read: true,
		run:  runStoreVerify,
	}
}

// storeReport is what `callsign store verify --json` prints.
type storeReport struct {
	Damage []node.StoreDamage `json:"damage"`
	Stats  node.StoreStats    `json:"stats"`
}

func runStoreVerify(ctx context.Context, e *env, args []string) error {
	if err := needArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	var pass []byte
	if p, ok := os.LookupEnv("CALLSIGN_PASSPHRASE"); ok && p != "" {
		pass = []byte(p)
	}
	rep := storeReport{Damage: []node.StoreDamage{}}
	st, err := node.VerifyStore(ctx, e.data, pass, func(d node.StoreDamage) {
		rep.Damage = append(rep.Damage, d)
		if !e.json {
			fmt.Fprintf(e.stdout, "damaged: %s\n", d)
		}
	})
	if err != nil {
		return err
	}
	rep.Stats = st
	if err := e.print(rep, func(w io.Writer) {
		fmt.Fprintf(w, "checked %d entries and %d table files in %s\n", st.Entries, st.Tables, e.data)
		if st.Partial != "" {
			fmt.Fprintf(w, "not checked: %s\n", st.Partial)
		}
	}); err != nil {
		return err
	}
	if st.Damaged > 0 {
		return &hintError{
			msg:  fmt.Sprintf("the store has %d damaged item(s)", st.Damaged),
			hint: "keep a copy of the data directory before changing anything",
		}
	}
	return nil
}
