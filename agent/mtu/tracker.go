package mtu

import (
	"slices"
	"sync"
)

// Change is what one Report changed relative to the previous one.
type Change struct {
	// Added are mismatches absent from the previous Report; Cleared those
	// present there and absent now. A mismatch whose expected or actual
	// MTU changed is cleared in its old form and added in its new one.
	// Both are in Check's order.
	Added, Cleared []Mismatch
}

// Empty reports whether nothing changed.
func (c Change) Empty() bool { return len(c.Added) == 0 && len(c.Cleared) == 0 }

// Tracker remembers the mismatches of the last Report. The zero value is
// ready to use and starts from "no mismatches". Its methods may be called
// from several goroutines.
type Tracker struct {
	mu   sync.Mutex
	last []Mismatch // sorted by compareMismatch
}

// Update records r's mismatches as the current set and returns what changed.
func (t *Tracker) Update(r Report) Change {
	cur := slices.Clone(r.Mismatches)
	slices.SortFunc(cur, compareMismatch)
	t.mu.Lock()
	defer t.mu.Unlock()
	var c Change
	for _, m := range cur {
		if !slices.Contains(t.last, m) {
			c.Added = append(c.Added, m)
		}
	}
	for _, m := range t.last {
		if !slices.Contains(cur, m) {
			c.Cleared = append(c.Cleared, m)
		}
	}
	t.last = cur
	return c
}

// Current returns a copy of the mismatches of the last Report.
func (t *Tracker) Current() []Mismatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.last)
}
