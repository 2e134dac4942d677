package flowtable

import "unsafe"

// prefetch asks the processor to start loading the cache line at p. It
// never faults and reads nothing in Go's sense.
//
//go:noescape
func prefetch(p unsafe.Pointer)

// prefetch2 is prefetch of the two cache lines from p.
//
//go:noescape
func prefetch2(p unsafe.Pointer)
