package metricdef

// The metric table. Every metric layerscope exports is defined here once;
// exporters look definitions up by variable, docs and tests iterate All.
var (
	// agent: the process itself.
	BuildInfo = Def{Name: "layerscope_build_info", Type: Info, // the conventional name, no subsystem
		Help:   "Build information of the running agent, value 1",
		Labels: []string{"version", "revision", "goversion"}}
	AgentReady = Def{Name: "layerscope_agent_ready", Subsystem: "agent", Type: Gauge,
		Help: "1 when every capture and netlink source of the agent is open, else 0"}
	AgentInterfaces = Def{Name: "layerscope_agent_interfaces", Subsystem: "agent", Type: Gauge,
		Help:   "Interfaces of the node network namespace by kind and role",
		Labels: []string{"kind", "role"}}
	AgentCaptureAttached = Def{Name: "layerscope_agent_capture_attached", Subsystem: "agent", Type: Gauge,
		Help:   "Interfaces with a capture ring attached, by role",
		Labels: []string{"role"}}
	ScrapeDuration = Def{Name: "layerscope_agent_collector_duration_seconds", Subsystem: "agent", Type: Gauge,
		Unit: "seconds", Help: "Time the named collector took during this scrape", Labels: []string{"collector"}}
	ScrapeSuccess = Def{Name: "layerscope_agent_collector_success", Subsystem: "agent", Type: Gauge,
		Help: "1 when the named collector succeeded during this scrape, else 0", Labels: []string{"collector"}}

	// L1: link state and kernel interface counters (rtnetlink).
	L1LinkUp = Def{Name: "layerscope_l1_links_up", Subsystem: "l1", Type: Gauge,
		Help: "Interfaces whose operational state is up, by role", Labels: []string{"role"}}
	L1CarrierChanges = Def{Name: "layerscope_l1_carrier_changes_total", Subsystem: "l1", Type: Counter,
		Help: "Carrier changes of the interfaces, summed by role", Labels: []string{"role"}}
	L1Errors = Def{Name: "layerscope_l1_errors_total", Subsystem: "l1", Type: Counter,
		Help: "Kernel interface errors, summed by role and direction", Labels: []string{"role", "direction"}}
	L1Drops = Def{Name: "layerscope_l1_drops_total", Subsystem: "l1", Type: Counter,
		Help: "Kernel interface drops, summed by role and direction", Labels: []string{"role", "direction"}}

	// capture: what the agent saw, and what the kernel could not give it.
	CapturePackets = Def{Name: "layerscope_capture_packets_total", Subsystem: "capture", Type: Counter,
		Help: "Frames decoded by the agent, by interface role and direction", Labels: []string{"role", "direction"}}
	CaptureBytes = Def{Name: "layerscope_capture_bytes_total", Subsystem: "capture", Type: Counter, Unit: "bytes",
		Help: "Wire bytes of the frames decoded by the agent, by interface role and direction", Labels: []string{"role", "direction"}}
	CaptureDrops = Def{Name: "layerscope_capture_drops_total", Subsystem: "capture", Type: Counter,
		Help: "Frames the kernel dropped because a capture ring was full, by interface role", Labels: []string{"role"}}
	CaptureFreezes = Def{Name: "layerscope_capture_queue_freezes_total", Subsystem: "capture", Type: Counter,
		Help: "Times a TPACKET_V3 ring queue froze, by interface role", Labels: []string{"role"}}
	DecodeErrors = Def{Name: "layerscope_decode_errors_total", Subsystem: "decode", Type: Counter,
		Help: "Frames whose decoding stopped on a malformed header, by layer and reason", Labels: []string{"layer", "reason"}}

	// L2
	L2ARP = Def{Name: "layerscope_l2_arp_total", Subsystem: "l2", Type: Counter,
		Help: "ARP packets by operation", Labels: []string{"op"}}
	L2VLAN = Def{Name: "layerscope_l2_vlan_tagged_total", Subsystem: "l2", Type: Counter,
		Help: "Frames carrying at least one 802.1Q or 802.1ad tag"}
	L2Tunnel = Def{Name: "layerscope_l2_tunnel_packets_total", Subsystem: "l2", Type: Counter,
		Help: "Encapsulated frames decapsulated, by tunnel kind", Labels: []string{"tunnel"}}
	L2TunnelBytes = Def{Name: "layerscope_l2_tunnel_bytes_total", Subsystem: "l2", Type: Counter, Unit: "bytes",
		Help: "Wire bytes of encapsulated frames, outer headers included, by tunnel kind", Labels: []string{"tunnel"}}

	// L3
	L3Packets = Def{Name: "layerscope_l3_packets_total", Subsystem: "l3", Type: Counter,
		Help: "IP packets by family (the inner packet of a tunnelled frame)", Labels: []string{"family"}}
	L3ICMP = Def{Name: "layerscope_l3_icmp_total", Subsystem: "l3", Type: Counter,
		Help: "ICMP and ICMPv6 messages by family, type and code (code 15+ summed)", Labels: []string{"family", "type", "code"}}
	L3Fragments = Def{Name: "layerscope_l3_fragments_total", Subsystem: "l3", Type: Counter,
		Help: "IP fragments by family and position (first or non-first)", Labels: []string{"family", "position"}}
	L3FragNeeded = Def{Name: "layerscope_l3_frag_needed_total", Subsystem: "l3", Type: Counter,
		Help: "ICMP fragmentation-needed and ICMPv6 packet-too-big messages, by family", Labels: []string{"family"}}

	// L4
	L4Packets = Def{Name: "layerscope_l4_packets_total", Subsystem: "l4", Type: Counter,
		Help: "Transport segments and datagrams by protocol", Labels: []string{"protocol"}}
	L4TCPFlags = Def{Name: "layerscope_l4_tcp_flags_total", Subsystem: "l4", Type: Counter,
		Help: "TCP segments carrying each flag", Labels: []string{"flag"}}
	L4Retransmits = Def{Name: "layerscope_l4_tcp_retransmits_total", Subsystem: "l4", Type: Counter,
		Help: "TCP retransmissions seen: repeated SYNs and repeated data segments"}
	L4Handshake = Def{Name: "layerscope_l4_tcp_handshake_seconds", Subsystem: "l4", Type: Histogram, Unit: "seconds",
		Help: "TCP handshake time from SYN to the client's ACK, at the interface that saw all three", Buckets: latencyBuckets}
	L4Connections = Def{Name: "layerscope_l4_connections_total", Subsystem: "l4", Type: Counter,
		Help: "Flows that ended (idle, closed or evicted), by outcome", Labels: []string{"outcome"}}

	// L6
	L6TLSHandshakes = Def{Name: "layerscope_l6_tls_handshakes_total", Subsystem: "l6", Type: Counter,
		Help: "TLS ServerHello messages by negotiated version", Labels: []string{"version"}}
	L6TLSClientHellos = Def{Name: "layerscope_l6_tls_client_hellos_total", Subsystem: "l6", Type: Counter,
		Help: "TLS ClientHello messages"}

	// L7
	L7DNSQueries = Def{Name: "layerscope_l7_dns_queries_total", Subsystem: "l7", Type: Counter,
		Help: "DNS queries, each counted once however many captured interfaces it crossed"}
	L7DNSResponses = Def{Name: "layerscope_l7_dns_responses_total", Subsystem: "l7", Type: Counter,
		Help: "DNS responses by response code, each counted once however many captured interfaces it crossed", Labels: []string{"rcode"}}
	L7DNSLatency = Def{Name: "layerscope_l7_dns_latency_seconds", Subsystem: "l7", Type: Histogram, Unit: "seconds",
		Help: "Time from a DNS query to its response, matched by ID within the flow", Buckets: latencyBuckets}
	L7HTTPRequests = Def{Name: "layerscope_l7_http_requests_total", Subsystem: "l7", Type: Counter,
		Help: "HTTP/1.x requests, each counted once however many captured interfaces it crossed"}
	L7HTTPResponses = Def{Name: "layerscope_l7_http_responses_total", Subsystem: "l7", Type: Counter,
		Help: "HTTP/1.x responses by status class, each counted once however many captured interfaces it crossed", Labels: []string{"status_class"}}
	L7HTTPLatency = Def{Name: "layerscope_l7_http_latency_seconds", Subsystem: "l7", Type: Histogram, Unit: "seconds",
		Help: "Time from an HTTP/1.x request to its response within the flow", Buckets: latencyBuckets}

	// flowtable
	FlowEntries = Def{Name: "layerscope_flowtable_entries", Subsystem: "flowtable", Type: Gauge,
		Help: "Flows held in the flow table"}
	FlowCapacity = Def{Name: "layerscope_flowtable_entries_limit", Subsystem: "flowtable", Type: Gauge,
		Help: "The bound on the flows the table holds"}
	FlowInserts = Def{Name: "layerscope_flowtable_inserts_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows added to the table"}
	FlowEvictions = Def{Name: "layerscope_flowtable_evictions_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows removed from the full table to make room for new ones"}
	FlowRefused = Def{Name: "layerscope_flowtable_refused_total", Subsystem: "flowtable", Type: Counter,
		Help: "New flows not tracked because the table was full of active flows"}
	FlowExpired = Def{Name: "layerscope_flowtable_expired_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows removed after their idle timeout"}
)

// All returns every metric definition in a stable order.
func All() []Def {
	return []Def{
		BuildInfo, AgentReady, AgentInterfaces, AgentCaptureAttached, ScrapeDuration, ScrapeSuccess,
		L1LinkUp, L1CarrierChanges, L1Errors, L1Drops,
		CapturePackets, CaptureBytes, CaptureDrops, CaptureFreezes, DecodeErrors,
		L2ARP, L2VLAN, L2Tunnel, L2TunnelBytes,
		L3Packets, L3ICMP, L3Fragments, L3FragNeeded,
		L4Packets, L4TCPFlags, L4Retransmits, L4Handshake, L4Connections,
		L6TLSHandshakes, L6TLSClientHellos,
		L7DNSQueries, L7DNSResponses, L7DNSLatency, L7HTTPRequests, L7HTTPResponses, L7HTTPLatency,
		FlowEntries, FlowCapacity, FlowInserts, FlowEvictions, FlowRefused, FlowExpired,
	}
}
