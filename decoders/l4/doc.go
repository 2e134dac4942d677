// Package l4 decodes transport layer headers: TCP and UDP, and the VXLAN and
// Geneve tunnel headers carried over UDP.
package l4
