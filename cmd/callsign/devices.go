package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/pflag"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/node"
)

// The devices of one account (docs/DEVICES.md §1): `devices link` on a
// device of the account shows a code, `up --link CODE` on the new one
// takes it, and both show six digits the person compares.

func devicesLinkCommand() *command {
	history := "30"
	return &command{
		name: "devices link",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&history, "history", history, "give the new device the conversations of the last `DAYS` days, all, or none")
		},
		summary: "link a new device to your account: shows a one-time code for `callsign up --link CODE` on the new device",
		details: []string{
			"The code is good for one device within 10 minutes. Once the new device used it, both devices show the same six digits: type the ones the new device shows here (a different number declines the link: someone may be in the middle). Then the new device holds your account, handles and contacts under a device key of its own, and messages reach both.",
			"With --json the code is printed as {\"code\",\"expires\"} and the command returns at once; the link waits in the node: confirm it with `callsign devices confirm DIGITS`, follow it with `callsign devices status`.",
			"  callsign devices link",
		},
		read: true,
		run: func(ctx context.Context, e *env, args []string) error {
			days, err := historyDays(history)
			if err != nil {
				return err
			}
			return runDevicesLink(ctx, e, args, days)
		},
	}
}

// historyDays reads --history: a number of days, all (-1) or none (0).
func historyDays(s string) (int, error) {
	switch s {
	case "all":
		return -1, nil
	case "none":
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 36500 {
		return 0, usageError{msg: fmt.Sprintf("bad --history %q", s), hint: "give a number of days, all or none"}
	}
	return n, nil
}

func runDevicesLink(ctx context.Context, e *env, args []string, days int) error {
	c, err := e.clientFor(args, 0, "no arguments")
	if err != nil {
		return err
	}
	o, err := c.StartLink(ctx, api.LinkRequest{HistoryDays: &days})
	if err != nil {
		return err
	}
	if e.json {
		return e.print(o, nil)
	}
	fmt.Fprintf(e.stdout, "link code (valid until %s):\n  %s\n", o.Expires.Local().Format("15:04"), o.Code)
	if isTerminalWriter(e.stdout) {
		if q, err := qrcode.New(o.Code, qrcode.Low); err == nil {
			fmt.Fprint(e.stdout, q.ToSmallString(false))
		}
	}
	fmt.Fprintf(e.stdout, "on the new device run:\n  callsign up --link %s\n", o.Code)
	err = followLink(ctx, e, c)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C: the code must not stay usable behind the person's back.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.CancelLink(cctx)
		return errors.New("link canceled")
	}
	return err
}

// followLink shows the link's steps until it ends, asking for the digits
// the new device shows.
func followLink(ctx context.Context, e *env, c *api.Client) error {
	in := bufio.NewReader(e.stdin)
	last := ""
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := c.LinkStatus(ctx)
		if err != nil {
			return err
		}
		if st.State != last {
			last = st.State
			switch st.State {
			case api.LinkConnecting:
				fmt.Fprintln(e.stdout, "a device used the code")
			case api.LinkSAS:
				fmt.Fprintf(e.stdout, "this device shows  %s\ntype the numbers the new device shows: ", st.SAS)
				line, err := readLine(ctx, in)
				if err != nil {
					return err
				}
				if _, err := c.ConfirmLink(ctx, line); err != nil {
					return err
				}
			case api.LinkHandover:
				fmt.Fprintln(e.stdout, "confirmed: handing your account over")
			case api.LinkLinked:
				if d := st.Device; d != nil {
					fmt.Fprintf(e.stdout, "linked %s (%s): messages reach it from now on\n", d.Name, d.ID)
				} else {
					fmt.Fprintln(e.stdout, "linked")
				}
				return nil
			case api.LinkFailed:
				return &hintError{msg: "the link failed: " + st.Reason, hint: "run `callsign devices link` again"}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// readLine reads one line of in, or fails when ctx ends first.
func readLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := in.ReadString('\n')
		if err == io.EOF && s != "" {
			err = nil
		}
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err == io.EOF {
			return "", errors.New("no answer: the input ended")
		}
		return r.s, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func devicesConfirmCommand() *command {
	return &command{
		name:    "devices confirm",
		args:    "DIGITS",
		summary: "confirm a link with the six digits the new device shows (`devices link --json` started it)",
		details: []string{
			"Other digits than this device shows decline the link.",
			"  callsign devices confirm 482913",
		},
		read: true,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 1 {
				args = []string{strings.Join(args, "")} // "482 913" typed as two words
			}
			c, err := e.clientFor(args, 1, "DIGITS")
			if err != nil {
				return err
			}
			st, err := c.ConfirmLink(ctx, args[0])
			if err != nil {
				return err
			}
			return e.print(st, func(w io.Writer) { fmt.Fprintln(w, "confirmed: the account goes to the new device") })
		},
	}
}

func devicesStatusCommand() *command {
	return &command{
		name:    "devices status",
		summary: "show where the link `devices link` started is",
		read:    true,
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 0, "no arguments")
			if err != nil {
				return err
			}
			st, err := c.LinkStatus(ctx)
			if err != nil {
				return err
			}
			return e.print(st, func(w io.Writer) {
				fmt.Fprintf(w, "link: %s", st.State)
				switch {
				case st.SAS != "":
					fmt.Fprintf(w, " (this device shows %s)", st.SAS)
				case st.Reason != "":
					fmt.Fprintf(w, " (%s)", st.Reason)
				case st.Device != nil:
					fmt.Fprintf(w, " (%s, %s)", st.Device.Name, st.Device.ID)
				}
				fmt.Fprintln(w)
			})
		},
	}
}

