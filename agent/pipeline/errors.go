package pipeline

import "errors"

// ErrTruncatedRecord reports a capture file whose last record ends early:
// its header is there and some or all of its data is not (a capture cut
// while it was written). The frames before it were replayed.
var ErrTruncatedRecord = errors.New("capture file ends inside its last record")
