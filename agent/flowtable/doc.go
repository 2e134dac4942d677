// Package flowtable is the agent's bounded, sharded table of flows and their
// per-interface observations, with idle timeouts and counted evictions.
//
// The per-packet pipeline fills a flow.Packet for each decoded frame and
// calls Table.Update; a sweeper (Table.Run, or Table.Sweep driven by the
// capture clock in a replay) removes idle flows and hands their flow.Record
// values to Config.OnRecords in batches; Table.Stats gives the counters and
// latency histograms a Prometheus collector reads at scrape time.
//
// # Flows, sides and hops
//
// A flow is identified by its transport tuple with both directions folded
// into one entry (IPv6 zones are not part of the identity). The client is
// the sender of the first SYN (or the receiver of a SYN-ACK); without a
// handshake it is the sender of the first packet, unless that packet is a
// DNS or HTTP response, or is sent from a port below 32768 to one at or
// above it (then the receiver). Records are oriented client → server and
// count by sending side (flow.FromClient, flow.FromServer).
//
// Each interface a flow is seen on is one hop (up to flow.MaxHops, in the
// order the table first saw them; packets on more interfaces are counted
// in Record.HopOverflow). A hop has its own packets, bytes, first/last
// times, retransmissions and zero windows: one segment crossing three
// interfaces is three packets, one per hop, not three retransmissions.
// A hop's First is the time of the first packet the table processed there.
//
// # TCP
//
// The handshake is timed at one interface, the one where the table first
// saw the client's SYN: SYN → SYN-ACK is the server side of the round trip
// from that point (flow.TCP.ServerRTT), SYN-ACK → ACK the client side
// (ClientRTT); the histogram in Stats.HandshakeRTT observes their sum
// (HandshakeRTT), once per connection. A repeated SYN with the same initial
// sequence number at that interface is a SYN retransmission. A data segment
// that starts before the highest sequence number already seen from its
// side at the same interface counts as a retransmission (reordering too; a
// one-byte keep-alive does not). The outcome (flow.Outcome) follows from
// SYN, SYN-ACK, RST and FIN: a SYN answered by a RST is refused, a SYN
// without answer when the flow ends is a timeout, a RST before FINs from
// both sides after the handshake is a reset.
//
// A new connection reusing the tuple of a flow still in the table (a new
// SYN with another sequence number) is accounted to the old flow; the
// short timeout of closed flows (Config.ClosedTimeout) keeps this rare.
//
// # Counts from a kernel filter
//
// With the capture's eBPF fast path, the frames of established TCP flows
// that change nothing but counters never reach the table as packets; the
// capture's workers hand their counts to Merge (flow.Counted: one flow
// direction at one interface), which adds packets, bytes and the last time
// to the hop and side, ACK and PSH to the flow's flags, and the data
// retransmissions the filter counted, adding the flow (and the hop) when it
// is not in the table yet. Packets marked flow.Packet.FilterSeq have their
// data retransmissions counted by the filter: the table follows their
// sequence numbers (for L7 retransmissions) but does not count them.
//
// # DNS and HTTP
//
// L7 messages are matched at one interface, the first one an L7 message of
// the flow was seen on, so the same message seen on several hops counts
// once. Over TCP, a message in a segment that repeats data already seen at
// that interface (it starts before the highest sequence number seen in its
// direction, modulo 2^32) is a retransmission and is not counted again; a
// segment captured out of order, after a later one, is taken for one too.
// DNS responses match queries by message ID (up to four queries
// outstanding per flow), HTTP/1.x responses match requests in order (up to
// four pipelined). A matched exchange gives a latency, observed in
// Stats.DNSLatency or Stats.HTTPLatency, and its rcode or status; records
// keep the first flow.MaxExchanges exchanges (and the first failed one).
//
// A DNS flow keeps one question name: that of its first DNS message with a
// question (flow.AppInfo.Name, at most flow.MaxDNSName bytes, truncation
// flagged). Resolvers (glibc, musl, Go) open a socket per lookup, so a
// client's flow asks for one name, A and AAAA alike; a query for another
// name (a forwarder's long-lived socket) marks its exchange
// flow.Exchange.OtherName instead of storing a second name. Names compare
// case-insensitively (ASCII), as DNS does. One name per flow costs 64
// bytes of an entry (one cache line); a name per exchange would cost four
// times that.
//
// # Bounds and eviction
//
// The table holds at most Config.MaxEntries flows, split evenly over
// Config.Shards shards (so one shard may fill before the table does).
// Update allocates only when a shard's array doubles (a few times per
// shard as the table fills); it allocates nothing to update a flow, to add
// one to a shard with room, or to evict one. When a new flow finds its shard
// full, the table looks at Config.EvictSample entries and evicts one:
// a one-sided flow (no answer yet, the shape of a scan or a spoofed flood)
// before a two-sided one, the least recently seen among equals. A
// two-sided flow seen within Config.EvictProtect is never evicted; the new
// flow is refused instead and counted in Stats.Refused. Evicted flows are
// reported at the next sweep (End == flow.EndEvicted) as far as a small
// per-shard buffer holds them; the rest are counted in Stats.EvictedLost.
//
// # Memory
//
// An entry takes 768 bytes and its index slots 16 more: 49 MiB when the
// table holds the default 65,536 flows (DefaultMaxEntries). A shard starts
// with 16 entries and doubles its array (and rebuilds its index) when all
// are in use, up to its share of MaxEntries; once per 30 s (in the
// packets' clock) a sweep halves it while the most flows it held in that
// time filled at most a quarter, so a steady churn of short flows does not
// reallocate at every sweep. So the table's memory follows the flows
// held (about 8 to 15 MiB with 10,000 flows) rather than the bound, and a
// flood's entries are given back once its flows have expired. Stats.Allocated
// counts the entries allocated. Entries hold no pointers, so the garbage
// collector never scans the table. An established flow's packet reads and
// writes two cache lines of its entry (the key line, with the times and
// state bytes, and the line of its hop, which for the first hop is the next one) and one index
// slot, or with UpdateHinted one slot of the writer's 8 KiB of hints.
//
// # Concurrency
//
// Every method is safe for concurrent use. Update locks only the shard of
// its flow, for the few dozen nanoseconds an update takes; nothing takes a
// global lock. A writer that keeps its own Hints (a capture worker: one per
// ring) calls UpdateHinted instead: its hints remember where its recent
// flows' entries are, so the update goes to the entry without probing the
// shard's index (the hint is checked against the entry's key under the
// lock). Flows seen on several interfaces are updated by several workers,
// so the shard lock stays. UpdateBatch takes a writer's packets in a batch
// and locks each shard once per batch rather than once per packet (the
// packets grouped by shard, in order within each); it gives the same
// result as UpdateHinted on each packet, and costs about the same (its
// grouping passes cost what the locks it saves did; see bench/README.md). Sweeps lock one shard at a time and never call
// OnRecords while holding a lock; one sweep runs at a time. Stats takes no
// lock and reads per-shard atomic counters.
//
// # Time
//
// The table's clock is the packets' capture time (flow.Packet.Time): Sweep
// takes "now" in the same clock, so a replayed capture ages its flows by
// its own timestamps. Run sweeps with the wall clock.
package flowtable
