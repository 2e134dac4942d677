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
	AgentCapturePending = Def{Name: "layerscope_agent_capture_pending", Subsystem: "agent", Type: Gauge,
		Help:   "Interfaces selected for capture whose ring could not be opened yet (retried with backoff), by role",
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
	CaptureOffloadFallbacks = Def{Name: "layerscope_capture_offload_fallbacks_total", Subsystem: "capture", Type: Counter,
		Help: "Rings that asked for the eBPF fast path (--capture-offload) and capture every frame in user space instead, by reason", Labels: []string{"reason"}}
	CaptureOffloadCounted = Def{Name: "layerscope_capture_offload_counted_packets_total", Subsystem: "capture", Type: Counter,
		Help: "Frames the eBPF fast path counted in the kernel instead of handing them over (included in layerscope_capture_packets_total)"}
	CaptureOffloadMapFull = Def{Name: "layerscope_capture_offload_map_full_total", Subsystem: "capture", Type: Counter,
		Help: "Frames handed to user space because the eBPF fast path's flow map was full"}
	CaptureOffloadFlows = Def{Name: "layerscope_capture_offload_flows", Subsystem: "capture", Type: Gauge,
		Help: "Flow directions in the eBPF fast path's kernel maps"}
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
		Help: "IP fragments by interface role, family and position (first or non-first)", Labels: []string{"role", "family", "position"}}
	L3Reassembly = Def{Name: "layerscope_l3_reassembly_total", Subsystem: "l3", Type: Counter,
		Help:   "Fragmented datagrams seen at an interface by result: completed, incomplete (not all fragments within 30 s) or evicted (tracker full)",
		Labels: []string{"family", "result"}}
	L3ReassemblyPending = Def{Name: "layerscope_l3_reassembly_pending", Subsystem: "l3", Type: Gauge,
		Help: "Fragmented datagrams waiting for fragments", Labels: []string{"family"}}
	L3FragDuplicates = Def{Name: "layerscope_l3_fragment_duplicates_total", Subsystem: "l3", Type: Counter,
		Help: "Fragments that brought no byte not seen already", Labels: []string{"family"}}
	L3PMTUReports = Def{Name: "layerscope_l3_pmtu_reports_total", Subsystem: "l3", Type: Counter,
		Help: "ICMP fragmentation-needed and ICMPv6 packet-too-big messages by the MTU they report", Labels: []string{"family", "mtu"}}
	L3Oversize = Def{Name: "layerscope_l3_oversize_total", Subsystem: "l3", Type: Counter,
		Help:   "Packets entering from an interface that are too big for the path they take off the node (IPv4 with DF, IPv6): they will be dropped",
		Labels: []string{"role", "family"}}
	L3OversizeOffload = Def{Name: "layerscope_l3_offload_oversize_total", Subsystem: "l3", Type: Counter,
		Help: "Segmentation-offload aggregates longer than their path's MTU (cut later, segment size unknown)", Labels: []string{"role", "family"}}
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
	L4MSSOverPath = Def{Name: "layerscope_l4_tcp_mss_over_path_total", Subsystem: "l4", Type: Counter,
		Help: "SYNs entering whose MSS option exceeds what their path's MTU allows", Labels: []string{"role", "family"}}
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
	FlowAllocated = Def{Name: "layerscope_flowtable_entries_allocated", Subsystem: "flowtable", Type: Gauge,
		Help: "Entries the flow table has allocated: it grows as flows arrive, up to the bound, and shrinks as they end (784 bytes each)"}
	FlowInserts = Def{Name: "layerscope_flowtable_inserts_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows added to the table"}
	FlowEvictions = Def{Name: "layerscope_flowtable_evictions_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows removed from the full table to make room for new ones"}
	FlowRefused = Def{Name: "layerscope_flowtable_refused_total", Subsystem: "flowtable", Type: Counter,
		Help: "New flows not tracked because the table was full of active flows"}
	FlowExpired = Def{Name: "layerscope_flowtable_expired_total", Subsystem: "flowtable", Type: Counter,
		Help: "Flows removed after their idle timeout"}

	// conntrack: the kernel's connection tracking table, read over netlink.
	CTEntries = Def{Name: "layerscope_conntrack_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "Entries in the conntrack table of the namespace (the kernel's count)"}
	CTLimit = Def{Name: "layerscope_conntrack_entries_limit", Subsystem: "conntrack", Type: Gauge,
		Help: "The conntrack table's limit, nf_conntrack_max"}
	CTFill = Def{Name: "layerscope_conntrack_fill_ratio", Subsystem: "conntrack", Type: Gauge, Unit: "ratio",
		Help: "Entries divided by the limit; new connections are dropped at 1"}
	CTGrowth = Def{Name: "layerscope_conntrack_entries_growth_rate", Subsystem: "conntrack", Type: Gauge,
		Help: "Net change of entries per second, a moving average over the stats samples"}
	CTETA = Def{Name: "layerscope_conntrack_exhaustion_eta_seconds", Subsystem: "conntrack", Type: Gauge, Unit: "seconds",
		Help: "Time until the table is full at the current growth rate: 0 when full, +Inf when not growing"}
	CTInsertFailed  = ctStat("insert_failed", "Entries that could not be inserted (clash with an existing entry)")
	CTDrop          = ctStat("drop", "Packets dropped because the table was full (table full, dropping packet)")
	CTEarlyDrop     = ctStat("early_drop", "Unassured entries evicted to make room when the table was full")
	CTSearchRestart = ctStat("search_restart", "Table lookups restarted because of a concurrent resize")
	CTInvalid       = ctStat("invalid", "Packets conntrack could not track (invalid state)")
	CTClashResolve  = ctStat("clash_resolve", "Insert clashes that were resolved")
	CTChainTooLong  = ctStat("chaintoolong", "Inserts refused because a hash chain was too long")
	CTByProtocol    = Def{Name: "layerscope_conntrack_protocol_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "Entries held, by IP protocol", Labels: []string{"protocol"}}
	CTByTCPState = Def{Name: "layerscope_conntrack_tcp_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "TCP entries held, by state", Labels: []string{"state"}}
	CTByFlag = Def{Name: "layerscope_conntrack_flagged_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "Entries held that are assured, unreplied or NATed", Labels: []string{"flag"}}
	CTTopSource = Def{Name: "layerscope_conntrack_top_source_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "Entries held by the sources holding the most (opt-in: --conntrack-top-n)", Labels: []string{"source"}}
	CTTopService = Def{Name: "layerscope_conntrack_top_service_entries", Subsystem: "conntrack", Type: Gauge,
		Help: "Entries held by the destinations holding the most (opt-in: --conntrack-top-n)", Labels: []string{"service", "protocol"}}
	CTEvents = Def{Name: "layerscope_conntrack_events_total", Subsystem: "conntrack", Type: Counter,
		Help: "Conntrack events applied to the agent's copy of the table, by type", Labels: []string{"type"}}
	CTEventsLost = Def{Name: "layerscope_conntrack_events_lost_total", Subsystem: "conntrack", Type: Counter,
		Help: "Conntrack events the kernel dropped because the agent's socket buffer was full (ENOBUFS)"}
	CTResyncs = Def{Name: "layerscope_conntrack_resyncs_total", Subsystem: "conntrack", Type: Counter,
		Help: "Full dumps of the table (at start and after lost events)"}
	CTErrors = Def{Name: "layerscope_conntrack_errors_total", Subsystem: "conntrack", Type: Counter,
		Help: "Failed conntrack operations of the agent, by operation", Labels: []string{"op"}}
	CTDumpDuration = Def{Name: "layerscope_conntrack_last_dump_duration_seconds", Subsystem: "conntrack", Type: Gauge, Unit: "seconds",
		Help: "Duration of the last full dump of the table"}

	// service: connections joined across DNAT (conntrack + flow table),
	// named from the Kubernetes metadata when it is known.
	SvcConnections = Def{Name: "layerscope_service_connections_total", Subsystem: "service", Type: Counter,
		Help:   "Connections to a service (ClusterIP:port or NodeIP:NodePort) DNATed on this node, by outcome (and backend, with --service-backend-label), each counted once; service is the Service's name when known, else its address, port the service port, namespace and workload empty when unknown",
		Labels: []string{"namespace", "service", "port", "protocol", "outcome"}, OptLabels: []string{"backend", "workload"}}
	SvcFailureRatio = Def{Name: "layerscope_service_backend_failure_ratio", Subsystem: "service", Type: Gauge, Unit: "ratio",
		Help:   "Share of a service's connections (of one backend, with --service-backend-label) that failed (refused, timed out, reset; not reset by the client alone after the backend answered) over the last five minutes",
		Labels: []string{"namespace", "service", "port", "protocol"}, OptLabels: []string{"backend", "workload"}}
	SvcDeadBackend = Def{Name: "layerscope_service_dead_backend", Subsystem: "service", Type: Gauge,
		Help:   "1 when the backend's last 3 or more connections all failed (refused, timed out or reset; not reset by the client alone after the backend answered), else 0; only the dead backends are listed unless --service-backend-label is set",
		Labels: []string{"namespace", "service", "port", "backend", "workload", "protocol"}}
	SvcFoldedSeries = Def{Name: "layerscope_service_folded_series", Subsystem: "service", Type: Gauge,
		Help: "Service label sets beyond --service-series whose connections are summed into the service=\"other\" series"}
	SvcOverflow = Def{Name: "layerscope_service_untracked_connections_total", Subsystem: "service", Type: Counter,
		Help: "DNATed connections not tallied because the service/backend series bound was reached"}
	SvcEndpoints = Def{Name: "layerscope_service_endpoints", Subsystem: "service", Type: Gauge,
		Help:   "Ready endpoints of a Service in its EndpointSlices (Kubernetes metadata); 0 is a Service without endpoints",
		Labels: []string{"namespace", "service"}}
	SvcEndpointsUnlisted = Def{Name: "layerscope_service_endpoints_unlisted", Subsystem: "service", Type: Gauge,
		Help: "Services with endpoints left out of layerscope_service_endpoints for --service-endpoint-series (those without ready endpoints are listed first)"}
	SvcStaleConntrack = Def{Name: "layerscope_service_stale_conntrack_entries", Subsystem: "service", Type: Gauge,
		Help:   "Conntrack entries DNATed from a Service address to a backend that is no longer one of its endpoints (stale after the pod went away)",
		Labels: []string{"namespace", "service", "backend"}}

	// workload: connections of the pods of this node, by Kubernetes workload.
	WorkloadConnections = Def{Name: "layerscope_workload_connections_total", Subsystem: "workload", Type: Counter,
		Help:   "Connections that ended with a pod of this node as client or server, by the pod's namespace and workload (Deployment, StatefulSet, DaemonSet, Job, or the pod itself), side and outcome",
		Labels: []string{"namespace", "workload", "side", "protocol", "outcome"}, OptLabels: []string{"pod"}}
	WorkloadFoldedSeries = Def{Name: "layerscope_workload_folded_series", Subsystem: "workload", Type: Gauge,
		Help: "Workload label sets beyond --workload-series whose connections are summed into the workload=\"other\" series"}
	WorkloadOverflow = Def{Name: "layerscope_workload_untracked_connections_total", Subsystem: "workload", Type: Counter,
		Help: "Connections of pods of this node not tallied because the workload series bound was reached"}

	// policy: failed connections the Kubernetes NetworkPolicies explain.
	PolicyDenied = Def{Name: "layerscope_policy_denied_connections_total", Subsystem: "policy", Type: Counter,
		Help:   "Failed connections (SYN unanswered, refused, reset) that NetworkPolicies deny, evaluated once per connection when it ended, by the namespace and name of the policy reported (the first default-deny policy selecting the pod, else the first selecting one) and the direction (ingress: the backend's policies, egress: the client's); pod is the isolated pod",
		Labels: []string{"namespace", "policy", "direction"}, OptLabels: []string{"pod"}}

	// kube: the agent's Kubernetes metadata.
	KubeObjects = Def{Name: "layerscope_kube_metadata_objects", Subsystem: "kube", Type: Gauge,
		Help: "Kubernetes objects held in the agent's metadata store, by kind (pod, service, endpointslice)", Labels: []string{"kind"}}
	KubeSynced = Def{Name: "layerscope_kube_metadata_synced", Subsystem: "kube", Type: Gauge,
		Help: "1 when the metadata store has synced from its source (api or file), else 0; source off means no metadata", Labels: []string{"source"}}

	// MTU configuration (from the links the agent watches).
	MTUMismatch = Def{Name: "layerscope_mtu_mismatch", Subsystem: "mtu", Type: Gauge,
		Help:   "1 for each interface whose MTU exceeds what the path it feeds can carry (a pod veth above the overlay's inner MTU, an overlay above its underlay's)",
		Labels: []string{"interface", "expected", "actual", "reason"}}
	MTUMismatches = Def{Name: "layerscope_mtu_mismatches", Subsystem: "mtu", Type: Gauge,
		Help: "Number of MTU mismatches on the node"}
	MTUOverlayExpected = Def{Name: "layerscope_mtu_overlay_expected_bytes", Subsystem: "mtu", Type: Gauge, Unit: "bytes",
		Help: "Inner MTU each overlay can carry over its underlay (underlay MTU minus 50 over IPv4, 70 over IPv6)", Labels: []string{"interface"}}

	// L3 from the kernel's own counters of the namespace (/proc/net/snmp, snmp6).
	KReasmReqds  = kernelFrag("reassembly_requests", "Fragments the kernel received for reassembly")
	KReasmOKs    = kernelFrag("reassembled", "Datagrams the kernel reassembled")
	KReasmFails  = kernelFrag("reassembly_failures", "Reassemblies the kernel gave up (timeouts, overlaps, memory)")
	KFragOKs     = kernelFrag("fragmented", "Datagrams the kernel fragmented to send them")
	KFragFails   = kernelFrag("fragmentation_failures", "Datagrams the kernel could not send because they needed fragmenting and could not be (DF set, or IPv6 forwarding)")
	KFragCreates = kernelFrag("fragments_created", "Fragments the kernel created")
	KDestUnreach = Def{Name: "layerscope_l3_kernel_icmp_dest_unreachable_total", Subsystem: "l3", Type: Counter,
		Help: "ICMP and ICMPv6 destination-unreachable messages the kernel received (in) and sent (out), any code", Labels: []string{"family", "direction"}}
	KPktTooBig = Def{Name: "layerscope_l3_kernel_icmp6_packet_too_big_total", Subsystem: "l3", Type: Counter,
		Help: "ICMPv6 packet-too-big messages the kernel received (in) and sent (out)", Labels: []string{"direction"}}

	// otlp: the trace exporter's own accounting.
	OTLPSpansExported = Def{Name: "layerscope_otlp_spans_exported_total", Subsystem: "otlp", Type: Counter,
		Help: "Spans the OTLP receiver accepted"}
	OTLPSpansDropped = Def{Name: "layerscope_otlp_spans_dropped_total", Subsystem: "otlp", Type: Counter,
		Help: "Spans lost: their connection found the export queue full, or their export failed"}
	OTLPExportErrors = Def{Name: "layerscope_otlp_export_errors_total", Subsystem: "otlp", Type: Counter,
		Help: "Failed exports to the OTLP receiver, after retries"}
	OTLPConnections = Def{Name: "layerscope_otlp_connections_total", Subsystem: "otlp", Type: Counter,
		Help: "Connections handed to the trace exporter by result: exported, sampled_out or dropped (queue full)", Labels: []string{"result"}}
	OTLPForced = Def{Name: "layerscope_otlp_error_connections_total", Subsystem: "otlp", Type: Counter,
		Help: "Connections exported whatever the sampling ratio because they had an error"}
	OTLPQueue = Def{Name: "layerscope_otlp_queue_length", Subsystem: "otlp", Type: Gauge,
		Help: "Connections waiting in the export queue"}

	// api: the history of connection events behind /api/v1/connections and
	// its followers.
	APIHistoryEntries = Def{Name: "layerscope_api_history_entries", Subsystem: "api", Type: Gauge,
		Help: "Connection events held in the agent's history"}
	APIHistoryCapacity = Def{Name: "layerscope_api_history_capacity", Subsystem: "api", Type: Gauge,
		Help: "Connection events the history holds at most (--api-history-size)"}
	APIHistoryEvents = Def{Name: "layerscope_api_history_events_total", Subsystem: "api", Type: Counter,
		Help: "Connection events recorded, by kind: final (the flow ended) or progress (an active flow changed state)", Labels: []string{"kind"}}
	APIHistoryOverwritten = Def{Name: "layerscope_api_history_overwritten_total", Subsystem: "api", Type: Counter,
		Help: "Connection events overwritten by newer ones because the history was full"}
	APIFollowers = Def{Name: "layerscope_api_followers", Subsystem: "api", Type: Gauge,
		Help: "Clients following the connection stream (/api/v1/connections?follow=1)"}
	APIFollowLost = Def{Name: "layerscope_api_follow_events_lost_total", Subsystem: "api", Type: Counter,
		Help: "Connection events followers missed because they read more slowly than events arrived"}
	APIFollowersDropped = Def{Name: "layerscope_api_followers_dropped_total", Subsystem: "api", Type: Counter,
		Help: "Followers disconnected because writing to them stalled longer than the write timeout"}
	APIRequestsRejected = Def{Name: "layerscope_api_requests_rejected_total", Subsystem: "api", Type: Counter,
		Help:   "API requests refused with 429 because as many of their kind (api, follow, capture) were already being served",
		Labels: []string{"kind"}}
	HTTPConnections = Def{Name: "layerscope_http_connections", Subsystem: "http", Type: Gauge,
		Help:   "HTTP connections open, by listener (main, health, socket)",
		Labels: []string{"listener"}}
	HTTPConnectionsClosed = Def{Name: "layerscope_http_connections_closed_total", Subsystem: "http", Type: Counter,
		Help:   "HTTP connections the agent closed to protect itself, by listener and reason (evicted: idle or silent, closed to make room; refused: every open connection busy; peer: a socket peer neither root nor of the socket's group)",
		Labels: []string{"listener", "reason"}}
)

// kernelFrag defines a kernel fragmentation counter by family.
func kernelFrag(name, help string) Def {
	return Def{Name: "layerscope_l3_kernel_" + name + "_total", Subsystem: "l3", Type: Counter, Help: help, Labels: []string{"family"}}
}

// ctStat defines a per-CPU conntrack statistic exported as a counter,
// summed over CPUs unless the cpu label is enabled.
func ctStat(name, help string) Def {
	return Def{Name: "layerscope_conntrack_stat_" + name + "_total", Subsystem: "conntrack", Type: Counter,
		Help: help, OptLabels: []string{"cpu"}}
}

// All returns every metric definition in a stable order.
func All() []Def {
	return []Def{
		BuildInfo, AgentReady, AgentInterfaces, AgentCaptureAttached, AgentCapturePending, ScrapeDuration, ScrapeSuccess,
		L1LinkUp, L1CarrierChanges, L1Errors, L1Drops,
		CapturePackets, CaptureBytes, CaptureDrops, CaptureFreezes,
		CaptureOffloadFallbacks, CaptureOffloadCounted, CaptureOffloadMapFull, CaptureOffloadFlows, DecodeErrors,
		L2ARP, L2VLAN, L2Tunnel, L2TunnelBytes,
		L3Packets, L3ICMP, L3Fragments, L3FragNeeded, L3Reassembly, L3ReassemblyPending, L3FragDuplicates,
		L3PMTUReports, L3Oversize, L3OversizeOffload, L4MSSOverPath,
		L4Packets, L4TCPFlags, L4Retransmits, L4Handshake, L4Connections,
		L6TLSHandshakes, L6TLSClientHellos,
		L7DNSQueries, L7DNSResponses, L7DNSLatency, L7HTTPRequests, L7HTTPResponses, L7HTTPLatency,
		FlowEntries, FlowCapacity, FlowAllocated, FlowInserts, FlowEvictions, FlowRefused, FlowExpired,
		CTEntries, CTLimit, CTFill, CTGrowth, CTETA,
		CTInsertFailed, CTDrop, CTEarlyDrop, CTSearchRestart, CTInvalid, CTClashResolve, CTChainTooLong,
		CTByProtocol, CTByTCPState, CTByFlag, CTTopSource, CTTopService,
		CTEvents, CTEventsLost, CTResyncs, CTErrors, CTDumpDuration,
		SvcConnections, SvcFailureRatio, SvcDeadBackend, SvcFoldedSeries, SvcOverflow, SvcEndpoints, SvcEndpointsUnlisted, SvcStaleConntrack,
		WorkloadConnections, WorkloadFoldedSeries, WorkloadOverflow, PolicyDenied, KubeObjects, KubeSynced,
		MTUMismatch, MTUMismatches, MTUOverlayExpected,
		OTLPSpansExported, OTLPSpansDropped, OTLPExportErrors, OTLPConnections, OTLPForced, OTLPQueue,
		APIHistoryEntries, APIHistoryCapacity, APIHistoryEvents, APIHistoryOverwritten, APIFollowers, APIFollowLost, APIFollowersDropped,
		APIRequestsRejected, HTTPConnections, HTTPConnectionsClosed,
		KReasmReqds, KReasmOKs, KReasmFails, KFragOKs, KFragFails, KFragCreates, KDestUnreach, KPktTooBig,
	}
}
