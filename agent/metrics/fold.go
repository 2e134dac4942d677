package metrics

import "sync"

// Series budget defaults: the label sets a node exports for the service and
// workload metrics before further ones are folded into an "other" series.
const (
	DefaultServiceSeries  = 150
	DefaultWorkloadSeries = 100
	DefaultEndpointSeries = 100
)

// OtherLabel is the service or workload label value of the series that
// sums the label sets beyond a budget.
const OtherLabel = "other"

// fold keeps a budget of label sets with their own series. A label set keeps
// its series, or stays folded into "other", for as long as it is reported at
// each scrape, so the counters of both stay monotonic; a set no longer
// reported frees its place. Safe for concurrent scrapes.
type fold[K comparable] struct {
	max int

	mu          sync.Mutex
	own, folded map[K]struct{}
}

func newFold[K comparable](max int) *fold[K] {
	return &fold[K]{max: max, own: map[K]struct{}{}, folded: map[K]struct{}{}}
}

// split takes this scrape's label sets, in a stable order, and returns
// those folded into "other" (nil when none are).
func (f *fold[K]) split(keys []K) map[K]struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := make(map[K]struct{}, len(keys))
	for _, k := range keys {
		seen[k] = struct{}{}
	}
	for k := range f.own {
		if _, ok := seen[k]; !ok {
			delete(f.own, k)
		}
	}
	for k := range f.folded {
		if _, ok := seen[k]; !ok {
			delete(f.folded, k)
		}
	}
	for _, k := range keys {
		if _, ok := f.own[k]; ok {
			continue
		}
		if _, ok := f.folded[k]; ok {
			continue
		}
		if len(f.own) < f.max {
			f.own[k] = struct{}{}
		} else {
			f.folded[k] = struct{}{}
		}
	}
	if len(f.folded) == 0 {
		return nil
	}
	out := make(map[K]struct{}, len(f.folded))
	for k := range f.folded {
		out[k] = struct{}{}
	}
	return out
}
