package main

import (
	"fmt"
	"io"
	"time"

	"github.com/callsign/callsign/api"
)

// printTURN shows a public node's TURN relay in `callsign status`: where
// members reach it, what it holds and the limits it holds it to.
func printTURN(w io.Writer, st api.Status) {
	r := st.TURN
	if r == nil {
		return
	}
	for _, u := range r.URLs {
		fmt.Fprintf(w, "turn           %s\n", u)
	}
	if r.TLSCertSHA256 != "" {
		fmt.Fprintf(w, "turn tls pin   sha256 %s\n", r.TLSCertSHA256)
	}
	fmt.Fprintf(w, "turn in use    %d of %d allocations, %d TCP/TLS connections\n", r.Allocations, r.MaxAllocations, r.Connections)
	fmt.Fprintf(w, "turn limits    %d allocations per member device, %d per IP; an unrefreshed allocation ends after %s\n",
		r.MaxAllocationsPerUser, r.MaxAllocationsPerIP, time.Duration(r.AllocationLifetimeS)*time.Second)
}
