package capture

import "unsafe"

// prefetchFrame asks the processor to start loading the four cache lines at
// p (a frame's header, its address and its first ~190 bytes) into the
// cache. It never faults: p may lie past the ring.
//
//go:noescape
func prefetchFrame(p unsafe.Pointer)
