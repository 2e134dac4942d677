package dashboards

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// The dashboards are written here as lists of panels and rendered into the
// JSON files of this directory:
//
//	go test ./deploy/dashboards -run TestGenerated -update

var update = flag.Bool("update", false, "rewrite the dashboard JSON files from the panel lists")

// ri is the rate window of every rate: Grafana's $__rate_interval, at least
// four scrape intervals.
const ri = "[$__rate_interval]"

// sel returns a selector of metric filtered by the node variable, by the
// namespace variable when the metric has a namespace label, and by the
// extra matchers.
func sel(metric string, extra ...string) string {
	m := []string{`node=~"$node"`}
	if slices.Contains(KnownMetrics()[metric], VarNamespace) {
		m = append(m, `namespace=~"$namespace"`)
	}
	return metric + "{" + strings.Join(append(m, extra...), ",") + "}"
}

// rate returns rate(sel(metric, extra...)[$__rate_interval]).
func rate(metric string, extra ...string) string {
	return "rate(" + sel(metric, extra...) + ri + ")"
}

// quantile returns the q-quantile of a latency histogram over the selected
// nodes.
func quantile(q, metric string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum by (le) (%s))", q, rate(metric+"_bucket"))
}

type target struct {
	expr, legend string
}

type panel struct {
	typ, title, desc, unit string
	w, h                   int
	targets                []target
	instant                bool      // instant queries (stat, table, gauge)
	thresholds             []float64 // steps above green: orange, red
	max                    *float64
	stack                  bool
}

type row struct {
	title  string
	panels []panel
}

type dashboard struct {
	file, uid, title, desc string
	rows                   []row
}

func ts(title, unit, desc string, targets ...target) panel {
	return panel{typ: "timeseries", title: title, unit: unit, desc: desc, w: 12, h: 8, targets: targets}
}

func stat(title, unit, desc string, expr string, thresholds ...float64) panel {
	return panel{typ: "stat", title: title, unit: unit, desc: desc, w: 4, h: 4, targets: []target{{expr, ""}}, instant: true, thresholds: thresholds}
}

func table(title, unit, desc string, w int, targets ...target) panel {
	return panel{typ: "table", title: title, unit: unit, desc: desc, w: w, h: 8, targets: targets, instant: true}
}

func t(expr, legend string) target { return target{expr, legend} }

func (p panel) width(w int) panel { p.w = w; return p }
func (p panel) stacked() panel    { p.stack = true; return p }
func (p panel) upTo(max float64) panel {
	p.max = &max
	return p
}

// failed is the outcome matcher of failed connections.
const failed = `outcome=~"refused|reset|timeout"`

var all = []dashboard{overview, conntrackDash, servicesDash, mtuDash, l7Dash, agentDash}

