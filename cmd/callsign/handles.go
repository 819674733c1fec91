package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callsign/callsign/api"
)

func runClaim(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := c.Claim(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.print(cl, func(w io.Writer) {
		if cl.Status == "claimed" {
			fmt.Fprintf(w, "claimed @%s\n", cl.Name)
		}
	}); err != nil {
		return err
	}
	if cl.Status == "taken" {
		return &takenError{cl}
	}
	return nil
}

type takenError struct{ c api.Claim }

func (t *takenError) Error() string {
	return fmt.Sprintf("@%s is taken by %s", t.c.Name, t.c.Owner)
}
func (t *takenError) Hint() string {
	return "pick another name; a held name frees itself only if its owner stops renewing it"
}

func runHandles(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	hs, err := c.Handles(ctx)
	if err != nil {
		return err
	}
	return e.print(hs, func(w io.Writer) {
		for _, h := range hs {
			kind := "global"
			if h.SelfCert {
				kind = "self-certifying"
			}
			fmt.Fprintf(w, "@%s\t%s\n", h.Name, kind)
		}
	})
}

func runWhois(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	wi, err := c.Whois(ctx, args[0])
	if err != nil {
		return err
	}
	if err := e.print(wi, func(w io.Writer) { printWhois(w, wi) }); err != nil {
		return err
	}
	if wi.Status == "not_found" || wi.Status == "expired" {
		return fmt.Errorf("%s: %s", args[0], strings.ReplaceAll(wi.Status, "_", " "))
	}
	return nil
}

func printWhois(w io.Writer, wi api.Whois) {
	switch wi.Status {
	case "ok":
		fmt.Fprintf(w, "@%s\naccount   %s\nhandle    %s\n", wi.Name, wi.Account, wi.Handle)
		if wi.DisplayName != "" {
			fmt.Fprintf(w, "name      %s\n", wi.DisplayName)
		}
		for _, d := range wi.Devices {
			fmt.Fprintf(w, "device    %s (until %s)\n", d.Peer, d.Expires.Format(time.DateOnly))
		}
		switch {
		case wi.KeyChanged:
			fmt.Fprintf(w, "WARNING   the key differs from the one pinned in your contacts; verify before you trust it\n")
		case wi.Pinned:
			fmt.Fprintf(w, "pinned    yes (matches your contacts)\n")
		}
	case "conflict":
		fmt.Fprintf(w, "@%s: CONFLICT — the closest peers disagree about who holds this name:\n", wi.Name)
		for _, o := range wi.Owners {
			fmt.Fprintf(w, "  %s  (%d peers)\n", o.Account, o.Count)
		}
		fmt.Fprintf(w, "do not trust this name until it is resolved; ask the person for their self-certifying handle\n")
	}
	if wi.Warning != "" {
		fmt.Fprintf(w, "warning   %s\n", wi.Warning)
	}
}
