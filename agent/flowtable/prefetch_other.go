//go:build !amd64

package flowtable

import "unsafe"

func prefetch(unsafe.Pointer)  {}
func prefetch2(unsafe.Pointer) {}
