// Package labtest holds the end-to-end test of the deployment's alerting
// rules and dashboards against the lab: one agent per lab node, a real
// Prometheus server scraping them and evaluating the shipped rules of
// deploy/daemonset, and the lab's scenarios.
//
// # Alerts
//
// The rules file is loaded as shipped except for two rewrites, so that the
// test runs in about a minute rather than hours: every for: duration becomes
// 2s, and every 5m rate or increase window becomes 10s. With a 1s scrape and
// evaluation interval the conntrack-flood scenario (the global
// nf_conntrack_max lowered, under the lab's lock, and restored) must make
// LayerscopeConntrackFillCritical and LayerscopeConntrackDrops fire, the mtu
// scenario LayerscopeMTUMismatch, and all of them resolve once the
// scenarios put the lab back. The dead-backend scenario must make
// LayerscopeDeadBackend fire.
//
// # Kubernetes metadata
//
// The agents read a static metadata file the test writes from the lab's
// topology (writeMetadata): the backends are pods of Deployment web behind
// Service default/my-service, and default/empty is a Service without
// endpoints, so LayerscopeServiceNoEndpoints must fire. Rewriting the file
// without pod-c, while conntrack entries of the earlier scenarios still
// DNAT to it, must make LayerscopeStaleDNATEntries fire, and putting pod-c
// back must resolve it. Every firing alert checked must name its node in
// the description and link its runbook section.
//
// # Dashboards
//
// After every scenario ran, each PromQL target of each dashboard of
// deploy/dashboards is evaluated with its variables substituted (node: both
// lab nodes, namespace: all, the rate interval as Grafana computes it for a
// 1s scrape): time series panels as range queries over the test, stat,
// gauge and table panels as instant queries. Each must return data, except
// the panels listed with the agent gap that keeps them empty in the lab.
//
// # kubectl layerscope
//
// kubectl_test.go and kubectl_capture_test.go install the chart in the
// Kubernetes lab with kubelets and run the operator's client from the root
// namespace with only a kubeconfig (the admin's with --as, or
// ServiceAccount tokens from TokenRequest): its diagnoses must equal the
// node-level ones read from the agents directly (healthy, dead backend,
// DNS, MTU, a full conntrack table under the global limit's lock), its
// observe and observe --follow must merge both nodes in time order, its
// completion must name the API's nodes, pods and services (also through
// kubectl's plugin completion), RBAC refusals must name the permission,
// and captures must open in tshark with basic auth and with the agents'
// Kubernetes auth (TokenReview and SubjectAccessReview against the real
// API server).
//
// The test needs root, the lab and the Prometheus server of
// .ci/prometheus.sh; it skips when not root.
package labtest
