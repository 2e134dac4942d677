package conntrack

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Snapshot is a consistent, read-only view of the table's health and of the
// Watcher's own, taken by Watcher.Snapshot. It is a plain value: the caller
// owns it, and nothing in it changes after it is returned.
type Snapshot struct {
	// Sampled is when the kernel counters below were last read (every
	// Config.StatsInterval). Zero before the first sample.
	Sampled time.Time
	// Entries is the kernel's count of entries in the namespace and Limit
	// the global nf_conntrack_max, from the global stats query.
	Entries, Limit int
	// FillRatio is Entries/Limit (0 when Limit is unknown).
	FillRatio float64
	// Stats sums PerCPU; PerCPU holds one element per possible CPU.
	Stats  CPUStats
	PerCPU []CPUStats

	// GrowthRate is the net change of Entries per second, an exponentially
	// weighted moving average over the stats samples (time constant
	// Config.RateWindow). Negative when the table shrinks.
	GrowthRate float64
	// ExhaustionETA is the number of seconds until Entries reaches Limit at
	// GrowthRate: (Limit-Entries)/GrowthRate, 0 when full, +Inf when the
	// table is not growing.
	ExhaustionETA float64

	// Tracked is the number of entries in the Watcher's own copy of the
	// table. It equals Entries once events have been applied, up to the
	// entries created or destroyed since.
	Tracked int
	// ByProtocol counts tracked entries by IP protocol name ("tcp", "udp",
	// "icmp", "icmpv6", "sctp" or the decimal number).
	ByProtocol map[string]int
	// ByTCPState counts tracked TCP entries by state name (TCPState.String).
	ByTCPState map[string]int
	// Assured counts entries with the ASSURED bit, Unreplied those that have
	// not seen a reply, NATed those whose reply tuple is not the reverse of
	// the original (DNAT or SNAT).
	Assured, Unreplied, NATed int
	// TopSources are the original-direction source addresses holding the
	// most tracked entries (port 0), TopServices the original-direction
	// destinations (address:port and protocol; port 0 for ICMP), at most
	// Config.TopN each, largest first.
	TopSources, TopServices []Holder

	// Health is the Watcher's own accounting.
	Health Health
}

// Holder is an address (a source, or a destination service) and the number
// of tracked entries it holds.
type Holder struct {
	Addr    netip.AddrPort
	Proto   uint8 // IP protocol, for services; 0 for sources
	Entries int
}

// CPUStats are the kernel's per-CPU conntrack counters
// (IPCTNL_MSG_CT_GET_STATS_CPU; the columns of `conntrack -S`). They count
// since boot and only grow.
type CPUStats struct {
	CPU           int
	Found         uint64
	Invalid       uint64
	Insert        uint64
	InsertFailed  uint64
	Drop          uint64
	EarlyDrop     uint64
	Error         uint64
	SearchRestart uint64
	ClashResolve  uint64
	ChainTooLong  uint64
}

func (s *CPUStats) addTo(t *CPUStats) {
	t.Found += s.Found
	t.Invalid += s.Invalid
	t.Insert += s.Insert
	t.InsertFailed += s.InsertFailed
	t.Drop += s.Drop
	t.EarlyDrop += s.EarlyDrop
	t.Error += s.Error
	t.SearchRestart += s.SearchRestart
	t.ClashResolve += s.ClashResolve
	t.ChainTooLong += s.ChainTooLong
}

// Health is the Watcher's own accounting. Counters only grow.
type Health struct {
	// EventsNew, EventsUpdate and EventsDestroy count the events applied
	// to the table.
	EventsNew, EventsUpdate, EventsDestroy uint64
	// EventsLost counts events the kernel dropped because the event socket's
	// receive buffer was full (its drop counter, SO_MEMINFO); Overflows
	// counts the ENOBUFS errors that reported such losses.
	EventsLost, Overflows uint64
	// ParseErrors counts event and dump messages that did not decode.
	ParseErrors uint64
	// Resyncs counts completed dumps, the initial one included;
	// ResyncErrors the dumps that failed. Reconnects counts event sockets
	// opened again after an error other than ENOBUFS.
	Resyncs, ResyncErrors, Reconnects uint64
	// StatsErrors counts failed or timed-out stats samples.
	StatsErrors uint64
	// LastDump is the duration of the last completed dump, LastDumpEntries
	// the entries it returned and LastDumpRemoved the stale entries it
	// removed from the table (entries whose destroy event was lost).
	LastDump        time.Duration
	LastDumpEntries int
	LastDumpRemoved int
	// LastResync is when the last dump completed.
	LastResync time.Time
	// ReadBuffer is the event socket's receive buffer as the kernel reports
	// it (SO_RCVBUF, twice the requested size).
	ReadBuffer int
}

// Tuple is one direction of a conntrack entry. For ICMP and ICMPv6,
// SrcPort is the echo identifier and DstPort is type<<8 | code.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Key returns the tuple as a flow key.
func (t Tuple) Key() flow.Key {
	return flow.Key{Src: t.Src, Dst: t.Dst, SrcPort: t.SrcPort, DstPort: t.DstPort, Proto: t.Proto}
}

// String formats the tuple like flow.Key.
func (t Tuple) String() string { return t.Key().String() }

// Match says which tuple of an entry a looked-up key matched.
type Match uint8

// Matches of Watcher.Lookup. For a client→ClusterIP connection DNATed to a
// pod, the client's packets before DNAT match MatchOriginal, the same
// packets after DNAT (client→pod) MatchReplyReversed, the pod's replies
// (pod→client) MatchReply, and the replies after un-DNAT (ClusterIP→client)
// MatchOriginalReversed.
const (
	MatchOriginal         Match = iota + 1 // key == original tuple
	MatchOriginalReversed                  // key == reverse of the original tuple
	MatchReply                             // key == reply tuple
	MatchReplyReversed                     // key == reverse of the reply tuple
)

// String returns "original", "original-reversed", "reply" or
// "reply-reversed".
func (m Match) String() string {
	switch m {
	case MatchOriginal:
		return "original"
	case MatchOriginalReversed:
		return "original-reversed"
	case MatchReply:
		return "reply"
	case MatchReplyReversed:
		return "reply-reversed"
	}
	return "none"
}

// NAT is what Lookup returns: both tuples of the entry a flow belongs to,
// which one the key matched, and the entry's state. When Reply is not
// Original reversed, the kernel translated the connection: Reply.Src is the
// real destination (the DNAT backend) and Reply.Dst the address the
// destination answers to (the SNAT/masquerade source).
type NAT struct {
	Original, Reply Tuple
	Zone            uint16
	ID              uint32
	Status          uint32 // Status* bits
	TCPState        TCPState
	Match           Match
}

// DNAT reports whether the destination was translated.
func (n NAT) DNAT() bool {
	return n.Reply.Src != n.Original.Dst || n.Reply.SrcPort != n.Original.DstPort
}

// SNAT reports whether the source was translated.
func (n NAT) SNAT() bool {
	return n.Reply.Dst != n.Original.Src || n.Reply.DstPort != n.Original.SrcPort
}

// TCPState is the conntrack TCP state (enum tcp_conntrack).
type TCPState uint8

// TCP states.
const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// String returns the state's name as `conntrack -L` prints it, or its
// number.
func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return strconv.Itoa(int(s))
}

func protoName(p uint8) string { return flow.ProtoName(p) }
