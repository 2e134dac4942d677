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
)

// All returns every metric definition in a stable order.
func All() []Def {
	return []Def{
		BuildInfo, AgentReady, AgentInterfaces, AgentCaptureAttached, ScrapeDuration, ScrapeSuccess,
		L1LinkUp, L1CarrierChanges, L1Errors, L1Drops,
	}
}
