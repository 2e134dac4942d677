// Package daemonset holds the Kubernetes deployment of the layerscope node
// agent and the tests that keep its alerting honest. It has no Go API: the
// package exists so that `go test ./...` checks the files beside it.
//
// # Manifests
//
// kustomization.yaml deploys the agent: namespace.yaml, rbac.yaml (the
// ServiceAccount and a read-only ClusterRole on pods, services, nodes,
// namespaces, endpointslices and networkpolicies), daemonset.yaml (the reasons behind its capabilities,
// UID, GOMEMLIMIT and resources are written beside them), service.yaml (a
// headless Service), servicemonitor.yaml, prometheusrule.yaml and
// dashboards.yaml (the Grafana dashboards' ConfigMaps, generated from
// deploy/dashboards). The Helm chart in deploy/helm/layerscope renders the
// same objects; deploy/manifests's tests render both with the real tools,
// decode them strictly and compare them. measure-resources.sh measures the
// agent's memory and CPU in the lab, the numbers the resources come from.
//
// # Alerts
//
// layerscope-rules.yml is a plain Prometheus rule file with the agent's
// alerts: conntrack fill (warning above 75%, critical above 90%), time to
// conntrack exhaustion under an hour, conntrack drops and insert failures,
// MTU mismatches, a high ICMP fragmentation-needed rate, dead service
// backends, a high DNS SERVFAIL ratio, and the agent being blind (capture
// drops, lost conntrack events, dropped spans, not ready, not scraped).
// Every alert carries a severity label and summary, description and
// runbook_url annotations; the runbook_url points at the alert's section of
// RUNBOOK.md, which walks the layer-by-layer checks.
//
// prometheusrule.yaml wraps the same groups, unchanged, in a
// monitoring.coreos.com/v1 PrometheusRule for the Prometheus Operator. It is
// generated from the plain file:
//
//	go test ./deploy/daemonset -run TestPrometheusRuleInSync -update
//
// # Tests
//
// The tests run promtool (the binary named by LAYERSCOPE_PROMTOOL, else the
// one .ci/prometheus.sh installs in ~/.cache/layerscope/tools; a missing
// binary fails the tests unless LAYERSCOPE_NO_PROMETHEUS=1):
//
//   - promtool check rules on the plain file and on the PrometheusRule's spec;
//   - promtool test rules on rules_test.yml, the unit tests that hold every
//     alert at its thresholds' edges, firing and not firing;
//   - mutations: each alert's expression made never to fire, its
//     comparisons loosened (> to >=, == to !=) and its for: duration
//     removed must each make those unit tests fail, so every threshold edge
//     and every duration is pinned by a test.
//
// Without promtool they also check that the PrometheusRule holds exactly the
// plain file's groups, that every metric the rules and the unit tests name
// is one the agent exports (exporters/metricdef), and that every alert's
// annotations name the instance and the value and point at a RUNBOOK.md
// section that exists.
package daemonset
