//go:build !race

package dht

// kadRace: the race detector is on, and a process's RSS is mostly its
// shadow memory.
const kadRace = false
