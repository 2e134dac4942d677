// Package metrics holds the agent's Prometheus sources, one per file in the
// manner of node_exporter's collectors: each is a prom.Source built from the
// small part of the agent it reads, emitting the series metricdef defines.
// The agent registers them, in this order, in one prom.Collector:
//
//	ready.go      layerscope_agent_ready (workers readiness)
//	links.go      layer 1: interfaces by kind and role, link up, carrier, errors, drops (kernel counters read at scrape)
//	mtu.go        the MTU check's cached result (mtu.Monitor)
//	kernel.go     the namespace's own fragmentation counters (netstat)
//	capture.go    ring drops and freezes, interfaces attached and pending (workers)
//	pipeline.go   per-layer packet counters summed over the workers (also used by replay)
//	flowtable.go  flow table size and churn, outcomes, L7 messages, latency histograms (also used by replay)
//	conntrack.go  the conntrack watcher's snapshot
//	services.go   connections per Service and backend (correlate.Services, named by kube)
//	api.go        the history, followers, requests refused, HTTP connections (web, server)
//	kube.go       the metadata store's health, ready endpoints, stale DNAT entries
//	workloads.go  the workload tally (workloads)
//	otlp.go       the trace exporter's accounting
//
// A source reads what its part publishes (a snapshot, counters, a cached
// result) and never waits on the data path. Label values come from the
// String and Label methods of the types they name (flow.Role, flow.Outcome,
// flow.Rcode, …), so metrics, the API, spans and the CLI use one
// vocabulary.
package metrics
