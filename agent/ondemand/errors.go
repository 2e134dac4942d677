package ondemand

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them, so
// callers classify with errors.Is (the agent's handler maps them to HTTP
// status codes).
var (
	// ErrFilter is a filter expression that does not parse, that can never
	// match, or that does not fit a classic BPF program. Its message names
	// the column of the offending token or term and quotes at most a short
	// prefix of it, never the whole expression. Every filter error wraps
	// it; ErrFilterTooLarge and ErrFilterNeverMatches are finer classes.
	ErrFilter = errors.New("invalid filter")
	// ErrFilterTooLarge is a filter longer than MaxFilterLen, nested deeper
	// than MaxFilterDepth, or compiling to more than MaxFilterInsns
	// instructions. Errors wrapping it also wrap ErrFilter.
	ErrFilterTooLarge = errors.New("filter too large")
	// ErrFilterNeverMatches is a filter that rejects every packet, such as
	// "tcp and udp" (tcpdump refuses these too). Errors wrapping it also
	// wrap ErrFilter.
	ErrFilterNeverMatches = errors.New("filter rejects all packets")
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
