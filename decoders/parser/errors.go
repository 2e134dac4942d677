package parser

import "errors"

// Configuration errors returned by New.
var (
	ErrTooManyPorts  = errors.New("parser: more than 8 ports in a port set")
	ErrBadPort       = errors.New("parser: port 0 in a port set")
	ErrBadMaxTunnels = errors.New("parser: negative MaxTunnels")
)
