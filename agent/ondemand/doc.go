// Package ondemand runs the bounded, filtered packet captures that clients
// ask the agent for (layerscope capture), writing a pcap file as packets
// arrive.
//
// # Filters
//
// The agent is a static binary without libpcap, so filter expressions are
// compiled here, to a classic BPF program for Ethernet frames that the
// kernel runs as the socket filter of each capture ring: frames that do not
// match never reach user space. The accepted language is a subset of
// tcpdump's (pcap-filter(7)), with the same meaning:
//
//	[src|dst] host ADDR        IPv4 (also ARP/RARP sender/target) or IPv6
//	[src|dst] net CIDR         e.g. 10.244.0.0/16, 2001:db8::/32
//	[tcp|udp|sctp] [src|dst] port N
//	ip  ip6  arp  tcp  udp  sctp  icmp  icmp6
//	not EXPR   !EXPR   EXPR and EXPR   EXPR && EXPR   EXPR or EXPR   EXPR || EXPR   ( EXPR )
//
// "and" binds tighter than "or". Not supported: host names, VLAN-tagged
// frames ("vlan"), qualifier inheritance ("host A or B": write "host A or
// host B"), port ranges, byte-offset expressions. IPv4 port matches skip
// non-first fragments, IPv6 ones look only at the first next header; this
// is exactly what tcpdump compiles, and TestFilterMatchesTcpdump runs both
// programs over every Ethernet frame of tcpdump's test captures. Errors wrap
// ErrFilter and name the column of the offending token.
//
// # Limits
//
// Every capture is bounded by a duration, a packet count, a byte count (of
// the pcap file, header included) and a snap length. The agent holds caps
// (Limits.Caps); a request's zero or larger limits are lowered to them by
// Limits.Within, so a client cannot exceed what the agent allows. Limiter
// bounds how many captures run at once; Acquire fails with ErrBusy beyond.
// The capture stops exactly at the packet limit, before the packet that
// would cross the byte limit, when the duration elapses, or when the
// client goes away; Result says which.
//
// # Output
//
// Run opens one TPACKET_V3 ring per interface in the agent's namespace,
// copies each matching frame out of the ring and hands it to one writer
// goroutine, which writes a nanosecond pcap (link type Ethernet, the
// kernel's timestamps) and flushes whenever it has caught up. Frames of
// several interfaces are written in the order the writer receives them,
// which is close to, not exactly, timestamp order. A packet that crosses
// several captured interfaces (pod veth, then VXLAN device) is in the file
// once per interface. Frames the kernel dropped (ring full) or that found
// the handoff queue full are counted in Result.Dropped, never waited for.
//
// # Concurrency
//
// Run owns its rings and writer; several Runs may proceed at once. Limiter
// is safe for concurrent use.
package ondemand
