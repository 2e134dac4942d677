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
//	expr      := term { ("and" | "&&" | "or" | "||") term }
//	term      := ("not" | "!") term | "(" expr ")" | primitive
//	primitive := [dir] host ADDR         IPv4 (also ARP/RARP sender/target) or IPv6
//	           | [dir] net CIDR          e.g. 10.244.0.0/16, 2001:db8::/32
//	           | [tcp|udp|sctp] [dir] port N
//	           | ip | ip6 | arp | rarp | tcp | udp | sctp | icmp | icmp6
//	dir       := src | dst | src or dst | src and dst   (either order; || and && too)
//
// Precedence is tcpdump's: "not" binds tightest; "and" and "or" have equal
// precedence and group left to right, so "udp or tcp and port 80" means
// "(udp or tcp) and port 80". Keywords are lower case (tcpdump's are case
// sensitive too). A port is decimal, hexadecimal after 0x, or octal after
// a leading 0, as in tcpdump. Not supported: host names, VLAN-tagged frames
// ("vlan"), qualifier inheritance ("host A or B": write "host A or host
// B"), protocol qualifiers on host and net ("ip host A"), port ranges,
// byte-offset expressions. IPv4 port matches skip non-first fragments, IPv6
// ones look only at the first next header, as tcpdump's do.
//
// An expression that can never match, such as "tcp and udp" or "src port
// 1 and src port 2", is refused, as tcpdump refuses it ("expression rejects
// all packets"), with ErrFilterNeverMatches and the column of the term
// that contradicts what precedes it. The check follows the program's
// paths, knowing on each what its comparisons found (a value equal to one
// constant differs from every other); loads of different offsets, sizes or
// masks count as unrelated values, as in libpcap's optimizer. It refuses
// everything tcpdump refuses this way, and a few expressions that tcpdump
// compiles to a program matching nothing (its optimizer forgets what paths
// knew where they join). It stops after a fixed number of steps and then
// lets the expression through.
//
// Programs jump farther than a conditional jump's 255 instructions through
// an unconditional jump. On frames long enough for every load they match
// exactly what tcpdump's programs match; on shorter frames (a load past the
// end rejects the frame) tcpdump's optimized programs, which skip loads
// that cannot change the answer, may match where ours do not.
// TestFilterDifferential compiles a few thousand generated expressions with
// both and runs both programs over generated frames and frames of tcpdump's
// test captures; TestFilterMatchesTcpdump runs a fixed list over every
// Ethernet frame of those captures. Errors wrap ErrFilter and name the
// column of the offending token or term.
//
// # Filter limits
//
// An expression is at most MaxFilterLen bytes and nests at most
// MaxFilterDepth parentheses and nots deep; CheckFilter checks both in one
// pass that allocates nothing, so that a server can refuse a hostile
// expression before it admits the request, and CompileFilter checks them
// before anything else. A program is at most MaxFilterInsns instructions
// (ErrFilterTooLarge), about 240 "host" terms. Error messages quote at most
// 32 bytes of the expression.
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