var overview = dashboard{
	file: "layerscope-overview.json", uid: "layerscope-overview", title: "layerscope / Overview by OSI layer",
	desc: "Where are the errors now: one row per OSI layer, L1 to L7, from the node agents. Red is an error rate above zero.",
	rows: []row{
		{"Where are errors now (per second over the rate interval, selected nodes)", []panel{
			stat("L1 link errors + drops", "pps", "Kernel interface errors and drops of every captured interface (ip -s link).",
				"sum("+rate("layerscope_l1_errors_total")+") + sum("+rate("layerscope_l1_drops_total")+")", 0.001),
			stat("L2 unanswered ARP", "pps", "ARP requests minus replies: neighbours that do not answer.",
				`clamp_min(sum(`+rate("layerscope_l2_arp_total", `op="request"`)+`) - sum(`+rate("layerscope_l2_arp_total", `op="reply"`)+`), 0)`, 1),
			stat("L3 frag-needed", "pps", "ICMP fragmentation-needed and packet-too-big messages: packets too big for their path.",
				"sum("+rate("layerscope_l3_frag_needed_total")+")", 0.001),
			stat("L3 MTU mismatches", "short", "Interfaces whose MTU exceeds what their path carries (see the MTU dashboard).",
				"sum("+sel("layerscope_mtu_mismatches")+")", 1),
			stat("L4 failed connections", "cps", "Connections refused, reset or never answered, as the flow table ended them.",
				"sum("+rate("layerscope_l4_connections_total", failed)+")", 0.001),
			stat("L4 conntrack drops + insert failures", "pps", "Packets conntrack dropped (table full) or could not insert: new connections lost.",
				"sum("+rate("layerscope_conntrack_stat_drop_total")+") + sum("+rate("layerscope_conntrack_stat_insert_failed_total")+")", 0.001),
			stat("L4 conntrack fill (max node)", "percentunit", "The fullest conntrack table of the selected nodes; new connections are dropped at 100%.",
				"max("+sel("layerscope_conntrack_fill_ratio")+")", 0.75, 0.9).upTo(1),
			stat("Service dead backends", "short", "Service backends whose last connections all failed.",
				"sum(max by (namespace, service, port, backend) ("+sel("layerscope_service_dead_backend")+"))", 1),
			stat("L6 TLS hellos unanswered", "percentunit", "Share of TLS ClientHellos without a ServerHello: failed handshakes.",
				"clamp_min(1 - sum("+rate("layerscope_l6_tls_handshakes_total")+") / sum("+rate("layerscope_l6_tls_client_hellos_total")+"), 0)", 0.01, 0.05).upTo(1),
			stat("L7 DNS SERVFAIL", "percentunit", "Share of DNS responses that are SERVFAIL (the resolver is broken).",
				"sum("+rate("layerscope_l7_dns_responses_total", `rcode="servfail"`)+") / sum("+rate("layerscope_l7_dns_responses_total")+")", 0.01, 0.05).upTo(1),
			stat("L7 HTTP 5xx", "percentunit", "Share of HTTP/1.x responses with a 5xx status.",
				"sum("+rate("layerscope_l7_http_responses_total", `status_class="5xx"`)+") / sum("+rate("layerscope_l7_http_responses_total")+")", 0.01, 0.05).upTo(1),
			stat("Agent blind spots", "pps", "Frames the capture rings dropped plus conntrack events lost: what the agent did not see.",
				"sum("+rate("layerscope_capture_drops_total")+") + sum("+rate("layerscope_conntrack_events_lost_total")+")", 0.001),
		}},
		{"L1 physical: links", []panel{
			ts("Interface errors by role", "pps", "Kernel rx/tx errors of the captured interfaces, by node, role (pod veth, bridge, overlay, uplink) and direction.",
				t("sum by (node, role, direction) ("+rate("layerscope_l1_errors_total")+")", "{{node}} {{role}} {{direction}}")),
			ts("Interface drops by role", "pps", "Kernel rx/tx drops of the captured interfaces.",
				t("sum by (node, role, direction) ("+rate("layerscope_l1_drops_total")+")", "{{node}} {{role}} {{direction}}")),
			ts("Links up by role", "short", "Interfaces whose operational state is up.",
				t("sum by (node, role) ("+sel("layerscope_l1_links_up")+")", "{{node}} {{role}}")),
			ts("Carrier changes", "short", "Carrier changes over the rate interval: flapping links.",
				t("sum by (node, role) (increase("+sel("layerscope_l1_carrier_changes_total")+ri+"))", "{{node}} {{role}}")),
		}},
		{"L2 data link: ARP and tunnels", []panel{
			ts("ARP by operation", "pps", "ARP requests and replies; requests far above replies are neighbours that do not answer.",
				t("sum by (node, op) ("+rate("layerscope_l2_arp_total")+")", "{{node}} {{op}}")),
			ts("Encapsulated frames by tunnel", "pps", "VXLAN and Geneve frames decapsulated.",
				t("sum by (node, tunnel) ("+rate("layerscope_l2_tunnel_packets_total")+")", "{{node}} {{tunnel}}")),
		}},
		{"L3 network: IP, ICMP, fragments", []panel{
			ts("IP packets by family", "pps", "IP packets decoded (the inner packet of tunnelled frames).",
				t("sum by (node, family) ("+rate("layerscope_l3_packets_total")+")", "{{node}} {{family}}")),
			ts("ICMP by type and code", "pps", "ICMP and ICMPv6 messages: type 3 code 4 is fragmentation-needed, type 3 code 3 port unreachable, type 11 TTL exceeded.",
				t("sum by (family, type, code) ("+rate("layerscope_l3_icmp_total")+")", "{{family}} type {{type}} code {{code}}")),
			ts("Fragmentation-needed and fragments", "pps", "ICMP frag-needed/packet-too-big, and IP fragments seen: both mean packets larger than a path.",
				t("sum by (node) ("+rate("layerscope_l3_frag_needed_total")+")", "{{node}} frag-needed"),
				t("sum by (node) ("+rate("layerscope_l3_fragments_total")+")", "{{node}} fragments")),
			ts("Reassembly by result", "ops", "Fragmented datagrams by result; incomplete and evicted ones were lost.",
				t("sum by (node, result) ("+rate("layerscope_l3_reassembly_total")+")", "{{node}} {{result}}")),
		}},
		{"L4 transport: TCP, connections, conntrack", []panel{
			ts("TCP SYN and RST", "pps", "SYNs (new connections and their retransmissions) and RSTs (refused or reset connections).",
				t("sum by (node, flag) ("+rate("layerscope_l4_tcp_flags_total", `flag=~"syn|rst"`)+")", "{{node}} {{flag}}")),
			ts("TCP retransmissions", "pps", "Repeated SYNs and data segments: loss on the path.",
				t("sum by (node) ("+rate("layerscope_l4_tcp_retransmits_total")+")", "{{node}}")),
			ts("Connections by outcome", "cps", "Flows the flow table ended, by outcome: refused, reset and timeout are failures.",
				t("sum by (outcome) ("+rate("layerscope_l4_connections_total")+")", "{{outcome}}")).stacked(),
			ts("TCP handshake time", "s", "SYN to the client's ACK, at the interface that saw all three.",
				t(quantile("0.5", "layerscope_l4_tcp_handshake_seconds"), "p50"),
				t(quantile("0.99", "layerscope_l4_tcp_handshake_seconds"), "p99")),
			ts("Conntrack fill by node", "percentunit", "Entries divided by nf_conntrack_max; the kernel drops new connections at 100%.",
				t("max by (node) ("+sel("layerscope_conntrack_fill_ratio")+")", "{{node}}")).upTo(1),
			ts("Conntrack drops and insert failures", "pps", "Packets dropped because the table was full, and entries that could not be inserted.",
				t("sum by (node) ("+rate("layerscope_conntrack_stat_drop_total")+")", "{{node}} drop"),
				t("sum by (node) ("+rate("layerscope_conntrack_stat_insert_failed_total")+")", "{{node}} insert_failed")),
		}},
		{"L5 session and services", []panel{
			ts("Service connections by outcome", "cps", "Connections DNATed to a Service backend on the selected nodes, by outcome.",
				t("sum by (outcome) ("+rate("layerscope_service_connections_total")+")", "{{outcome}}")).stacked(),
			ts("Backend failure ratio", "percentunit", "Share of each Service's connections (each backend's, with --service-backend-label) that failed over five minutes.",
				t("max by (namespace, service, backend) ("+sel("layerscope_service_backend_failure_ratio")+")", "{{namespace}} {{service}} → {{backend}}")).upTo(1),
		}},
		{"L6 presentation: TLS", []panel{
			ts("TLS ClientHello and ServerHello", "ops", "ClientHellos against ServerHellos: a gap is handshakes that failed.",
				t("sum by (node) ("+rate("layerscope_l6_tls_client_hellos_total")+")", "{{node}} ClientHello"),
				t("sum by (node) ("+rate("layerscope_l6_tls_handshakes_total")+")", "{{node}} ServerHello")),
			ts("TLS versions negotiated", "ops", "ServerHellos by negotiated version; 1.0 and 1.1 are deprecated.",
				t("sum by (version) ("+rate("layerscope_l6_tls_handshakes_total")+")", "{{version}}")).stacked(),
		}},
		{"L7 application: DNS and HTTP", []panel{
			ts("DNS responses by rcode", "ops", "NXDOMAIN is a wrong name or namespace, SERVFAIL a broken resolver.",
				t("sum by (rcode) ("+rate("layerscope_l7_dns_responses_total")+")", "{{rcode}}")).stacked(),
			ts("HTTP responses by status class", "reqps", "HTTP/1.x responses seen on the wire.",
				t("sum by (status_class) ("+rate("layerscope_l7_http_responses_total")+")", "{{status_class}}")).stacked(),
		}},
	},
}

