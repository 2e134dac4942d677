// Package flowtable is the agent's bounded, sharded table of flows and their
// per-interface observations, with idle timeouts and counted evictions.
package flowtable
