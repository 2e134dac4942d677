package pipeline

import "sync"

// Set is the group of live workers whose counters a scrape sums. Counters of
// workers that are removed (their interface went away) are kept, so that
// every total stays monotonic.
type Set struct {
	mu      sync.Mutex
	workers map[*Worker]struct{}
	retired Counters
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{workers: make(map[*Worker]struct{})} }

// Add adds w to the set.
func (s *Set) Add(w *Worker) {
	s.mu.Lock()
	s.workers[w] = struct{}{}
	s.mu.Unlock()
}

// Remove removes w, folding its published counters into the set's totals.
// The worker must have published its last counters (its goroutine has
// stopped after a final Publish).
func (s *Set) Remove(w *Worker) {
	s.mu.Lock()
	if _, ok := s.workers[w]; ok {
		delete(s.workers, w)
		w.AddTo(&s.retired)
	}
	s.mu.Unlock()
}

// Len returns the number of live workers.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.workers)
}

// Sum returns the sum of every worker's published counters, live and
// removed.
func (s *Set) Sum() *Counters {
	c := new(Counters)
	s.mu.Lock()
	c.Add(&s.retired)
	for w := range s.workers {
		w.AddTo(c)
	}
	s.mu.Unlock()
	return c
}
