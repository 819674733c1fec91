//go:build !race

package dht

// churnRace: the race detector is on, and the churn simulation samples
// fewer readers and names.
const churnRace = false
