package netstat

import (
	"errors"
	"fmt"
)

// ErrFormat reports a /proc/net/snmp or snmp6 content that could not be
// parsed: a header without matching values, or a wanted value that is not
// an unsigned decimal number.
var ErrFormat = errors.New("netstat: malformed snmp file")

// OpError is a failed read of a counters file.
type OpError struct {
	Op   string // "open", "read"
	Path string
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("netstat: %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }
