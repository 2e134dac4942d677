// Package l2 decodes data-link layer headers: Ethernet, 802.1Q/QinQ, ARP.
package l2
