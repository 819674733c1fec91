// Package cputime reads the CPU time the process has used, so benchmarks
// can report CPU per operation: on a shared, overloaded machine wall time
// mostly measures waiting for a core.
package cputime
