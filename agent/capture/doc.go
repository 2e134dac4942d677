// Package capture reads frames from AF_PACKET TPACKET_V3 memory-mapped rings,
// one per interface, with an optional classic BPF filter or an optional
// eBPF fast path that counts most frames of established TCP flows in the
// kernel, and reports the kernel's ring statistics (packets, drops, queue
// freezes).
//
// # Rings
//
// [Open] creates one packet socket bound to one interface index inside a
// network namespace (the socket is made there with nsenter.NS.Do and keeps
// that namespace for its life), maps a TPACKET_V3 receive ring of
// Config.NumBlocks blocks of Config.BlockSize bytes, and installs a socket
// filter. The kernel fills a block with as many frames as fit and hands it
// over when it is full or when Config.BlockTimeout has passed since its first
// frame; the reader walks the frames of a block in place, prefetching two
// frames ahead (the kernel wrote them from the CPU that received them, so
// each line would otherwise be a cross-CPU miss), and returns the block
// with one memory store. Reading therefore costs no system call per packet:
// only when the ring is empty does the reader wait.
//
// # Waiting
//
// The packet socket is non-blocking and registered with the Go runtime's
// network poller (epoll, edge triggered) through an *os.File. The kernel
// signals the socket each time it hands a block over (full or timed out),
// so an empty ring parks the reader's goroutine in RawConn.Read until the
// block it waits for is ready: no OS thread blocks in a system call, and the
// scheduler wakes the goroutine from its own epoll_wait. A wake-up that finds
// the block still the kernel's reads the socket's pending error (ENETDOWN
// when the link goes down, counted in Stats.SocketErrors; the kernel hooks
// the socket up again when the link comes back).
//
// # Snap length and filters
//
// TPACKET_V3 does not truncate frames by itself; like libpcap, this package
// makes the socket filter return the snap length. Without Config.Filter the
// filter is the single instruction "ret #SnapLen"; with one, every constant
// return larger than SnapLen is lowered to SnapLen. [ParseFilter] reads the
// output of "tcpdump -dd" (or "-ddd") so that filters compiled by libpcap can
// be used without cgo.
//
// # The eBPF fast path
//
// With Config.Offload the socket runs an eBPF socket filter instead of the
// classic one (built with cilium/ebpf's asm package, so no C toolchain is
// needed). Most frames of an established TCP flow change nothing but its
// counters; the filter counts those in a kernel hash map keyed by the
// flow's direction at the interface (packets, wire bytes, how many had PSH,
// the time of the last) and does not copy them into the ring. It hands
// over, with the snap length, every frame it cannot parse (anything but
// Ethernet without VLAN tag + IPv4 without options and not fragmented, or
// IPv6 with TCP right after its fixed header, + TCP; or that inside VXLAN
// over such IPv4), every non-TCP frame (UDP, DNS, ICMP, ARP, fragments,
// tunnels it does not parse), and of TCP: the frame that starts a flow
// direction's entry and OffloadConfig.FirstPackets after it (the
// handshake's last ACK among them), SYN, FIN, RST, URG, ECE, CWR and NS,
// segments without ACK, zero windows, segments to or from a DNS port,
// frames whose headers do not fit in the snap length,
// packets longer than the path MTU set with Offload.SetMaxLen (the pod
// path checks), and payloads that may start an L7 message the decoders
// read: shorter than 33 bytes, a TLS record header, or a space within the
// first 33 bytes (an HTTP request or status line needs one there). The
// filter also follows each flow direction's sequence numbers as the flow
// table does per hop and side, for every frame it parses (handed over or
// not), and counts the data retransmissions; the flow table then leaves
// those frames' retransmissions to it (flow.Packet.FilterSeq).
//
// Offload.Drain hands the differences since its last call to the caller
// (the agent's worker, every PublishInterval and once after the ring
// closes), which adds them to the flow table (flowtable.Table.Merge) and
// the per-layer counters: counts stay exact, not sampled. An entry is
// removed once its flow has left the flow table and two drains saw it
// unchanged. A new flow direction that finds the map full (OffloadConfig.MaxFlows)
// is handed over frame by frame and counted (OffloadStats.MapFull); its
// data retransmissions are then not counted. The map allocates entries as
// flows arrive (no preallocation).
//
// Where eBPF is not allowed (no CAP_BPF or CAP_SYS_ADMIN) or supported, or
// Config.Filter is set, Open still opens the ring, with the classic filter:
// every frame reaches user space, and OffloadFallback says why.
//
// # Direction
//
// Every frame's sockaddr_ll sits next to it in the ring, and its sll_pkttype
// says whether the interface sent it (PACKET_OUTGOING) or received it
// (PACKET_HOST, BROADCAST, MULTICAST, OTHERHOST). [Meta.Direction] is read
// from there: it costs one byte load per frame and no second socket.
//
// # Ownership
//
// [Ring.Run] calls its handler with a frame that aliases the ring (or, for a
// frame whose VLAN tag the kernel stripped, a per-ring scratch buffer the tag
// was put back into) and a *Meta owned by the ring. Both are valid only until
// the handler returns: the block is given back to the kernel right after its
// last frame. A handler that keeps bytes must copy them.
//
// # Concurrency
//
// One goroutine at a time may run [Ring.Run]. [Ring.Close] and [Ring.Stats]
// may be called from any goroutine, also from inside the handler. Close (and
// the cancellation of Run's context) wakes a waiting Run at once by expiring
// the socket's read deadline; the ring's memory and descriptor are released
// by whichever of Close and the returning Run comes last, so a frame is
// never unmapped under a running handler.
package capture