var conntrackDash = dashboard{
	file: "layerscope-conntrack.json", uid: "layerscope-conntrack", title: "layerscope / Conntrack",
	desc: "The kernel's connection tracking table per node: how full, how fast it fills, what is dropped, and what fills it.",
	rows: []row{
		{"Fill", []panel{
			panel{typ: "gauge", title: "Fill by node", unit: "percentunit", desc: "Entries / nf_conntrack_max now. Alerts at 75% and 90%.", w: 6, h: 8,
				targets: []target{t("max by (node) ("+sel("layerscope_conntrack_fill_ratio")+")", "{{node}}")}, instant: true, thresholds: []float64{0.75, 0.9}}.upTo(1),
			ts("Entries against the limit", "short", "Entries held and nf_conntrack_max, per node.",
				t("max by (node) ("+sel("layerscope_conntrack_entries")+")", "{{node}} entries"),
				t("max by (node) ("+sel("layerscope_conntrack_entries_limit")+")", "{{node}} limit")),
			panel{typ: "stat", title: "Time to exhaustion", unit: "s", desc: "At the current growth rate: infinite while the table is not growing, 0 when full. Alerts under one hour.", w: 6, h: 8,
				targets: []target{t("min by (node) ("+sel("layerscope_conntrack_exhaustion_eta_seconds")+")", "{{node}}")}, instant: true},
			ts("Growth rate", "short", "Net change of entries per second (moving average).",
				t("max by (node) ("+sel("layerscope_conntrack_entries_growth_rate")+")", "{{node}}")),
			ts("Fill by node", "percentunit", "Entries / nf_conntrack_max over time; the kernel drops new connections at 100%.",
				t("max by (node) ("+sel("layerscope_conntrack_fill_ratio")+")", "{{node}}")).upTo(1),
		}},
		{"Drops and failures (per CPU with --conntrack-per-cpu)", []panel{
			ts("Drops (table full) by CPU", "pps", "Packets dropped because the table was full: \"nf_conntrack: table full, dropping packet\".",
				t("sum by (node, cpu) ("+rate("layerscope_conntrack_stat_drop_total")+")", "{{node}} cpu {{cpu}}")),
			ts("Insert failures by CPU", "pps", "Entries that clashed with an existing one; the packet was dropped.",
				t("sum by (node, cpu) ("+rate("layerscope_conntrack_stat_insert_failed_total")+")", "{{node}} cpu {{cpu}}")),
			ts("Early drops by CPU", "pps", "Unassured entries evicted to make room in a full table.",
				t("sum by (node, cpu) ("+rate("layerscope_conntrack_stat_early_drop_total")+")", "{{node}} cpu {{cpu}}")),
			ts("Other statistics", "pps", "Invalid packets, clash resolutions, search restarts and over-long hash chains.",
				t("sum by (node) ("+rate("layerscope_conntrack_stat_invalid_total")+")", "{{node}} invalid"),
				t("sum by (node) ("+rate("layerscope_conntrack_stat_clash_resolve_total")+")", "{{node}} clash_resolve"),
				t("sum by (node) ("+rate("layerscope_conntrack_stat_search_restart_total")+")", "{{node}} search_restart"),
				t("sum by (node) ("+rate("layerscope_conntrack_stat_chaintoolong_total")+")", "{{node}} chaintoolong")),
		}},
		{"What fills the table", []panel{
			ts("Entries by protocol", "short", "A UDP-heavy table is often DNS without a conntrack bypass.",
				t("sum by (node, protocol) ("+sel("layerscope_conntrack_protocol_entries")+")", "{{node}} {{protocol}}")).stacked(),
			ts("TCP entries by state", "short", "Many TIME_WAIT: short connections; many SYN_SENT: clients hammering a dead target.",
				t("sum by (node, state) ("+sel("layerscope_conntrack_tcp_entries")+")", "{{node}} {{state}}")).stacked(),
			ts("Assured, unreplied and NATed entries", "short", "Unreplied entries are traffic nobody answers; NATed ones are Service connections.",
				t("sum by (node, flag) ("+sel("layerscope_conntrack_flagged_entries")+")", "{{node}} {{flag}}")),
			table("Top sources (--conntrack-top-n)", "short", "The sources holding the most entries.", 6,
				t("topk(10, max by (node, source) ("+sel("layerscope_conntrack_top_source_entries")+"))", "")),
			table("Top destinations (--conntrack-top-n)", "short", "The destinations holding the most entries.", 6,
				t("topk(10, max by (node, service, protocol) ("+sel("layerscope_conntrack_top_service_entries")+"))", "")),
		}},
		{"The agent's view of the table", []panel{
			ts("Events applied by type", "ops", "NEW, UPDATE and DESTROY events the agent read.",
				t("sum by (node, type) ("+rate("layerscope_conntrack_events_total")+")", "{{node}} {{type}}")),
			ts("Events lost and resyncs", "short", "Events lost to a full socket buffer (ENOBUFS) and the full dumps that followed.",
				t("sum by (node) (increase("+sel("layerscope_conntrack_events_lost_total")+ri+"))", "{{node}} lost"),
				t("sum by (node) (increase("+sel("layerscope_conntrack_resyncs_total")+ri+"))", "{{node}} resyncs")),
		}},
	},
}