func devicesCancelCommand() *command {
	return &command{
		name:    "devices cancel",
		summary: "cancel the link `devices link` started: its code stops working",
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 0, "no arguments")
			if err != nil {
				return err
			}
			_, err = c.CancelLink(ctx)
			return err
		},
	}
}

func devicesListCommand() *command {
	return &command{
		name:    "devices list",
		summary: "list the devices of your account",
		read:    true,
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 0, "no arguments")
			if err != nil {
				return err
			}
			ds, err := c.Devices(ctx)
			if err != nil {
				return err
			}
			return e.print(ds, func(w io.Writer) {
				for _, d := range ds {
					var notes []string
					if d.Current {
						notes = append(notes, "this device")
					}
					if d.Revoked {
						notes = append(notes, "revoked")
					}
					name := d.Name
					if name == "" {
						name = "(unnamed)"
					}
					fmt.Fprintf(w, "%s  %-20s %s\n", d.ID, name, strings.Join(notes, ", "))
				}
			})
		},
	}
}

func devicesRevokeCommand() *command {
	return &command{
		name:    "devices revoke",
		args:    "ID",
		summary: "remove a device from your account (a lost or retired one): it receives nothing new",
		details: []string{
			"ID is the device's id from `callsign devices list`, or its first 4 or more characters. The account's record then lists the device as revoked: your contacts stop encrypting to it when they next read the record and refuse what it still sends, your other devices stop copying to it, and the device, when it runs, is told and stops. Revocation is final: to use that machine again, link it anew in a new data directory.",
			"  callsign devices revoke k3vq",
		},
		read: true,
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 1, "ID")
			if err != nil {
				return err
			}
			d, err := c.RevokeDevice(ctx, args[0])
			if err != nil {
				return err
			}
			return e.print(d, func(w io.Writer) {
				fmt.Fprintf(w, "revoked %s (%s): it receives nothing new\n", d.ID, or(d.Name, "unnamed"))
			})
		},
	}
}

// or is s, or alt when s is empty.
func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// linkDevice is `up --link CODE`: it makes the data directory a new
// device of the account that shows the code, before the node starts.
func linkDevice(ctx context.Context, e *env, cfg node.Config, code, name string) error {
	in := bufio.NewReader(e.stdin)
	fmt.Fprintln(e.stderr, "linking this device to the account that shows the code…")
	la, err := node.Link(ctx, cfg, node.LinkOptions{Code: code, Name: name, ConfirmSAS: func(ctx context.Context, sas string) (bool, error) {
		fmt.Fprintf(e.stderr, "this device shows  %s\ndoes the other device show the same numbers? type them there, then answer here [y/N]: ", sas)
		line, err := readLine(ctx, in)
		if err != nil {
			return false, err
		}
		line = strings.ToLower(line)
		return line == "y" || line == "yes", nil
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "linked: this device (%s, %s) is now part of account %s\n", la.Name, la.Device, la.Account)
	return nil
}
