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
	for o4, n := range t.n4 {
		e := n.entry(uint8(o4.proto))
		if !rangeDNAT(o4.key(), &e, fn) {
			return
		}
	}
	for _, ok := range t.nat6 {
		e, found := t.m6[ok]
		if found && !rangeDNAT(ok, &e, fn) {
			return
		}
	}
}

// rangeDNAT calls fn with the entry if its destination was translated and
// returns false if fn did.
func rangeDNAT(k key, e *entry, fn func(n *NAT) bool) bool {
	n := natOf(k, e, MatchOriginal)
	return !n.DNAT() || fn(&n)
}