var servicesDash = dashboard{
	file: "layerscope-services.json", uid: "layerscope-services", title: "layerscope / Services and DNAT",
	desc: "Connections that kube-proxy DNATed on the selected nodes, per Service and backend: outcomes, dead backends, Services without endpoints, stale conntrack entries. service is the Service's name with Kubernetes metadata, else its address.",
	rows: []row{
		{"Now", []panel{
			stat("Services without endpoints", "short", "Services whose EndpointSlices hold no ready endpoint.",
				"sum(max by (namespace, service) ("+sel("layerscope_service_endpoints")+") == bool 0)", 1).width(6),
			stat("Dead backends", "short", "Backends whose last three or more connections all failed.",
				"sum(max by (namespace, service, port, backend) ("+sel("layerscope_service_dead_backend")+"))", 1).width(6),
			stat("Stale DNAT entries", "short", "Conntrack entries DNATed to a backend that is no longer an endpoint.",
				"sum("+sel("layerscope_service_stale_conntrack_entries")+")", 1).width(6),
			stat("Untracked connections", "cps", "Connections not tallied because the series bound was reached.",
				"sum("+rate("layerscope_service_untracked_connections_total")+")", 0.001).width(6),
		}},
		{"Connections per Service and backend", []panel{
			ts("Connections by Service and outcome", "cps", "",
				t("sum by (namespace, service, outcome) ("+rate("layerscope_service_connections_total")+")", "{{namespace}} {{service}} {{outcome}}")),
			ts("Failed connections by backend", "cps", "Refused, reset and timed-out connections per Service (per backend with --service-backend-label): one bad backend out of N fails one in N requests.",
				t("sum by (namespace, service, backend, outcome) ("+rate("layerscope_service_connections_total", failed)+")", "{{namespace}} {{service}} → {{backend}} {{outcome}}")),
			ts("Backend failure ratio", "percentunit", "Share of each Service's connections (each backend's, with --service-backend-label) that failed over five minutes.",
				t("max by (namespace, service, backend) ("+sel("layerscope_service_backend_failure_ratio")+")", "{{namespace}} {{service}} → {{backend}}")).upTo(1),
			table("Backends (1 = dead)", "short", "Dead backends with the workload they belong to (every backend seen, dead or alive, with --service-backend-label).", 12,
				t("max by (namespace, service, port, backend, workload, protocol) ("+sel("layerscope_service_dead_backend")+")", "")),
		}},
		{"Endpoints and stale entries", []panel{
			table("Ready endpoints per Service", "short", "From the EndpointSlices; 0 means connections are refused.", 12,
				t("min by (namespace, service) ("+sel("layerscope_service_endpoints")+")", "")),
			table("Stale DNAT entries by backend", "short", "Entries still DNATing to a pod that is no longer an endpoint.", 12,
				t("sum by (node, namespace, service, backend) ("+sel("layerscope_service_stale_conntrack_entries")+")", "")),
		}},
		{"Workloads of the selected nodes", []panel{
			ts("Connections by workload and side", "cps", "Connections that ended with a pod of these nodes as client or server.",
				t("sum by (namespace, workload, side) ("+rate("layerscope_workload_connections_total")+")", "{{namespace}} {{workload}} {{side}}")),
			ts("Failed connections by workload", "cps", "",
				t("sum by (namespace, workload, side, outcome) ("+rate("layerscope_workload_connections_total", failed)+")", "{{namespace}} {{workload}} {{side}} {{outcome}}")),
		}},
	},
}

