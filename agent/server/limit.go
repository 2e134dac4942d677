package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
)

// Limiter admits a bounded number of requests at once without queueing.
// It is safe for concurrent use.
type Limiter struct {
	name     string
	sem      chan struct{}
	rejected atomic.Uint64
}

// NewLimiter admits n requests at once (n < 1 means 1); name labels its
// metrics.
func NewLimiter(name string, n int) *Limiter {
	return &Limiter{name: name, sem: make(chan struct{}, max(n, 1))}
}

// Acquire takes a slot without waiting and reports whether it got one;
// the caller calls release once when done.
func (l *Limiter) Acquire() (release func(), ok bool) {
	select {
	case l.sem <- struct{}{}:
		var done atomic.Bool
		return func() {
			if done.CompareAndSwap(false, true) {
				<-l.sem
			}
		}, true
	default:
		l.rejected.Add(1)
		return nil, false
	}
}

// Wrap serves h within the limiter: a request beyond its capacity gets
// 429 Too Many Requests with Retry-After, before h runs.
func (l *Limiter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := l.Acquire()
		if !ok {
			Busy(w, l.Cap())
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}

// Busy answers 429 with Retry-After, saying how many requests of this kind
// run at once.
func Busy(w http.ResponseWriter, capacity int) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "too many requests of this kind at once (at most "+strconv.Itoa(capacity)+"); retry later", http.StatusTooManyRequests)
}

// Name returns the limiter's name.
func (l *Limiter) Name() string { return l.name }

// Cap returns how many requests it admits at once.
func (l *Limiter) Cap() int { return cap(l.sem) }

// InFlight returns how many requests hold a slot.
func (l *Limiter) InFlight() int { return len(l.sem) }

// Rejected returns how many requests found no slot.
func (l *Limiter) Rejected() uint64 { return l.rejected.Load() }

// Rejection counts the requests of one kind refused for a limit.
type Rejection struct {
	Kind string // label value: api, follow, capture
	N    uint64
}
