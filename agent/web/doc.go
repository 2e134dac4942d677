// Package web holds the agent's HTTP handlers: /metrics, the JSON API of
// agent/api (connections, status, PMTU), on-demand capture and the probes.
// It depends only on small getter interfaces (Health, Rings, LinkNames,
// LinkState, FlowStats, Identifier) and on the parts' published state (the
// history ring, the MTU monitor's and PMTU log's cached results, the
// services tally, the metadata store), never on the agent that wires it.
//
// # Endpoints
//
//	GET /metrics               the registry set with SetGatherer
//	GET /api/v1/connections    history events as api.Connection (streamed), or ?follow=1 NDJSON
//	GET /api/v1/status         api.Status
//	GET /api/v1/pmtu           api.PMTU
//	GET /api/v1/capture        a pcap stream for an api.CaptureRequest (identified clients only)
//	GET /healthz, /readyz      the probes (also HealthHandler, for the unauthenticated listener)
//
// connection.go maps a history entry (a flow record with its conntrack
// translation) to its API form: endpoints named from the Kubernetes
// metadata, hops named from the workers, the PMTU reports about it, and a
// verdict per layer.
//
// # Who may capture
//
// A capture is served to a client the server identified (Identifier), or,
// with OnDemandConfig.KubeAuth, to one whose bearer token the Kubernetes
// API server vouches for (TokenReview) and whose user may create
// captures.layerscope.io named after the node in the agents' namespace
// (SubjectAccessReview), as kube-rbac-proxy checks its clients: 401
// without a token or with an invalid one, 403 naming the permission
// otherwise. Answers are remembered briefly and in bounded number
// (kubeauth.go).
//
// # Bounds
//
// At most MaxAPIRequests connections/status/PMTU requests and MaxFollowers
// follow streams at once, and OnDemandConfig.MaxConcurrent captures; more
// get 429 before any work (counted by kind in Rejected). A connections
// answer is written within 30 s; a follower whose stream stays blocked for
// FollowWriteTimeout is dropped (FollowersDropped); a capture must be read
// within its duration plus CaptureWriteGrace. Everything a capture client
// controls is checked before a capture slot is taken.
//
// # Lifecycle
//
// New checks the configuration; SetGatherer and SetServer complete it once
// the registry and the server exist. Close ends the follow streams: the
// agent calls it before shutting the server down, so requests in flight
// end and captures write their trailers.
package web
