package links

import (
	"slices"
	"strconv"
	"sync"
)

// Unknown is what is known of an interface that is gone (or never was
// seen): its index, and the name "if<index>" by which the API, spans and
// the CLI show it.
func Unknown(idx int) Link { return Link{Index: idx, Name: "if" + strconv.Itoa(idx)} }

// Current is the one owner of a namespace's link state in the agent: fed the
// events of one Watch, it publishes the current links as a snapshot and
// wakes whoever follows changes. Everything else that needs the links (the
// path and MTU ticker, on-demand capture) reads the snapshot rather than
// listing them again. Kernel counters (Link.Stats) in the snapshot are as of
// the link's last event: read them with List.
//
// The zero value is empty and ready; it is safe for concurrent use.
type Current struct {
	mu      sync.Mutex
	m       map[int]Link
	snap    []Link // sorted by index; replaced, never modified
	seen    bool   // a Snapshot event arrived
	changed chan struct{}
}

// Apply updates the state with one event of Watch.
func (c *Current) Apply(e Event) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[int]Link{}
	}
	switch e.Type {
	case Snapshot:
		clear(c.m)
		for _, l := range e.Links {
			c.m[l.Index] = l
		}
		c.seen = true
	case Added, Changed:
		c.m[e.Link.Index] = e.Link
	case Removed:
		delete(c.m, e.Link.Index)
	}
	snap := make([]Link, 0, len(c.m))
	for _, l := range c.m {
		snap = append(snap, l)
	}
	slices.SortFunc(snap, func(a, b Link) int { return a.Index - b.Index })
	c.snap = snap
	ch := c.wakeLocked()
	c.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *Current) wakeLocked() chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{}, 1)
	}
	return c.changed
}

// Links returns the current links in index order, and whether the watch
// delivered its first snapshot yet. The slice is shared: do not modify it.
func (c *Current) Links() ([]Link, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap, c.seen
}

// Changed receives a value after one or more events were applied (one
// follower).
func (c *Current) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wakeLocked()
}
