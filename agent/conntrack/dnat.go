package conntrack

// RangeDNAT calls fn with every entry of the table (not the recently
// destroyed ones Lookup still finds) whose destination was translated, in
// no particular order, until fn returns false. It holds the table's read
// lock meanwhile: fn must be quick and must not call the Watcher. The cost
// is one pass over the NATed entries, for scrape-time checks such as stale
// DNAT entries.
func (w *Watcher) RangeDNAT(fn func(n *NAT) bool) {
	t := w.tab
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, k := range t.nat {
		e, ok := t.m[k]
		if !ok {
			continue
		}
		n := natOf(k, &e, MatchOriginal)
		if n.DNAT() && !fn(&n) {
			return
		}
	}
}
