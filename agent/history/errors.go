package history

import "errors"

// errConfig is wrapped by New for a Config it cannot use.
var errConfig = errors.New("history: invalid config")

// ErrConfig reports whether err is a Config that New refused.
func ErrConfig(err error) bool { return errors.Is(err, errConfig) }
