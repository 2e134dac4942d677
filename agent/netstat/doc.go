// Package netstat reads the kernel's own IP fragmentation, reassembly and
// ICMP "destination unreachable" / "packet too big" counters of one network
// namespace from /proc/net/snmp and /proc/net/snmp6.
//
// These are the kernel's ground truth for issue-level questions the capture
// path can only estimate: how many datagrams the node cut into fragments
// (FragOKs, FragCreates), how many it could not send because they were too
// large with DF set (FragFails), how many it reassembled or gave up on
// (ReasmOKs, ReasmFails, ReasmTimeout), and how many ICMP errors it sent or
// received about them.
//
// # Namespaces
//
// /proc/net is a link to /proc/self/net, which follows the network namespace
// of the process's main thread, not of the thread that entered a namespace.
// Read therefore reads /proc/thread-self/net/snmp on a thread locked inside
// the namespace (nsenter.NS.Do), so that each namespace's own counters are
// returned.
//
// # Format and tolerance
//
// /proc/net/snmp holds pairs of lines, a header ("Ip: Forwarding ...") and
// its values ("Ip: 1 64 ..."); /proc/net/snmp6 one "Name value" pair per
// line. Fields are matched by name, so columns a newer kernel adds or
// reorders are harmless, and a field the kernel does not print reads as
// zero. A kernel built without IPv6 has no snmp6: that is not an error,
// Counters.IPv6Present is false. A line pair whose header and values do not
// match, or a value of a wanted field that is not a number, is ErrFormat.
//
// The kernel derives Icmp InDestUnreachs/OutDestUnreachs from the same
// per-type counters it prints as IcmpMsg InType3/OutType3 (and
// Icmp6InPktTooBigs from Icmp6InType2), so only the named counters are kept.
// None of them separates "fragmentation needed" (type 3 code 4) from other
// unreachable codes: the capture path counts those.
//
// # Allocation and concurrency
//
// The parsers do not allocate; Read reuses pooled buffers and allocates only
// for running on the namespace's thread. All functions may be called from
// several goroutines.
package netstat
