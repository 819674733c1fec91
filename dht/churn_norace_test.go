//go:build !race

package dht

// churnRace: the race detector is on, and TestChurn leaves its run to the
// suite without it.
const churnRace = false
