// Package manifests holds the tests that keep layerscope's two Kubernetes
// deployments valid and identical: the kustomization in deploy/daemonset and
// the Helm chart in deploy/helm/layerscope. It has no Go API: the package
// exists so that `go test ./...` checks the files under deploy/.
//
// # Renderings
//
// The tests render both with the real tools, `kustomize build
// deploy/daemonset` and `helm template layerscope deploy/helm/layerscope
// --namespace layerscope`, and decode every document strictly: built-in
// kinds through the Kubernetes API machinery's strict deserializer into the
// k8s.io/api types (an unknown or duplicated field, or a field spelled with
// the wrong case, is an error, as with the API server's strict field
// validation), the Prometheus Operator's ServiceMonitor and PrometheusRule
// into types here that model the fields the deployment uses (anything else
// is an error). A deliberately wrong manifest of each kind must be rejected.
//
// Then the two renderings must hold the same objects (kind, namespace and
// name), equal field by field once the labels only Helm adds
// (helm.sh/chart, app.kubernetes.io/managed-by) are set aside; the Namespace
// object is the kustomization's alone (Helm installs into a namespace). And
// each rendering is checked for the properties the deployment promises:
//
//   - the DaemonSet: hostNetwork without hostPID, ClusterFirstWithHostNet,
//     system-node-critical, a toleration of every taint, NODE_NAME from
//     spec.nodeName, GOMEMLIMIT derived from limits.memory, requests and
//     limits, /healthz and /readyz probes on the metrics port, and a
//     container that is not privileged, cannot escalate, has a read-only
//     root filesystem and the runtime's seccomp profile, drops every
//     capability and adds exactly NET_RAW and NET_ADMIN;
//   - RBAC: one ClusterRole granting exactly get, list and watch on pods,
//     services, nodes, namespaces, discovery.k8s.io endpointslices and
//     networking.k8s.io networkpolicies, bound to the
//     agent's ServiceAccount; no other role;
//   - a headless Service and a ServiceMonitor that select the agent's pods,
//     with the pod's node name relabelled to the node label;
//   - the PrometheusRule carries exactly the groups of
//     deploy/daemonset/layerscope-rules.yml, and there is one dashboard
//     ConfigMap (label grafana_dashboard: "1") per deploy/dashboards/*.json
//     with the file's exact content;
//   - the image is ghcr.io/layerscope/layerscope at the chart's appVersion,
//     the Dockerfile's entrypoint is the binary the container's args are
//     given to, and the layerscope binary built from this tree accepts those
//     args.
//
// Non-default chart values (web config, extra flags, objects switched off)
// render and decode strictly too, and `helm lint --strict` passes.
//
// # Sources and copies
//
// Helm's .Files sees only the chart's directory and kustomize's load
// restrictor only the kustomization's, so the single sources have checked
// copies: deploy/dashboards/*.json becomes deploy/daemonset/dashboards.yaml
// (the ConfigMaps) and deploy/helm/layerscope/files/dashboards/*.json, and
// deploy/daemonset/layerscope-rules.yml is copied to
// deploy/helm/layerscope/files/layerscope-rules.yml. Regenerate them with
//
//	go test ./deploy/manifests -run TestGeneratedCopies -update
//
// # Tools
//
// helm and kustomize are the binaries named by LAYERSCOPE_HELM and
// LAYERSCOPE_KUSTOMIZE, else the ones .ci/k8stools.sh installs in
// ~/.cache/layerscope/tools. A missing tool fails the tests unless
// LAYERSCOPE_NO_K8STOOLS=1, which skips the tests that need it.
package manifests
