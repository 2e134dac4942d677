package capture

import "github.com/layerscope/layerscope/agent/flow"

// OffloadConfig turns on the in-kernel fast path of a ring (Config.Offload):
// an eBPF socket filter that hands user space only the frames that change a
// flow's state and counts the others per flow in a kernel map (see the
// package documentation).
type OffloadConfig struct {
	// MaxFlows is the number of flow directions the kernel map holds;
	// 0 means DefaultOffloadFlows. A frame of a new flow that finds it
	// full is handed to user space and counted (OffloadStats.MapFull).
	MaxFlows int
	// FirstPackets is the number of frames of each flow direction handed
	// to user space after the one that created its entry, whatever they
	// carry (the handshake's last ACK among them); 0 means
	// DefaultOffloadFirst.
	FirstPackets int
	// DNSPorts are the TCP ports (source or destination) whose segments
	// are always handed over (DNS over TCP); empty means 53 and 5353, as
	// the decoders default to.
	DNSPorts []uint16
	// VXLANPorts are the UDP destination ports whose packets' inner
	// frames the filter parses (VXLAN over IPv4); empty means 4789, as
	// the decoders default to.
	VXLANPorts []uint16
}

// Defaults of OffloadConfig.
const (
	DefaultOffloadFlows = 16384
	DefaultOffloadFirst = 2
)

// Reasons an offload was not used; the ring then captures every frame as
// without it (OffloadStatus).
const (
	OffloadReasonFilter       = "capture_filter" // a classic filter was configured
	OffloadReasonNotPermitted = "not_permitted"  // EPERM: no CAP_BPF / CAP_SYS_ADMIN, or locked down
	OffloadReasonUnsupported  = "unsupported"    // the kernel lacks eBPF socket filters or a helper
	OffloadReasonFailed       = "failed"         // the map or program could not be made (memory limit, verifier)
)

// OffloadStats are the counters of one ring's offload.
type OffloadStats struct {
	// Flows is the number of flow directions in the kernel map at the
	// last drain.
	Flows int
	// MapFull counts frames handed to user space because the map was
	// full when they would have started an entry.
	MapFull uint64
	// Counted and CountedBytes are the frames (and their bytes) the kernel
	// counted instead of handing them over, summed over the drains.
	Counted, CountedBytes uint64
	// Removed counts the map entries removed because their flow had left
	// the flow table.
	Removed uint64
	// Drains counts the drains; DrainErrors those that failed.
	Drains, DrainErrors uint64
}

// Drained is one flow direction's counts since the previous drain, as
// Offload.Drain hands them over: f.Key is the tuple as sent, Out says the
// interface sent the frames (PACKET_OUTGOING).
type Drained struct {
	flow.Counted
	Out bool
}
