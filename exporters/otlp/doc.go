// Package otlp exports one OpenTelemetry trace per connection over OTLP (gRPC
// or HTTP), stitched across nodes without any coordination between agents.
//
// The agent builds a Conn from the flow records of a connection's views on
// its node (Conn.AddRecord) and the conntrack join (addresses, NAT), and hands
// it to Exporter.Export when the connection ends.
//
// # Span model
//
// A node's view of a connection becomes:
//
//   - a connection span named "<transport> <service or backend>", from the
//     first to the last packet this node saw, with the semantic-convention
//     attributes network.transport, network.type, client.address/port,
//     server.address/port (the service the client asked for, else the
//     backend), network.peer.address/port (the other end of the wire:
//     the backend on the client's node, the client on the backend's),
//     k8s.node.name, error.type, and layerscope.* ones (side, outcome,
//     service.vip, service.name, backend, client.nat, tcp.isn, layer "l4").
//     With Kubernetes metadata it also has k8s.service.name and, for the
//     pod at this node's end (the client's on the client's node, the
//     backend's on the backend's node), k8s.namespace.name, k8s.pod.name
//     and the workload's k8s.deployment.name (replicaset, statefulset,
//     daemonset, job, cronjob); layerscope.client.pod and
//     layerscope.backend.pod name both ends' pods as namespace/name.
//     Its status is Error when the connection had one (Conn.ErrorType).
//     Its events: conntrack.nat (each DNAT/SNAT, from → to), icmp.frag_needed
//     (with layerscope.icmp.mtu) and icmp.error, tcp.retransmissions (counts
//     per side, at the last packet: the flow record keeps no times for
//     them), tcp.rst (who sent it) and, for a failed connection the
//     NetworkPolicies deny, one policy.denied per denying direction
//     (layerscope.policy.{direction,namespace,name,rule}); a failed
//     connection whose policies were evaluated carries
//     layerscope.policy.verdict (policy, unexplained, unknown) and
//     layerscope.policy.detail;
//   - one child span per hop ("hop <interface>"), ordered by the hop's first
//     packet, spanning its first to last packet, with network.interface.name,
//     layerscope.interface.{index,role,kind}, layerscope.direction,
//     layerscope.encap and layerscope.vni, packets and bytes per side,
//     layerscope.hop.index and layerscope.hop.gap_ns, the time since the
//     previous hop's first packet (never negative);
//   - one child span per DNS or HTTP exchange ("DNS <name>", "DNS query",
//     "<method>", "HTTP"), from request to response, with dns.question.name
//     and layerscope.dns.rcode[_name], or http.request.method and
//     http.response.status_code; status Error on a failed rcode or a 5xx.
//
// # Trace and span IDs
//
// Every agent derives the IDs of a connection from what it sees of the
// connection itself:
//
//   - the trace ID is the first 16 bytes of SHA-256 over a versioned domain
//     string, the IP protocol and the connection's post-NAT identity: the
//     client's address and port as the backend sees them (after SNAT, if
//     any) and the backend's address and port (after DNAT). For TCP whose
//     SYN was seen, the SYN's initial sequence number is added; otherwise
//     (UDP, ICMP, TCP picked up mid-stream) the index of the Config.UDPBucket
//     long time bucket that the connection's first packet falls in. DNAT
//     does not change the ISN, so the client's node (which saw the
//     connection before and after DNAT) and the backend's node (which saw it
//     after) compute the same ID;
//   - the client-side connection span ID is the first 8 bytes of SHA-256
//     over the trace ID in another domain. The node holding the client
//     (Side SideClient) gives it to its connection span, the root of the
//     trace; every other node makes it the remote parent of its own
//     connection span, so the backend's spans hang under the client's;
//   - every other span ID (the backend node's connection span, hop and
//     exchange spans of any node) is SHA-256 over the trace ID, the node's
//     side and name, the span's purpose and its index: nodes with different
//     names never produce the same span ID.
//
// Collisions. Hash collisions between different identities are negligible:
// n connections collide on a 128-bit trace ID with probability about
// n²/2¹²⁹ and a trace's 64-bit span IDs with about m²/2⁶⁵ for m spans in it.
// What matters is when two connections have the same identity:
//
//   - TCP: the same 4-tuple reused (after TIME_WAIT) with the same ISN. ISNs
//     are 32-bit and randomised per connection (RFC 6528), so a reuse
//     collides with probability 2⁻³²;
//   - UDP and ISN-less TCP: every flow of one tuple that starts within one
//     bucket shares the trace (and, on one node, the connection span ID).
//     Resolvers pick a random source port per query, so this mostly merges
//     a flow that idled out and resumed. The converse is a split: the nodes
//     see the first packet at times that differ by the one-way latency plus
//     the nodes' clock offset, and land in different buckets with
//     probability about (latency + offset) / bucket (3·10⁻⁵ for 1 ms in the
//     default 30 s bucket); the two halves then form two traces.
//
// A connection whose client node runs no agent (traffic from outside the
// cluster) still gets its backend spans grouped in one trace, under a parent
// span that never arrives; trace backends show them as orphans.
//
// # Sampling
//
// Connections without an error are kept when their trace ID falls within
// Config.SampleRatio, by the same rule as the SDK's TraceIDRatioBased
// sampler: every node keeps or drops the same traces. Connections with an
// error (refused, timed out or reset, an ICMP frag-needed or other ICMP
// error, a DNS rcode other than NOERROR, an HTTP 5xx) are exported whatever
// the ratio. A failure seen by one node only (an HTTP 5xx decoded on one
// side, say) forces only that node's spans.
//
// # Queueing and loss
//
// Export never blocks: it puts the connection in a bounded queue
// (Config.MaxQueueSize connections) or counts it dropped. One worker turns
// queued connections into spans and exports them in batches of
// Config.MaxExportBatchSize spans, every Config.BatchTimeout, each export
// bounded by Config.ExportTimeout (retries included). While the collector is
// down exports fail, their spans are counted dropped, the queue fills and
// Export drops the overflow: memory stays bounded by the queue and one batch.
// Stats reports the counts (the metrics layer exposes them as
// layerscope_otlp_* counters).
//
// # Configuration
//
// The standard variables apply: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT,
// _HEADERS, _TIMEOUT, _COMPRESSION, _INSECURE, _CERTIFICATE (read by the OTLP
// exporters), OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL ("grpc" or
// "http/protobuf", the default), OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. Config fields set by the agent's flags take
// precedence over them.
//
// # Dependencies
//
// This package imports agent/flow and the OpenTelemetry SDK; it knows nothing
// of capture, conntrack or the correlation code that fill a Conn.
package otlp
