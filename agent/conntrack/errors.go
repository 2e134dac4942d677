package conntrack

import "errors"

// Decoding errors of ctnetlink messages, counted by the Watcher as parse
// errors.
var (
	errShortMsg   = errors.New("ctnetlink: message shorter than its header")
	errShortAttr  = errors.New("ctnetlink: truncated attribute header")
	errBadAttrLen = errors.New("ctnetlink: attribute length out of range")
	errNoTuple    = errors.New("ctnetlink: flow message without an original tuple")
	errFamilies   = errors.New("ctnetlink: original and reply tuples of different address families")
)

var (
	// ErrClosed reports use of a Watcher after Close.
	ErrClosed = errors.New("conntrack: watcher closed")
	// ErrTimeout reports a netlink query that did not answer within its
	// deadline (see Config.QueryTimeout). A library regression that makes
	// the global stats query block shows up as this error.
	ErrTimeout = errors.New("conntrack: netlink query timed out")
	// ErrNetlink reports an error message from the kernel in answer to a
	// request; the wrapped error is the errno.
	ErrNetlink = errors.New("conntrack: netlink error reply")
)