var mtuDash = dashboard{
	file: "layerscope-mtu.json", uid: "layerscope-mtu", title: "layerscope / MTU and fragmentation",
	desc: "Packets larger than their path: MTU mismatches between pod, overlay and NIC, ICMP frag-needed, oversize packets, fragments and reassembly failures.",
	rows: []row{
		{"Now", []panel{
			stat("MTU mismatches", "short", "Interfaces whose MTU exceeds what their path carries.", "sum("+sel("layerscope_mtu_mismatches")+")", 1).width(6),
			stat("Frag-needed", "pps", "ICMP fragmentation-needed and packet-too-big messages.", "sum("+rate("layerscope_l3_frag_needed_total")+")", 0.001).width(6),
			stat("Oversize packets", "pps", "Packets too big for the path they take off the node: dropped.", "sum("+rate("layerscope_l3_oversize_total")+")", 0.001).width(6),
			stat("Kernel reassembly failures", "pps", "Reassemblies the kernel gave up.", "sum("+rate("layerscope_l3_kernel_reassembly_failures_total")+")", 0.001).width(6),
		}},
		{"Mismatches", []panel{
			table("Interfaces mismatched in the time range", "short", "Each interface that was above its path's MTU at some point of the selected range.", 12,
				t("max by (node, interface, expected, actual, reason) (max_over_time("+sel("layerscope_mtu_mismatch")+"[$__range]))", "")),
			ts("Mismatches by node", "short", "",
				t("max by (node) ("+sel("layerscope_mtu_mismatches")+")", "{{node}}")),
			ts("Overlay inner MTU", "bytes", "What each overlay carries over its underlay (underlay MTU minus 50 over IPv4, 70 over IPv6).",
				t("max by (node, interface) ("+sel("layerscope_mtu_overlay_expected_bytes")+")", "{{node}} {{interface}}")),
		}},
		{"Too big for the path", []panel{
			ts("Frag-needed by family", "pps", "",
				t("sum by (node, family) ("+rate("layerscope_l3_frag_needed_total")+")", "{{node}} {{family}}")),
			ts("Path MTU reported", "pps", "The MTU the frag-needed messages report: the smallest link of the path.",
				t("sum by (node, mtu) ("+rate("layerscope_l3_pmtu_reports_total")+")", "{{node}} MTU {{mtu}}")),
			ts("Oversize packets by role", "pps", "DF (or IPv6) packets entering from an interface that are too big for the path out: dropped.",
				t("sum by (node, role) ("+rate("layerscope_l3_oversize_total")+")", "{{node}} {{role}}"),
				t("sum by (node, role) ("+rate("layerscope_l3_offload_oversize_total")+")", "{{node}} {{role}} offload")),
			ts("SYN MSS above the path", "pps", "SYNs announcing a segment size the path cannot carry.",
				t("sum by (node, role) ("+rate("layerscope_l4_tcp_mss_over_path_total")+")", "{{node}} {{role}}")),
		}},
		{"Fragments and reassembly", []panel{
			ts("Fragments by role and position", "pps", "",
				t("sum by (node, role, position) ("+rate("layerscope_l3_fragments_total")+")", "{{node}} {{role}} {{position}}")),
			ts("Reassembly by result (agent)", "ops", "Fragmented datagrams seen: completed, incomplete (lost fragments) or evicted.",
				t("sum by (node, result) ("+rate("layerscope_l3_reassembly_total")+")", "{{node}} {{result}}"),
				t("sum by (node) ("+sel("layerscope_l3_reassembly_pending")+")", "{{node}} pending")),
			ts("Kernel reassembly", "pps", "The kernel's own counters (/proc/net/snmp) of the node namespace.",
				t("sum by (node) ("+rate("layerscope_l3_kernel_reassembly_requests_total")+")", "{{node}} fragments in"),
				t("sum by (node) ("+rate("layerscope_l3_kernel_reassembled_total")+")", "{{node}} reassembled"),
				t("sum by (node) ("+rate("layerscope_l3_kernel_reassembly_failures_total")+")", "{{node}} failed")),
			ts("Kernel fragmentation", "pps", "Datagrams the kernel fragmented, the fragments it made, and those it could not send (DF set).",
				t("sum by (node) ("+rate("layerscope_l3_kernel_fragmented_total")+")", "{{node}} fragmented"),
				t("sum by (node) ("+rate("layerscope_l3_kernel_fragments_created_total")+")", "{{node}} fragments created"),
				t("sum by (node) ("+rate("layerscope_l3_kernel_fragmentation_failures_total")+")", "{{node}} failed")),
			ts("Duplicate fragments", "pps", "",
				t("sum by (node, family) ("+rate("layerscope_l3_fragment_duplicates_total")+")", "{{node}} {{family}}")),
			ts("Kernel ICMP destination unreachable", "pps", "",
				t("sum by (node, family, direction) ("+rate("layerscope_l3_kernel_icmp_dest_unreachable_total")+")", "{{node}} {{family}} {{direction}}"),
				t("sum by (node, direction) ("+rate("layerscope_l3_kernel_icmp6_packet_too_big_total")+")", "{{node}} packet too big {{direction}}")),
		}},
	},
}

