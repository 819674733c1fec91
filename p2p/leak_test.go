package p2p_test

import "go.uber.org/goleak"

// libp2pGlobals are goroutines go-libp2p and its dependencies start once per
// process and never stop; they are not owned by any host.
var libp2pGlobals = []goleak.Option{}
