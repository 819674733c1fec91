package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/callsign/callsign/api"
	"github.com/callsign/callsign/node"
)

func versionCommand() *command {
	return &command{
		name: "version", read: true, run: runVersion,
		summary: "show the version of this program and of the node running for the data directory, if one runs",
	}
}

// versions is what `callsign version --json` prints.
type versions struct {
	CLI  string `json:"cli"`
	Node string `json:"node,omitempty"` // empty when no node runs
}

func runVersion(ctx context.Context, e *env, args []string) error {
	if err := needArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	v := versions{CLI: node.Version}
	running, err := e.nodeVersion(ctx, &v.Node)
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: cannot ask the node for its version: %s\n", oneLine(err.Error()))
	}
	return e.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "cli   %s\n", v.CLI)
		switch {
		case v.Node != "":
			fmt.Fprintf(w, "node  %s\n", v.Node)
		case !running && err == nil:
			fmt.Fprintf(w, "node  not running (data directory %s)\n", e.data)
		}
	})
}

// nodeVersion asks the node of the data directory for its version. No
// node running is not an error: running is false and out stays empty.
func (e *env) nodeVersion(ctx context.Context, out *string) (running bool, err error) {
	c, err := e.api()
	if api.IsCode(err, api.CodeUnavailable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	switch {
	case api.IsCode(err, api.CodeUnavailable):
		return false, nil
	case err != nil:
		return false, err
	}
	*out = st.Version
	if *out == "" {
		*out = "unknown" // a node from before Status had a version
	}
	return true, nil
}