var l7Dash = dashboard{
	file: "layerscope-dns-http-tls.json", uid: "layerscope-l7", title: "layerscope / DNS, HTTP and TLS",
	desc: "The application layers as seen on the wire: DNS answers and latency, HTTP/1.x status and latency, TLS handshakes.",
	rows: []row{
		{"DNS", []panel{
			ts("Queries and responses", "ops", "",
				t("sum by (node) ("+rate("layerscope_l7_dns_queries_total")+")", "{{node}} queries"),
				t("sum by (node) ("+rate("layerscope_l7_dns_responses_total")+")", "{{node}} responses")),
			ts("Responses by rcode", "ops", "NXDOMAIN: wrong name or namespace. SERVFAIL: the resolver (CoreDNS) is broken.",
				t("sum by (rcode) ("+rate("layerscope_l7_dns_responses_total")+")", "{{rcode}}")).stacked(),
			ts("NXDOMAIN and SERVFAIL ratio", "percentunit", "The SERVFAIL alert fires above 5%.",
				t("sum("+rate("layerscope_l7_dns_responses_total", `rcode="nxdomain"`)+") / sum("+rate("layerscope_l7_dns_responses_total")+")", "NXDOMAIN"),
				t("sum("+rate("layerscope_l7_dns_responses_total", `rcode="servfail"`)+") / sum("+rate("layerscope_l7_dns_responses_total")+")", "SERVFAIL")).upTo(1),
			ts("Latency", "s", "Query to response, matched by ID.",
				t(quantile("0.5", "layerscope_l7_dns_latency_seconds"), "p50"),
				t(quantile("0.99", "layerscope_l7_dns_latency_seconds"), "p99")),
		}},
		{"HTTP/1.x", []panel{
			ts("Requests", "reqps", "",
				t("sum by (node) ("+rate("layerscope_l7_http_requests_total")+")", "{{node}}")),
			ts("Responses by status class", "reqps", "",
				t("sum by (status_class) ("+rate("layerscope_l7_http_responses_total")+")", "{{status_class}}")).stacked(),
			ts("Error ratio", "percentunit", "4xx and 5xx responses over all.",
				t("sum("+rate("layerscope_l7_http_responses_total", `status_class="5xx"`)+") / sum("+rate("layerscope_l7_http_responses_total")+")", "5xx"),
				t("sum("+rate("layerscope_l7_http_responses_total", `status_class="4xx"`)+") / sum("+rate("layerscope_l7_http_responses_total")+")", "4xx")).upTo(1),
			ts("Latency", "s", "Request to response within the flow.",
				t(quantile("0.5", "layerscope_l7_http_latency_seconds"), "p50"),
				t(quantile("0.99", "layerscope_l7_http_latency_seconds"), "p99")),
		}},
		{"TLS", []panel{
			ts("ClientHello and ServerHello", "ops", "A ClientHello without a ServerHello is a failed handshake.",
				t("sum("+rate("layerscope_l6_tls_client_hellos_total")+")", "ClientHello"),
				t("sum("+rate("layerscope_l6_tls_handshakes_total")+")", "ServerHello")),
			ts("Versions negotiated", "ops", "",
				t("sum by (version) ("+rate("layerscope_l6_tls_handshakes_total")+")", "{{version}}")).stacked(),
		}},
	},
}

