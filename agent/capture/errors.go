package capture

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Run and Stats after Close.
	ErrClosed = errors.New("capture: ring closed")
	// ErrBusy is returned by Run when another goroutine is running it.
	ErrBusy = errors.New("capture: ring already being read")
	// ErrFilter reports a malformed BPF filter text or program.
	ErrFilter = errors.New("capture: invalid BPF filter")
	// ErrConfig reports an invalid ring configuration.
	ErrConfig = errors.New("capture: invalid configuration")
)

// OpError is a failed system call on a ring, with the operation that failed.
type OpError struct {
	Op      string // "socket", "setsockopt PACKET_RX_RING", "bind", "mmap", "poll", ...
	IfIndex int
	Err     error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("capture: %s (ifindex %d): %v", e.Op, e.IfIndex, e.Err)
}

// Unwrap returns the underlying error (usually a syscall.Errno).
func (e *OpError) Unwrap() error { return e.Err }
