// Package conntrack observes the kernel's connection tracking table over
// netlink: dump, events and statistics. It never writes to the table.
package conntrack