var agentDash = dashboard{
	file: "layerscope-agent.json", uid: "layerscope-agent", title: "layerscope / Agent health",
	desc: "The agents themselves: are they scraped and ready, what do they fail to see (capture drops, lost conntrack events, dropped spans), what do they cost.",
	rows: []row{
		{"Agents", []panel{
			stat("Agents up", "short", "Scrape targets of the agent that answered the last scrape.",
				`sum(up{job=~".*layerscope.*",node=~"$node"})`).width(6),
			stat("Agents ready", "short", "Agents whose capture and netlink sources are all open.",
				"sum("+sel("layerscope_agent_ready")+")").width(6),
			stat("Capture drops", "pps", "Frames the kernel dropped because a capture ring was full.",
				"sum("+rate("layerscope_capture_drops_total")+")", 0.001).width(6),
			stat("Conntrack events lost", "short", "Over the rate interval.",
				"sum(increase("+sel("layerscope_conntrack_events_lost_total")+ri+"))", 1).width(6),
			table("Build", "short", "", 12,
				t("max by (node, version, revision, goversion) ("+sel("layerscope_build_info")+")", "")),
			table("Kubernetes metadata (1 = synced)", "short", "Whether each agent's metadata store has synced, by source (api, file, off).", 12,
				t("max by (node, source) ("+sel("layerscope_kube_metadata_synced")+")", "")),
		}},
		{"Capture", []panel{
			ts("Frames captured by role", "pps", "",
				t("sum by (node, role) ("+rate("layerscope_capture_packets_total")+")", "{{node}} {{role}}")),
			ts("Frames dropped and queue freezes", "pps", "The kernel's TPACKET_V3 counters: drops mean undercounted metrics.",
				t("sum by (node, role) ("+rate("layerscope_capture_drops_total")+")", "{{node}} {{role}} drops"),
				t("sum by (node, role) ("+rate("layerscope_capture_queue_freezes_total")+")", "{{node}} {{role}} freezes")),
			ts("Interfaces attached", "short", "Capture rings attached by role.",
				t("sum by (node, role) ("+sel("layerscope_agent_capture_attached")+")", "{{node}} {{role}}")),
			ts("Decode errors", "pps", "Frames whose decoding stopped on a malformed header.",
				t("sum by (node, layer, reason) ("+rate("layerscope_decode_errors_total")+")", "{{node}} {{layer}} {{reason}}")),
		}},
		{"Conntrack watcher and flow table", []panel{
			ts("Conntrack events lost, resyncs, errors", "short", "Over the rate interval.",
				t("sum by (node) (increase("+sel("layerscope_conntrack_events_lost_total")+ri+"))", "{{node}} events lost"),
				t("sum by (node) (increase("+sel("layerscope_conntrack_resyncs_total")+ri+"))", "{{node}} resyncs"),
				t("sum by (node, op) (increase("+sel("layerscope_conntrack_errors_total")+ri+"))", "{{node}} {{op}} errors")),
			ts("Last conntrack dump", "s", "Duration of the last full dump of the table.",
				t("max by (node) ("+sel("layerscope_conntrack_last_dump_duration_seconds")+")", "{{node}}")),
			ts("Flow table entries against the bound", "short", "",
				t("max by (node) ("+sel("layerscope_flowtable_entries")+")", "{{node}} entries"),
				t("max by (node) ("+sel("layerscope_flowtable_entries_limit")+")", "{{node}} limit")),
			ts("Flows evicted and refused", "ops", "Flows pushed out of, or kept out of, a full table.",
				t("sum by (node) ("+rate("layerscope_flowtable_evictions_total")+")", "{{node}} evicted"),
				t("sum by (node) ("+rate("layerscope_flowtable_refused_total")+")", "{{node}} refused"),
				t("sum by (node) ("+rate("layerscope_service_untracked_connections_total")+")", "{{node}} service untracked")),
		}},
		{"Traces (OTLP)", []panel{
			ts("Spans exported and dropped", "ops", "Dropped spans: the export queue was full or exports failed.",
				t("sum by (node) ("+rate("layerscope_otlp_spans_exported_total")+")", "{{node}} exported"),
				t("sum by (node) ("+rate("layerscope_otlp_spans_dropped_total")+")", "{{node}} dropped"),
				t("sum by (node) ("+rate("layerscope_otlp_export_errors_total")+")", "{{node}} export errors")),
			ts("Connections handed to the exporter", "ops", "By result: exported, sampled out, dropped.",
				t("sum by (node, result) ("+rate("layerscope_otlp_connections_total")+")", "{{node}} {{result}}"),
				t("max by (node) ("+sel("layerscope_otlp_queue_length")+")", "{{node}} queued")),
		}},
		{"Scrape and cost", []panel{
			ts("Scrape duration", "s", "",
				t(`max by (node) (scrape_duration_seconds{job=~".*layerscope.*",node=~"$node"})`, "{{node}}")),
			ts("Collector duration", "s", "Time each collector of the agent took during the scrape.",
				t("max by (node, collector) ("+sel("layerscope_agent_collector_duration_seconds")+")", "{{node}} {{collector}}")),
			ts("Collectors failing", "short", "Collectors that failed their last scrape.",
				t("count by (node) ("+sel("layerscope_agent_collector_success")+" == 0) or sum by (node) ("+sel("layerscope_agent_collector_success")+" * 0)", "{{node}}")),
			ts("CPU and memory", "short", "CPU in cores and resident memory in GiB of the agent process.",
				t(`sum by (node) (rate(process_cpu_seconds_total{job=~".*layerscope.*",node=~"$node"}`+ri+`))`, "{{node}} CPU cores"),
				t(`max by (node) (process_resident_memory_bytes{job=~".*layerscope.*",node=~"$node"}) / 2^30`, "{{node}} RSS GiB")),
		}},
	},
}

