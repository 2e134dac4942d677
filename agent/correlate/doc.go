// Package correlate joins captured flow records with conntrack NAT state so
// that one connection is one record across DNAT and hops. It does no I/O.
package correlate
