package capture

import (
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// Meta describes one captured frame. The ring owns it and overwrites it for
// every frame: a handler reads it, copying what it keeps.
type Meta struct {
	// Timestamp is when the kernel received or sent the frame.
	Timestamp time.Time
	// Length is the frame's length on the wire, VLAN tag included.
	Length int
	// CaptureLength is the number of bytes captured: len(frame).
	CaptureLength int
	// IfIndex is the index of the interface the frame was seen on.
	IfIndex int
	// Direction is DirOut for frames the interface sent, DirIn otherwise.
	Direction flow.Direction
	// PktType is the raw sll_pkttype: PACKET_HOST (0), BROADCAST (1),
	// MULTICAST (2), OTHERHOST (3), OUTGOING (4) or LOOPBACK (5).
	PktType uint8
	// VLANValid reports that the kernel had stripped an 802.1Q/802.1ad tag
	// (VLAN offload) and that it was put back into the frame; VLAN is its TCI.
	VLANValid bool
	VLAN      uint16
	// BlockEnd reports that the frame is the last the ring holds for now
	// (the last of its block): the handler's next frame comes from a block
	// the kernel may not have handed over yet. A handler that defers work
	// does it here.
	BlockEnd bool
}

// Packet types of sockaddr_ll (linux/if_packet.h).
const (
	PacketHost      = 0
	PacketBroadcast = 1
	PacketMulticast = 2
	PacketOtherHost = 3
	PacketOutgoing  = 4
	PacketLoopback  = 5
)

// Stats are running totals of one ring since it was opened. The kernel
// clears its counters on every read; Ring.Stats adds them up.
type Stats struct {
	// Packets counts the frames that passed the filter, delivered to the
	// ring or dropped (the kernel's tp_packets).
	Packets uint64
	// Drops counts the frames the kernel dropped because the ring was full.
	Drops uint64
	// QueueFreezes counts the times the kernel found every block in use
	// and froze the queue until the reader gave one back.
	QueueFreezes uint64
	// Polls counts the times the reader waited for the kernel on an empty
	// ring (parked in the runtime's network poller).
	Polls uint64
	// SocketErrors counts errors reported on the socket, such as ENETDOWN
	// when the interface goes down (the ring resumes when it comes up).
	SocketErrors uint64
}

// Handler is called by Ring.Run for each frame. frame and m are valid only
// until it returns.
type Handler func(frame []byte, m *Meta)

func direction(pktType uint8) flow.Direction {
	if pktType == PacketOutgoing {
		return flow.DirOut
	}
	return flow.DirIn
}
