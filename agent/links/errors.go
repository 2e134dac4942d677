package links

import (
	"errors"
	"fmt"
)

// ErrMessage reports an rtnetlink message that could not be decoded.
var ErrMessage = errors.New("links: malformed rtnetlink message")

// OpError is a failed rtnetlink operation.
type OpError struct {
	Op  string // "dial", "dump links", "dump routes", "receive"
	Err error
}

func (e *OpError) Error() string { return fmt.Sprintf("links: %s: %v", e.Op, e.Err) }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }
