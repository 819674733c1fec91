//go:build !race

package dht

// squatRace: the race detector is on, and the squat test runs its largest
// case only.
const squatRace = false
