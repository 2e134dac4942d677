// Package l3 decodes network layer headers: IPv4, IPv6 and ICMP.
package l3
