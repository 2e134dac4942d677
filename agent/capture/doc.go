// Package capture reads frames from AF_PACKET TPACKET_V3 memory-mapped rings,
// one per interface, with an optional classic BPF filter, and reports the
// kernel's ring statistics (packets, drops, queue freezes).
package capture
