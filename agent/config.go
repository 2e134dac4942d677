package agent

import (
	"log/slog"
	"time"

	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/agent/tracing"
	"github.com/layerscope/layerscope/agent/web"
	"github.com/layerscope/layerscope/agent/workers"
)

// DefaultMetricsAddr is where a locally run agent serves HTTP.
const DefaultMetricsAddr = "127.0.0.1:9431"

// Config configures an Agent. The zero value observes the caller's own
// network namespace and serves on DefaultMetricsAddr.
type Config struct {
	// NetNS is the network namespace to observe, by name (under /run/netns)
	// or path (/proc/PID/ns/net). Empty means the caller's namespace.
	NetNS string
	// Node is this node's name: in events, the status and spans, and for
	// the Kubernetes metadata (the pods watched are this node's). Empty
	// means the base name of NetNS, else the host name, in events and
	// spans, and every pod in the metadata.
	Node string
	// MetricsAddr is the host:port the HTTP endpoint listens on. Empty means
	// DefaultMetricsAddr; port 0 picks a free port (see Agent.Addr).
	MetricsAddr string
	// WebConfigFile is an exporter-toolkit web configuration file (TLS,
	// client certificates, basic auth). Empty serves plain HTTP without
	// authentication.
	WebConfigFile string
	// HealthAddr, when set, is a host:port that serves /healthz and /readyz
	// only, without authentication (for kubelet probes when the main
	// listener requires credentials). Empty means none.
	HealthAddr string
	// APISocket, when set, is a unix socket that serves the same endpoints
	// as MetricsAddr to root and to processes of APISocketGroup, checked
	// with SO_PEERCRED. Empty means none.
	APISocket string
	// APISocketGroup is the group (name or gid) allowed on APISocket
	// besides root. Empty means root only.
	APISocketGroup string
	// HTTP bounds the HTTP server (connections, timeouts); zero fields
	// mean the server package's defaults.
	HTTP server.Config
	// Version and Revision label layerscope_build_info. Empty means "dev"
	// and "unknown".
	Version, Revision string
	// Logger receives the agent's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Capture says what the agent captures and how it decodes it.
	Capture CaptureConfig
	// Conntrack says how the agent watches the conntrack table.
	Conntrack ConntrackConfig
	// Traces says whether and where connection traces are exported.
	Traces TracesConfig
	// OnDemand bounds the captures served on /api/v1/capture.
	OnDemand OnDemandConfig
	// CaptureKubeAuth, when not empty, has the agent identify capture
	// clients by the Kubernetes bearer token they send (web.KubeAuth): a
	// TokenReview and a SubjectAccessReview of create on
	// captures.layerscope.io named after this node in this namespace (the
	// agents'). It needs the Kubernetes API (Kube), and a web
	// configuration without basic-auth users.
	CaptureKubeAuth string
	// Kube says where Kubernetes metadata (pod, service and workload
	// names) comes from.
	Kube KubeConfig
	// API configures the agent API and its history of connections.
	API APIConfig
	// SkipPrivilegeCheck disables the capability check at start (the
	// kernel still refuses what the process may not do).
	SkipPrivilegeCheck bool
}

// The configuration of the parts, defined by the packages that own them.
type (
	// CaptureConfig says what the agent captures (workers).
	CaptureConfig = workers.CaptureConfig
	// TracesConfig says whether and where traces are exported (tracing).
	TracesConfig = tracing.Config
	// OnDemandConfig bounds on-demand captures (web).
	OnDemandConfig = web.OnDemandConfig
)

// ConntrackConfig says how the agent watches the conntrack table. The zero
// value watches it with the watcher's defaults and no opt-in labels.
type ConntrackConfig struct {
	// Disabled turns the conntrack watcher off.
	Disabled bool
	// TopN, when positive, exports the N sources and destinations holding
	// the most entries (addresses as label values: opt-in).
	TopN int
	// PerCPU adds the cpu label to the conntrack statistics (else they are
	// summed over CPUs).
	PerCPU bool
	// ReadBuffer is the event socket's receive buffer in bytes; 0 means the
	// watcher's default (16 MiB).
	ReadBuffer int
}

// KubeConfig says where the agent's Kubernetes metadata comes from. The
// zero value is kube.ModeAuto: a metadata file when File is set, the API
// when the agent runs in a pod, else none.
type KubeConfig struct {
	// Mode is auto, api, file or off; "" means auto.
	Mode kube.Mode
	// File is the static metadata file (Pods, Services, EndpointSlices,
	// Namespaces and NetworkPolicies as
	// `kubectl get -o yaml` prints them).
	File string
	// Kubeconfig is a kubeconfig file for the API; empty means the
	// in-cluster service account.
	Kubeconfig string
	// PodNames adds the pod label to the workload metrics (opt-in: one
	// series per pod).
	PodNames bool
	// PolicyPodNames adds the pod label to
	// layerscope_policy_denied_connections_total (opt-in: one series per
	// isolated pod).
	PolicyPodNames bool
	// NoPolicies turns off the NetworkPolicy evaluation of failed
	// connections (with the API, the agent watches every NetworkPolicy,
	// Namespace and Pod for it).
	NoPolicies bool
	// ServiceBackends adds the backend and workload labels to the service
	// connection counts and failure ratios (opt-in: one series per backend).
	ServiceBackends bool
	// ServiceSeries and WorkloadSeries bound the service and workload label
	// sets exported before further ones are folded into an "other" series;
	// zero means metrics.DefaultServiceSeries and DefaultWorkloadSeries.
	ServiceSeries, WorkloadSeries int
	// EndpointSeries bounds the Services whose ready endpoints are
	// exported, those without any first; zero means
	// metrics.DefaultEndpointSeries.
	EndpointSeries int
	// ReloadInterval is how often a metadata file is checked for changes;
	// zero means kube.DefaultReloadInterval.
	ReloadInterval time.Duration
}

// APIConfig configures the agent API (/api/v1/connections, /api/v1/status)
// and the history of connection events it answers from. The zero value
// keeps history.DefaultSize events, checks active flows every
// history.DefaultProgressInterval and drops a follower whose socket stays
// blocked for web.DefaultFollowWriteTimeout.
type APIConfig struct {
	// HistorySize is the number of connection events kept. Zero means
	// history.DefaultSize.
	HistorySize int
	// ProgressInterval is how often the active flows are checked for a
	// change of state worth an event. Zero means
	// history.DefaultProgressInterval.
	ProgressInterval time.Duration
	// FollowWriteTimeout disconnects a follower whose stream cannot be
	// written for this long. Zero means web.DefaultFollowWriteTimeout.
	FollowWriteTimeout time.Duration
}
