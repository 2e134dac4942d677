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
// The test needs root, the lab and the Prometheus server of
// .ci/prometheus.sh; it skips when not root.
package labtest
