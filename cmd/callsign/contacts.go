package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/callsign/callsign/api"
)

func contactsAddCommand() *command {
	var as string
	return &command{
		name: "contacts add", args: "NAME", summary: "resolve NAME and pin its key in your contacts",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&as, "as", "", "call the contact `PETNAME` (default: by its handle)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 1, "NAME")
			if err != nil {
				return err
			}
			ct, err := c.AddContact(ctx, args[0], as)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added %s (%s)\n", ct.Petname, ct.Account)
			return nil
		},
	}
}

func runContactsRm(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 1, "NAME")
	if err != nil {
		return err
	}
	if err := c.RemoveContact(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s\n", args[0])
	return nil
}

func runContactsList(ctx context.Context, e *env, args []string) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	cs, err := c.Contacts(ctx)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []api.Contact{}
	}
	return e.print(cs, func(w io.Writer) {
		if len(cs) == 0 {
			fmt.Fprintln(w, "no contacts yet; add one with: callsign contacts add NAME")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PETNAME\tHANDLE\tACCOUNT\tSTATE")
		for _, c := range cs {
			var st []string
			if c.KeyChanged {
				st = append(st, "KEY CHANGED")
			}
			if c.Verified {
				st = append(st, "verified")
			}
			if c.Following {
				st = append(st, "following")
			}
			if c.Blocked {
				st = append(st, "blocked")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Petname, c.Handle, c.Account, strings.Join(st, ","))
		}
		tw.Flush()
	})
}

func contactAction(action string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := e.clientFor(args, 1, "NAME")
		if err != nil {
			return err
		}
		var ct api.Contact
		if action == "accept" {
			ct, err = c.Accept(ctx, args[0])
		} else {
			ct, err = c.ContactAction(ctx, args[0], action)
		}
		if err != nil {
			return err
		}
		past := map[string]string{"accept": "accepted", "block": "blocked", "unblock": "unblocked", "follow": "following", "unfollow": "no longer following"}[action]
		fmt.Fprintf(e.stdout, "%s %s (%s)\n", past, ct.Petname, ct.Account)
		return nil
	}
}

func verifyCommand() *command {
	var confirmed bool
	return &command{
		name: "contacts verify", aliases: []string{"verify"}, args: "NAME", summary: "show the safety number with a contact; --confirmed marks it verified", read: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&confirmed, "confirmed", false, "you compared the number with them (in person or on a call you trust): mark the contact verified")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 1, "NAME")
			if err != nil {
				return err
			}
			s, err := c.Safety(ctx, args[0], confirmed)
			if err != nil {
				return err
			}
			return e.print(s, func(w io.Writer) {
				if s.KeyChanged {
					fmt.Fprintf(w, "WARNING: %s's key changed. This is the number for the new key.\n", s.Name)
				}
				fmt.Fprintf(w, "safety number with %s (%s):\n\n    %s\n\n", s.Name, s.Account, s.SafetyNumber)
				if s.Verified {
					fmt.Fprintln(w, "verified")
				} else {
					fmt.Fprintf(w, "compare it with %s's; if it matches, run: callsign verify %s --confirmed\n", s.Name, args[0])
				}
			})
		},
	}
}
