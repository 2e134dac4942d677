//go:build !amd64

package capture

import "unsafe"

func prefetchFrame(unsafe.Pointer) {}
