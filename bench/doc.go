// Package bench holds replay and live benchmarks of layerscope side by side
// with its peers (tcpdump, conntrack-tools). See README.md.
package bench
