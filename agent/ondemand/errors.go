package ondemand

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers classify with errors.Is (the agent's handler maps them to HTTP
// status codes).
var (
	// ErrFilter is a filter expression that does not parse, or that does
	// not fit a classic BPF program. Its message names the position.
	ErrFilter = errors.New("invalid filter")
	// ErrBusy is returned by Limiter.Acquire when the agent already runs
	// its maximum number of captures.
	ErrBusy = errors.New("too many captures in progress")
	// ErrNoInterface is a capture whose interface selection matches no
	// interface of the namespace.
	ErrNoInterface = errors.New("no interface matches")
	// ErrLimits is a request whose limits are malformed (negative, or a
	// bad interface pattern).
	ErrLimits = errors.New("invalid capture limits")
)
