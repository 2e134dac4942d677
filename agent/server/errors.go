package server

import "errors"

// ErrConfig is wrapped by every configuration error of New.
var ErrConfig = errors.New("http server configuration")
