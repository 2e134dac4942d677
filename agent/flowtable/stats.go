package flowtable

import (
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// LatencyBounds are the upper bounds, in seconds, of the buckets of every
// latency histogram of the table (handshake RTT, DNS, HTTP). A last,
// unbounded bucket follows them. Read only.
var LatencyBounds = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// NumBuckets is the number of buckets of a Histogram: one per bound in
// LatencyBounds plus the unbounded one.
const NumBuckets = 19

var boundsNS = func() [NumBuckets - 1]int64 {
	var b [NumBuckets - 1]int64
	if len(LatencyBounds) != len(b) {
		panic("flowtable: LatencyBounds and NumBuckets disagree")
	}
	for i, s := range LatencyBounds {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

// Histogram is a snapshot of one latency histogram.
type Histogram struct {
	// Counts holds the number of observations per bucket (not cumulative):
	// Counts[i] counts values above LatencyBounds[i-1] and at most
	// LatencyBounds[i]; Counts[NumBuckets-1] counts values above the last
	// bound.
	Counts [NumBuckets]uint64
	// Count is the number of observations, Sum their sum in seconds.
	Count uint64
	Sum   float64
}

// Cumulative returns the count of observations at most LatencyBounds[i]
// for each bound, as Prometheus histograms expose them.
func (h *Histogram) Cumulative() [NumBuckets - 1]uint64 {
	var c [NumBuckets - 1]uint64
	var n uint64
	for i := range c {
		n += h.Counts[i]
		c[i] = n
	}
	return c
}

// Stats is a snapshot of the table's counters, summed over shards. Counters
// only grow; Entries and Capacity are gauges.
type Stats struct {
	// Entries is the number of flows held, Capacity the bound on it, and
	// Allocated the entries allocated for them (the table grows by doubling
	// as flows arrive and shrinks as they end).
	Entries   int64
	Capacity  int
	Allocated int64
	// Inserts counts flows added. Evictions counts flows removed to make
	// room for a new one; Refused counts new flows not added because the
	// shard was full of recently active two-sided flows (their packets
	// are not counted anywhere in the table). Expired counts flows removed
	// by idle timeout, Flushed those removed by Flush.
	Inserts, Evictions, Refused, Expired, Flushed uint64
	// EvictedLost counts evicted flows whose record was not reported
	// because the shard's evicted buffer was full.
	EvictedLost uint64
	// Records counts records handed to OnRecords (or dropped for lack of
	// one), final and active reports alike.
	Records uint64
	// HopOverflows counts packets seen on an interface beyond the first
	// flow.MaxHops of their flow.
	HopOverflows uint64
	// Retransmits counts TCP retransmissions: repeated SYNs at the
	// handshake interface, and each time a flow's largest per-hop count of
	// retransmitted segments of one side grows (a segment retransmitted
	// once and seen on three hops counts once).
	Retransmits uint64
	// Handshakes counts TCP handshakes timed; the latency histograms count
	// each measured exchange once.
	Handshakes uint64
	// Outcomes counts flows removed from the table (final records,
	// reported or lost) by outcome.
	Outcomes [flow.NumOutcomes]uint64
	// Requests counts L7 request messages (DNS queries, HTTP requests) and
	// Responses L7 response messages by code class (see CodeClass), each
	// once: at the first interface its flow's L7 messages were seen on,
	// however many hops carried it. Indexed by flow.App.
	Requests  [NumApps]uint64
	Responses [NumApps][NumCodeClasses]uint64
	// HandshakeRTT observes SYN → ACK at the handshake interface (see
	// flow.TCP.HandshakeRTT); DNSLatency and HTTPLatency observe the
	// request → response time of matched exchanges.
	HandshakeRTT, DNSLatency, HTTPLatency Histogram
}

// counters are a shard's counters. Writers hold the shard lock; readers
// (Stats) read them without it, hence the atomics.
type counters struct {
	active, allocated                                          atomic.Int64
	inserts, evictions, refused, expired, flushed, evictedLost atomic.Uint64
	records, hopOverflows, retransmits                         atomic.Uint64
	outcomes                                                   [flow.NumOutcomes]atomic.Uint64
	handshake, dns, http                                       histogram
	requests                                                   [NumApps]atomic.Uint64
	responses                                                  [NumApps][NumCodeClasses]atomic.Uint64
}

// NumApps sizes the per-application arrays of Stats (indexed by flow.App).
const NumApps = 3

// NumCodeClasses is the number of response code classes: for DNS the rcode
// 0..15 itself, for HTTP the status class 1xx..5xx in slots 1..5 and any
// other status in slot 0.
const NumCodeClasses = 16

// CodeClass returns the response slot of a DNS rcode or an HTTP status.
func CodeClass(app flow.App, code uint16) int {
	if app == flow.AppHTTP {
		if code >= 100 && code < 600 {
			return int(code / 100)
		}
		return 0
	}
	return int(code & 15)
}

// histogram is a shard's part of one latency histogram.
type histogram struct {
	counts [NumBuckets]atomic.Uint64
	sumNS  atomic.Int64
}

func (h *histogram) observe(d int64) {
	if d < 0 {
		d = 0
	}
	i := 0
	for i < len(boundsNS) && d > boundsNS[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNS.Add(d)
}

func (h *histogram) addTo(dst *Histogram) {
	for i := range h.counts {
		n := h.counts[i].Load()
		dst.Counts[i] += n
		dst.Count += n
	}
	dst.Sum += time.Duration(h.sumNS.Load()).Seconds()
}

func (c *counters) addTo(s *Stats) {
	s.Entries += c.active.Load()
	s.Allocated += c.allocated.Load()
	s.Inserts += c.inserts.Load()
	s.Evictions += c.evictions.Load()
	s.Refused += c.refused.Load()
	s.Expired += c.expired.Load()
	s.Flushed += c.flushed.Load()
	s.EvictedLost += c.evictedLost.Load()
	s.Records += c.records.Load()
	s.HopOverflows += c.hopOverflows.Load()
	s.Retransmits += c.retransmits.Load()
	for i := range c.outcomes {
		s.Outcomes[i] += c.outcomes[i].Load()
	}
	for a := range c.requests {
		s.Requests[a] += c.requests[a].Load()
		for k := range c.responses[a] {
			s.Responses[a][k] += c.responses[a][k].Load()
		}
	}
	c.handshake.addTo(&s.HandshakeRTT)
	c.dns.addTo(&s.DNSLatency)
	c.http.addTo(&s.HTTPLatency)
	s.Handshakes = s.HandshakeRTT.Count
}
