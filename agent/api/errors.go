package api

import "errors"

// Errors of the client.
var (
	// ErrConfig is wrapped by NewClient for a configuration it cannot use.
	ErrConfig = errors.New("api: invalid client configuration")
	// ErrUnreachable is wrapped when the agent could not be reached.
	ErrUnreachable = errors.New("agent unreachable")
	// ErrBadResponse is wrapped when the agent's answer does not decode.
	ErrBadResponse = errors.New("malformed answer")
	// ErrStreamEnded is wrapped when the agent closed a follow stream (it
	// stopped, or dropped this follower for reading too slowly).
	ErrStreamEnded = errors.New("stream ended by the agent")
)