// render builds the Grafana JSON of d.
func (d dashboard) render() ([]byte, error) {
	ds := map[string]any{"type": "prometheus", "uid": DatasourceRef}
	var panels []any
	id, y := 0, 0
	for _, r := range d.rows {
		id++
		panels = append(panels, map[string]any{
			"id": id, "type": "row", "title": r.title, "collapsed": false,
			"gridPos": map[string]int{"x": 0, "y": y, "w": 24, "h": 1}, "panels": []any{},
		})
		y++
		x, lineH := 0, 0
		for _, p := range r.panels {
			if x+p.w > 24 {
				x, y, lineH = 0, y+lineH, 0
			}
			id++
			panels = append(panels, p.render(id, x, y, ds))
			x += p.w
			lineH = max(lineH, p.h)
		}
		y += lineH
	}
	variable := func(name, label, query string) map[string]any {
		return map[string]any{
			"name": name, "label": label, "type": "query", "datasource": ds,
			"query":      map[string]any{"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
			"definition": query, "refresh": 2, "multi": true, "includeAll": true, "allValue": ".*",
			"current": map[string]any{"text": "All", "value": "$__all"}, "sort": 1, "regex": "", "options": []any{}, "hide": 0,
		}
	}
	out := map[string]any{
		"uid": d.uid, "title": d.title, "description": d.desc, "tags": []string{"layerscope"},
		"schemaVersion": SchemaVersion, "version": 1, "editable": true, "graphTooltip": 1,
		"timezone": "browser", "refresh": "30s", "time": map[string]string{"from": "now-1h", "to": "now"},
		"links":       []any{map[string]any{"type": "dashboards", "tags": []string{"layerscope"}, "asDropdown": true, "title": "layerscope", "includeVars": true, "keepTime": true}},
		"annotations": map[string]any{"list": []any{}},
		"templating": map[string]any{"list": []any{
			map[string]any{"name": VarDatasource, "label": "Data source", "type": "datasource", "query": "prometheus",
				"current": map[string]any{}, "hide": 0, "refresh": 1, "regex": "", "options": []any{}},
			variable(VarNode, "Node", `label_values(layerscope_build_info, node)`),
			variable(VarNamespace, "Namespace", `label_values(layerscope_service_endpoints{node=~"$node"}, namespace)`),
		}},
		"panels": panels,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (p panel) render(id, x, y int, ds map[string]any) map[string]any {
	steps := []any{map[string]any{"color": "green", "value": nil}}
	colors := []string{"red"}
	if len(p.thresholds) == 2 {
		colors = []string{"orange", "red"}
	}
	for i, v := range p.thresholds {
		steps = append(steps, map[string]any{"color": colors[min(i, len(colors)-1)], "value": v})
	}
	defaults := map[string]any{"unit": p.unit, "thresholds": map[string]any{"mode": "absolute", "steps": steps}}
	if p.unit == "percentunit" || p.typ == "timeseries" || p.typ == "gauge" {
		defaults["min"] = 0
	}
	if p.max != nil {
		defaults["max"] = *p.max
	}
	var options map[string]any
	switch p.typ {
	case "timeseries":
		stacking := "none"
		if p.stack {
			stacking = "normal"
		}
		defaults["custom"] = map[string]any{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
			"spanNulls": false, "stacking": map[string]any{"mode": stacking, "group": "A"}}
		defaults["color"] = map[string]any{"mode": "palette-classic"}
		options = map[string]any{
			"legend":  map[string]any{"displayMode": "table", "placement": "bottom", "showLegend": true, "calcs": []string{"lastNotNull", "max"}},
			"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
		}
	case "stat":
		options = map[string]any{"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"colorMode": "background", "graphMode": "none", "textMode": "value_and_name", "justifyMode": "auto", "orientation": "auto"}
	case "gauge":
		options = map[string]any{"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"showThresholdMarkers": true, "showThresholdLabels": false, "orientation": "auto"}
	case "table":
		options = map[string]any{"showHeader": true, "cellHeight": "sm", "sortBy": []any{map[string]any{"displayName": "Value", "desc": true}}}
	}
	var targets []any
	for i, tg := range p.targets {
		tt := map[string]any{"refId": string(rune('A' + i)), "datasource": ds, "expr": tg.expr, "legendFormat": tg.legend,
			"range": !p.instant, "instant": p.instant, "editorMode": "code"}
		if p.typ == "table" {
			tt["format"] = "table"
		}
		if tg.legend == "" {
			tt["legendFormat"] = "__auto"
		}
		targets = append(targets, tt)
	}
	out := map[string]any{
		"id": id, "type": p.typ, "title": p.title, "description": p.desc, "datasource": ds,
		"gridPos":     map[string]int{"x": x, "y": y, "w": p.w, "h": p.h},
		"fieldConfig": map[string]any{"defaults": defaults, "overrides": []any{}},
		"options":     options,
		"targets":     targets,
	}
	if p.typ == "table" {
		out["transformations"] = []any{map[string]any{"id": "organize", "options": map[string]any{"excludeByName": map[string]bool{"Time": true}}}}
	}
	return out
}

// TestGenerated checks that every dashboard file is what its panel list
// renders (with -update, writes it), and that no other JSON file is here.
func TestGenerated(t *testing.T) {
	want := map[string]bool{}
	for _, d := range all {
		want[d.file] = true
		b, err := d.render()
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(d.file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(d.file)
		if err != nil {
			t.Fatalf("%v: run go test ./deploy/dashboards -run TestGenerated -update", err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is not what generate_test.go renders: run go test ./deploy/dashboards -run TestGenerated -update", d.file)
		}
	}
	if *update {
		return
	}
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if !want[name] {
			t.Errorf("%s: not generated by generate_test.go", name)
		}
	}
}
