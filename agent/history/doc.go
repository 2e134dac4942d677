// Package history is the agent's bounded memory of recent connections: a
// ring of connection events (flow records joined with their conntrack
// translation) that the agent API queries and streams.
//
// # Events
//
// An Entry is one view of one connection at one moment: the flow table's
// record of the flow (inner tuple, hops, TCP handshake, L7 exchanges) and,
// when conntrack knew the connection, its translation (original and reply
// tuples: DNAT to a backend, SNAT), and, for a failed or unanswered
// connection, what the NetworkPolicies say of it (correlate.Policy, shared
// by pointer). Two kinds are added:
//
//   - KindFinal: the flow ended (FIN/RST and the closed timeout, idle
//     timeout, eviction or flush). No later entry of this flow follows.
//   - KindProgress: the flow is still in the flow table, and its state
//     changed since its last entry (see Progress): a first SYN still
//     unanswered, more SYN retransmissions, a SYN-ACK, a RST, a FIN, an L7
//     response or error, a new hop. These make a fault visible within one
//     progress interval, long before the flow ends (a SYN that is never
//     answered ends only at the idle timeout).
//
// A connection therefore has several entries over its life, and a DNATed
// connection has entries of two flows (the views before and after the
// DNAT, with the same conntrack ID). Readers that count connections take
// the newest entry per connection and view.
//
// # Bounds
//
// The ring holds Config.Size entries; when it is full, each new entry
// overwrites the oldest (counted in Stats.Overwritten). It allocates them
// as they arrive: 256 at first, doubled whenever all are in use, up to
// Config.Size, so a quiet node's ring stays small. An entry is a copy of a
// flow.Record plus a few fields, 832 bytes (see BenchmarkRingMemory; 64 of
// them a DNS question name): 16,384 entries, the default, take about 13 MiB
// when full.
//
// # Feeding the ring
//
// Ring.Consume is the correlate.Sink of the agent's fan-out: one KindFinal
// entry per ended record, with the translation conntrack gave it.
// RunProgress adds the KindProgress entries: every progress interval it
// snapshots the active flows, picks those whose state changed (Progress)
// and looks each up in conntrack once, and asks the policy explanation
// (its explain argument) of those whose SYN is still unanswered.
//
// # Following
//
// Subscribe returns a cursor into the ring. Add never waits for a
// subscriber: it only signals each subscriber's one-slot channel without
// blocking. A subscriber that reads more slowly than entries arrive finds,
// on its next Read, that the ring overwrote entries it had not read yet;
// Read skips to the oldest entry held and reports how many it lost (also
// summed in Stats.FollowerLost).
//
// # Concurrency
//
// Every method is safe for concurrent use. One mutex guards the ring; Add
// holds it for one copy (and allocates nothing once the ring is at its
// size); Read holds it while it
// copies the entries asked for into the caller's slice, so a reader that
// converts or encodes entries does so without the lock.
package history
