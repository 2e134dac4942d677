// Package capture reads frames from AF_PACKET TPACKET_V3 memory-mapped rings,
// one per interface, with an optional classic BPF filter, and reports the
// kernel's ring statistics (packets, drops, queue freezes).
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
