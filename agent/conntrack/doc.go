// Package conntrack observes the kernel's connection tracking table of one
// network namespace over netlink: a dump, the event subscription and the
// global and per-CPU statistics. It never writes to the table: no flush, no
// delete, no update, no counter reset.
//
// # Watcher
//
// Open starts a Watcher: it subscribes to the NEW, UPDATE and DESTROY event
// groups, dumps the table into an in-memory copy keyed by original tuple
// and zone, and samples the statistics every Config.StatsInterval (the
// global stats query gives the namespace's entry count and
// nf_conntrack_max, the per-CPU query the counters of `conntrack -S`,
// clash_resolve and chaintoolong included). Nothing reads /proc, so it
// works on kernels built without NF_CONNTRACK_PROCFS.
//
// # Snapshot and NAT lookup
//
// Snapshot returns a plain value for the metrics layer to read at scrape
// time: entries, limit, fill ratio, the summed and per-CPU counters,
// entries by protocol, TCP state, assured and unreplied, the growth rate
// (an exponentially weighted average over the samples) and the time to
// exhaustion at that rate, the top sources and destination services by
// entries held, and the Watcher's own health (events by type, events lost,
// resyncs, the last dump's duration).
//
// Lookup maps a flow key seen on the wire, in either direction and on
// either side of a NAT, to the entry's original and reply tuples, so that a
// capture of client→ClusterIP before DNAT and of client→pod after it join on
// the same original tuple (see Match).
//
// # Event loss
//
// The kernel drops events when the event socket's receive queue is full
// and reports it once with ENOBUFS. The Watcher sizes the queue
// (Config.ReadBuffer, SO_RCVBUFFORCE when allowed), reads and applies each
// event without allocating, counts exactly the events the kernel dropped
// (the socket's SO_MEMINFO drop counter, also checked at every stats sample
// because events dropped after the ENOBUFS was read raise no new error),
// and resyncs the table with a dump once the overflow storm calms
// (200 ms without a new loss, at most 2 s after the first). The socket
// stays usable after ENOBUFS, so it is kept; any other read error reopens
// it and resyncs. Events that arrive during a dump are reconciled with it
// (see table): the copy converges to the kernel's table.
//
// # Netlink library
//
// github.com/mdlayher/netlink is pinned to v1.9.0: later versions never
// return from the global stats query (a multi-part answer followed by an
// ACK without DONE). Every stats query runs under Config.QueryTimeout, and
// TestStats fails, rather than hangs, if the library regresses.
//
// # Concurrency and memory
//
// One goroutine reads events, one runs dumps, one samples stats; the table
// is guarded by a RWMutex held per event, per dump batch and for the
// Snapshot scan. The table keeps of each entry what lookups and counts
// need, pointer-free (so the garbage collector does not scan it) and by
// kind: an IPv4 entry without NAT, most of a node's table, in 32 bytes of
// map key and value (its reply tuple is the original reversed); an IPv4
// entry with NAT in 44 bytes and 32 more for the index of its reply tuple;
// IPv6 entries in full. Counts by protocol, TCP state, assured, unreplied
// and NATed are kept up to date by every write; the top sources and
// services are counted exactly at Snapshot, by sorting the entries' packed
// keys (12 bytes per entry while it runs). The first dump fills a table
// sized from the kernel's entry count, so it does not grow while it fills:
// a process holding 260,000 entries peaks at about 32 MiB RSS (35 MiB with
// a Snapshot with top lists), against 83 MiB when every entry was kept in
// full (see bench/README.md).
package conntrack
