package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"
	"os/exec"
	"runtime"
	"time"

	"github.com/callsign/callsign/api"
)

func webCommand() *command {
	var open bool
	return &command{
		name:    "web",
		summary: "print a link that signs a browser in to the web app (once)",
		details: []string{
			fmt.Sprintf("Asks the running node for a one-time sign-in ticket and prints the web app's address with it. "+
				"The first browser to open the link within %d minutes is signed in; after that the link is spent. "+
				"`callsign up` prints one such link when it starts.", int(api.TicketTTL/time.Minute)),
			"With --open the link goes to your default browser (xdg-open, or open on macOS) instead. " +
				"Other users of this machine can see the command lines of your programs for a moment: on a shared machine, print the link and paste it into the browser.",
		},
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&open, "open", false, "open the link in the default browser instead of printing it")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := e.clientFor(args, 0, "no arguments")
			if err != nil {
				return err
			}
			tk, err := c.NewTicket(ctx)
			if err != nil {
				return err
			}
			if !open {
				fmt.Fprintln(e.stdout, tk.URL)
				return nil
			}
			opener := "xdg-open"
			if runtime.GOOS == "darwin" {
				opener = "open"
			}
			// Its output is not shown: it may repeat the link.
			if err := exec.CommandContext(ctx, opener, tk.URL).Run(); err != nil {
				return &hintError{
					msg:  fmt.Sprintf("could not open a browser with %s: %v", opener, err),
					hint: "run `callsign web` without --open and open the link it prints",
				}
			}
			fmt.Fprintln(e.stderr, "opened the web app in your browser")
			return nil
		},
	}
}
