// Package dashboards holds layerscope's Grafana dashboards (the *.json files
// of this directory, embedded as Files) and the lint they pass.
//
// # Dashboards
//
// One dashboard per question an on-call engineer asks: the overview by OSI
// layer (where are errors now, L1 → L7), conntrack (fill against the limit
// per node, per-CPU drops and insert failures, time to exhaustion, what
// fills the table), services and DNAT (connections per service and backend
// by outcome, dead backends, Services without endpoints, stale entries),
// MTU and fragmentation, DNS/HTTP/TLS, and the agent's own health. Each has
// the variables datasource (a Prometheus data source), node (values of the
// node label, which the ServiceMonitor sets from the pod's node name by
// relabelling) and namespace (Kubernetes namespaces of the Services the
// agents know). The JSON files are generated from the panel lists in
// generate_test.go:
//
//	go test ./deploy/dashboards -run TestGenerated -update
//
// The deployment turns each file into a ConfigMap for the Grafana sidecar.
//
// # Lint
//
// Lint checks one dashboard: its JSON is a dashboard (uid, title, a current
// schemaVersion, unique panel ids, grid positions inside the 24 columns and
// not overlapping), every panel reads the ${datasource} variable and has a
// unit, the templating has the datasource, node and namespace variables, and
// every PromQL expression parses with the Prometheus parser once the
// variables are substituted, names only metrics of exporters/metricdef (so
// that a renamed metric breaks the lint), and filters every selector by
// node, and by namespace where the metric has that label. Its errors wrap
// the sentinels of errors.go.
//
// # Queries
//
// Queries lists the PromQL of every panel and Substitute replaces the
// Grafana variables in one, for tests that run them against a real
// Prometheus server.
package dashboards
