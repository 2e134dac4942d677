package mtu

import "fmt"

// OpError is a failed rtnetlink operation of Families.
type OpError struct {
	Op    string // "open", "get link"
	Index int    // interface index, 0 for "open"
	Err   error
}

func (e *OpError) Error() string {
	if e.Index != 0 {
		return fmt.Sprintf("mtu: %s %d: %v", e.Op, e.Index, e.Err)
	}
	return fmt.Sprintf("mtu: %s: %v", e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }
