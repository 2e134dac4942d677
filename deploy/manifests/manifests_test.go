package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"
)

// helmOnlyLabels are the labels Helm's standard helpers add that a
// kustomization has no use for; they are set aside before comparing.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by"}

// The kinds and names both renderings hold besides the dashboards.
var wantKeys = []string{
	"ClusterRole /layerscope",
	"ClusterRoleBinding /layerscope",
	"DaemonSet layerscope/layerscope",
	"PrometheusRule layerscope/layerscope",
	"Service layerscope/layerscope",
	"ServiceAccount layerscope/layerscope",
	"ServiceMonitor layerscope/layerscope",
}

type renderings struct {
	kustomize, helm []object
}

func renderBoth(t *testing.T) renderings {
	t.Helper()
	return renderings{
		kustomize: mustDecode(t, "kustomize build deploy/daemonset", kustomizeBuild(t)),
		helm:      mustDecode(t, "helm template deploy/helm/layerscope", helmTemplate(t)),
	}
}

func (r renderings) each(t *testing.T, f func(t *testing.T, objs []object)) {
	t.Run("kustomize", func(t *testing.T) { f(t, r.kustomize) })
	t.Run("helm", func(t *testing.T) { f(t, r.helm) })
}

func find[T any](t *testing.T, objs []object, kind string) []T {
	t.Helper()
	var out []T
	for _, o := range objs {
		if o.Kind != kind {
			continue
		}
		v, ok := o.Obj.(T)
		if !ok {
			t.Fatalf("%s decoded as %T", o.key(), o.Obj)
		}
		out = append(out, v)
	}
	return out
}

func one[T any](t *testing.T, objs []object, kind string) T {
	t.Helper()
	all := find[T](t, objs, kind)
	if len(all) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(all), kind)
	}
	return all[0]
}

// TestRenderingsAgree checks that kustomize and helm render the same
// objects, field by field.
func TestRenderingsAgree(t *testing.T) {
	checkAgree(t, renderBoth(t), wantKeys)
}

// TestRenderingsAgreeWithoutOperator checks the same of
// deploy/daemonset-without-operator and the chart installed where the
// Prometheus Operator's CRDs are not served.
func TestRenderingsAgreeWithoutOperator(t *testing.T) {
	r := renderings{
		kustomize: mustDecode(t, "kustomize build "+kustomizeLiteDir, run(t, nil, tool(t, "kustomize", envKustomize, kustomizeVersion), "build", kustomizeLiteDir)),
		helm:      mustDecode(t, "helm template deploy/helm/layerscope", helmTemplateFor(t)),
	}
	want := slices.DeleteFunc(slices.Clone(wantKeys), func(k string) bool {
		return strings.HasPrefix(k, "ServiceMonitor ") || strings.HasPrefix(k, "PrometheusRule ")
	})
	checkAgree(t, r, want)
}

func checkAgree(t *testing.T, r renderings, wantKeys []string) {
	t.Helper()
	dashboards := dashboardFiles(t)
	want := slices.Clone(wantKeys)
	for _, d := range dashboards {
		want = append(want, "ConfigMap layerscope/"+dashboardConfigMap(d.name))
	}
	slices.Sort(want)

	helmKeys := keys(r.helm)
	if !slices.Equal(helmKeys, want) {
		t.Errorf("helm renders\n  %s\nwant\n  %s", strings.Join(helmKeys, "\n  "), strings.Join(want, "\n  "))
	}
	kustKeys := keys(r.kustomize)
	wantKust := append(slices.Clone(want), "Namespace /layerscope")
	slices.Sort(wantKust)
	if !slices.Equal(kustKeys, wantKust) {
		t.Errorf("kustomize renders\n  %s\nwant\n  %s", strings.Join(kustKeys, "\n  "), strings.Join(wantKust, "\n  "))
	}

	byKey := map[string]object{}
	for _, o := range r.kustomize {
		byKey[o.key()] = o
	}
	quantity := cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })
	for _, h := range r.helm {
		k, ok := byKey[h.key()]
		if !ok {
			continue // reported above
		}
		for _, set := range h.labelSets() {
			for _, l := range helmOnlyLabels {
				if _, ok := set[l]; !ok {
					t.Errorf("helm's %s lacks the label %s", h.key(), l)
				}
				delete(set, l)
			}
		}
		if d := cmp.Diff(k.Obj, h.Obj, quantity); d != "" {
			t.Errorf("%s differs (-kustomize +helm):\n%s", h.key(), d)
		}
	}
}

// TestDaemonSet checks the agent's pod: where and how it runs, and the
// security properties.
func TestDaemonSet(t *testing.T) {
	renderBoth(t).each(t, func(t *testing.T, objs []object) {
		ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet")
		checkDaemonSet(t, ds)

		// The pods are selected by the DaemonSet, the Service and the
		// ServiceMonitor with the same labels.
		sel := ds.Spec.Selector.MatchLabels
		if len(sel) == 0 {
			t.Fatal("DaemonSet has no selector labels")
		}
		for k, v := range sel {
			if ds.Spec.Template.Labels[k] != v {
				t.Errorf("pod template lacks the selector label %s=%s", k, v)
			}
		}
		svc := one[*corev1.Service](t, objs, "Service")
		if !maps(svc.Spec.Selector, sel) {
			t.Errorf("Service selects %v, DaemonSet %v", svc.Spec.Selector, sel)
		}
		sa := one[*corev1.ServiceAccount](t, objs, "ServiceAccount")
		if ds.Spec.Template.Spec.ServiceAccountName != sa.Name {
			t.Errorf("pods run as ServiceAccount %q, the rendering's is %q", ds.Spec.Template.Spec.ServiceAccountName, sa.Name)
		}
		if ds.Namespace != namespace || sa.Namespace != namespace || svc.Namespace != namespace {
			t.Errorf("namespaces: DaemonSet %q, ServiceAccount %q, Service %q, want %q", ds.Namespace, sa.Namespace, svc.Namespace, namespace)
		}
	})
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("hostNetwork %v, hostPID %v, hostIPC %v; want true, false, false", pod.HostNetwork, pod.HostPID, pod.HostIPC)
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q, want ClusterFirstWithHostNet", pod.DNSPolicy)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q, want system-node-critical", pod.PriorityClassName)
	}
	tolerateAll := false
	for _, tol := range pod.Tolerations {
		if tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "" {
			tolerateAll = true
		}
	}
	if !tolerateAll {
		t.Errorf("tolerations %+v: none tolerates every taint (operator Exists, no key, no effect)", pod.Tolerations)
	}
	if pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext runAsNonRoot: the capabilities need UID 0")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s mounts the host path %s", v.Name, v.HostPath.Path)
		}
	}
	if len(pod.InitContainers) != 0 || len(pod.Containers) != 1 {
		t.Fatalf("%d init containers and %d containers, want 0 and 1", len(pod.InitContainers), len(pod.Containers))
	}
	c := pod.Containers[0]

	if c.Image != imageRepo+":"+appVersion(t) {
		t.Errorf("image %q, want %s:%s (the chart's appVersion)", c.Image, imageRepo, appVersion(t))
	}
	if len(c.Command) != 0 {
		t.Errorf("command %q: the image's entrypoint is the binary, give it args only", c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "agent" || !slices.Contains(c.Args, "--metrics-addr=:9431") {
		t.Errorf("args %q: want agent --metrics-addr=:9431 …", c.Args)
	}
	if slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--capture-api") || strings.HasPrefix(a, "--api-socket")
	}) {
		t.Errorf("args %q: on-demand captures must be off by default", c.Args)
	}
	if !slices.Contains(c.Args, "--health-addr=:9432") {
		t.Errorf("args %q: want the probes' listener --health-addr=:9432", c.Args)
	}
	if len(c.Ports) != 2 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9431 || c.Ports[1].Name != "health" || c.Ports[1].ContainerPort != 9432 {
		t.Errorf("ports %+v, want metrics 9431 and health 9432", c.Ports)
	}

	// Probes on the agent's endpoints.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		// The health listener never asks for credentials: a web config
		// that protects the metrics port leaves the probes working.
		if g := p.probe.HTTPGet; g.Path != p.path || g.Port.String() != "health" || g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s probe %s %s on port %s, want HTTP %s on health", p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
	}

	// Environment: the node name and GOMEMLIMIT from the memory limit. An
	// env value can only refer to variables defined before it.
	envIndex := map[string]int{}
	for i, e := range c.Env {
		envIndex[e.Name] = i
	}
	if i, ok := envIndex["NODE_NAME"]; !ok || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil ||
		c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the fieldRef spec.nodeName: %+v", c.Env)
	}
	im, ok1 := envIndex["MEMORY_LIMIT_MIB"]
	ig, ok2 := envIndex["GOMEMLIMIT"]
	switch {
	case !ok1 || !ok2:
		t.Errorf("MEMORY_LIMIT_MIB and GOMEMLIMIT must both be set: %+v", c.Env)
	case im > ig:
		t.Error("GOMEMLIMIT refers to MEMORY_LIMIT_MIB, which must come first")
	default:
		ref := c.Env[im].ValueFrom
		if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" ||
			ref.ResourceFieldRef.Divisor.Cmp(resource.MustParse("1Mi")) != 0 {
			t.Errorf("MEMORY_LIMIT_MIB is not limits.memory with divisor 1Mi: %+v", ref)
		}
		if ref != nil && ref.ResourceFieldRef != nil && ref.ResourceFieldRef.ContainerName != "" && ref.ResourceFieldRef.ContainerName != c.Name {
			t.Errorf("MEMORY_LIMIT_MIB names container %q, not %q", ref.ResourceFieldRef.ContainerName, c.Name)
		}
		if g := c.Env[ig].Value; g != "$(MEMORY_LIMIT_MIB)000000" {
			t.Errorf("GOMEMLIMIT=%q, want $(MEMORY_LIMIT_MIB)000000 (the limit in MiB as millions of bytes, 95%%)", g)
		}
	}

	// The spans' resource: the pod from the downward API, defined before
	// OTEL_RESOURCE_ATTRIBUTES refers to it, and the agent's version.
	io, ok := envIndex["OTEL_RESOURCE_ATTRIBUTES"]
	if !ok {
		t.Errorf("no OTEL_RESOURCE_ATTRIBUTES: %+v", c.Env)
	} else {
		for name, path := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_UID": "metadata.uid"} {
			i, ok := envIndex[name]
			if !ok || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != path {
				t.Errorf("%s is not the fieldRef %s: %+v", name, path, c.Env)
			} else if i > io {
				t.Errorf("OTEL_RESOURCE_ATTRIBUTES refers to %s, which must come first", name)
			}
		}
		want := map[string]string{
			"k8s.pod.name": "$(POD_NAME)", "k8s.namespace.name": "$(POD_NAMESPACE)", "k8s.pod.uid": "$(POD_UID)",
			"service.version": appVersion(t),
		}
		if got := resourceAttributes(t, c.Env[io].Value); !maps(got, want) {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES %v, want %v", got, want)
		}
	}

	// Resources: requests and a memory limit above them.
	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := req[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if m, ok := lim[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit: GOMEMLIMIT is derived from it")
	} else if r := req[corev1.ResourceMemory]; m.Cmp(r) < 0 {
		t.Errorf("memory limit %s below the request %s", m.String(), r.String())
	}
	checkSecurityContext(t, c.SecurityContext)
}

// resourceAttributes parses an OTEL_RESOURCE_ATTRIBUTES value.
func resourceAttributes(t *testing.T, v string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES entry %q is not key=value", kv)
			continue
		}
		if _, dup := m[k]; dup {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES sets %s twice", k)
		}
		m[k] = val
	}
	return m
}

func checkSecurityContext(t *testing.T, sc *corev1.SecurityContext) {
	t.Helper()
	if sc == nil {
		t.Fatal("the container has no securityContext")
	}
	isFalse := func(b *bool) bool { return b != nil && !*b }
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isFalse(sc.Privileged) {
		t.Error("privileged must be set to false")
	}
	if !isFalse(sc.AllowPrivilegeEscalation) {
		t.Error("allowPrivilegeEscalation must be set to false")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("runAsUser %v: added capabilities reach a process's effective set only as UID 0", sc.RunAsUser)
	}
	if sc.Capabilities == nil {
		t.Fatal("no capabilities: drop ALL, add NET_RAW and NET_ADMIN")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("drops %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	if !slices.Equal(add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("adds %v, want exactly NET_RAW and NET_ADMIN", sc.Capabilities.Add)
	}
}

// TestRBAC checks that the agent may only read pods, services, nodes,
// namespaces, endpointslices and networkpolicies.
func TestRBAC(t *testing.T) {
	renderBoth(t).each(t, func(t *testing.T, objs []object) {
		checkRBAC(t, objs)
	})
}

func checkRBAC(t *testing.T, objs []object) {
	t.Helper()
	for _, kind := range []string{"Role", "RoleBinding"} {
		if n := len(find[any](t, objs, kind)); n != 0 {
			t.Errorf("%d %s objects: the agent needs no namespaced role", n, kind)
		}
	}
	role := one[*rbacv1.ClusterRole](t, objs, "ClusterRole")
	if role.AggregationRule != nil {
		t.Error("the ClusterRole aggregates other roles")
	}
	granted := map[string]bool{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) != 0 || len(r.ResourceNames) != 0 {
			t.Errorf("rule %+v: non-resource URLs or resource names", r)
		}
		verbs := slices.Clone(r.Verbs)
		slices.Sort(verbs)
		if !slices.Equal(verbs, []string{"get", "list", "watch"}) {
			t.Errorf("rule %+v: verbs %v, want exactly get, list, watch", r, r.Verbs)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				granted[g+"/"+res] = true
			}
		}
	}
	var got []string
	for k := range granted {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"/namespaces", "/nodes", "/pods", "/services", "discovery.k8s.io/endpointslices", "networking.k8s.io/networkpolicies"}
	if !slices.Equal(got, want) {
		t.Errorf("ClusterRole grants on %v, want exactly %v", got, want)
	}

	sa := one[*corev1.ServiceAccount](t, objs, "ServiceAccount")
	b := one[*rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding")
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}) {
		t.Errorf("binding's roleRef %+v, want the ClusterRole %s", b.RoleRef, role.Name)
	}
	wantSubj := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}
	if !slices.Equal(b.Subjects, wantSubj) {
		t.Errorf("binding's subjects %+v, want %+v", b.Subjects, wantSubj)
	}
}

// TestMonitoring checks the Service, the ServiceMonitor, the PrometheusRule
// and the dashboards of both renderings.
func TestMonitoring(t *testing.T) {
	rules := readRuleFile(t)
	dashboards := dashboardFiles(t)
	renderBoth(t).each(t, func(t *testing.T, objs []object) {
		ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet")
		svc := one[*corev1.Service](t, objs, "Service")
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service clusterIP %q, want None (headless)", svc.Spec.ClusterIP)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9431 ||
			svc.Spec.Ports[0].TargetPort.String() != "metrics" {
			t.Errorf("Service ports %+v, want metrics 9431 → metrics", svc.Spec.Ports)
		}

		sm := one[*serviceMonitor](t, objs, "ServiceMonitor")
		if !maps(sm.Spec.Selector.MatchLabels, ds.Spec.Selector.MatchLabels) || len(sm.Spec.Selector.MatchExpressions) != 0 {
			t.Errorf("ServiceMonitor selects %+v, want the Service's labels %v", sm.Spec.Selector, ds.Spec.Selector.MatchLabels)
		}
		for k, v := range sm.Spec.Selector.MatchLabels {
			if svc.Labels[k] != v {
				t.Errorf("the Service lacks the label %s=%s its ServiceMonitor selects", k, v)
			}
		}
		if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
			t.Errorf("ServiceMonitor namespaces %+v, want [%s]", sm.Spec.NamespaceSelector, namespace)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("%d ServiceMonitor endpoints, want 1", len(sm.Spec.Endpoints))
		}
		ep := sm.Spec.Endpoints[0]
		if ep.Port != "metrics" || ep.Path != "/metrics" {
			t.Errorf("endpoint port %q path %q, want metrics /metrics", ep.Port, ep.Path)
		}
		nodeLabel := relabelConfig{Action: "replace", SourceLabels: []string{"__meta_kubernetes_pod_node_name"}, TargetLabel: "node"}
		if !slices.ContainsFunc(ep.Relabelings, func(r relabelConfig) bool { return cmp.Equal(r, nodeLabel) }) {
			t.Errorf("relabelings %+v lack __meta_kubernetes_pod_node_name → node", ep.Relabelings)
		}

		pr := one[*prometheusRule](t, objs, "PrometheusRule")
		if d := cmp.Diff(rules, pr.Spec); d != "" {
			t.Errorf("the PrometheusRule's groups differ from %s (-file +rendered):\n%s", rulesFile, d)
		}

		cms := map[string]*corev1.ConfigMap{}
		for _, cm := range find[*corev1.ConfigMap](t, objs, "ConfigMap") {
			if cm.Labels["grafana_dashboard"] != "1" {
				t.Errorf("ConfigMap %s lacks the label grafana_dashboard: \"1\"", cm.Name)
			}
			if errs := validation.IsDNS1123Subdomain(cm.Name); len(errs) != 0 {
				t.Errorf("ConfigMap name %q: %v", cm.Name, errs)
			}
			cms[cm.Name] = cm
		}
		if len(cms) != len(dashboards) {
			t.Errorf("%d dashboard ConfigMaps for %d dashboards in %s", len(cms), len(dashboards), dashboardDir)
		}
		for _, d := range dashboards {
			cm := cms[dashboardConfigMap(d.name)]
			if cm == nil {
				t.Errorf("no ConfigMap %s for %s", dashboardConfigMap(d.name), d.file)
				continue
			}
			want := map[string]string{d.file: string(d.data)}
			if !maps(cm.Data, want) {
				t.Errorf("ConfigMap %s does not hold exactly %s with the file's content", cm.Name, d.file)
			}
		}
	})
}

func readRuleFile(t *testing.T) ruleGroups {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	js, err := sigsyaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rg ruleGroups
	if err := strictJSON(js, &rg); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(rg.Groups) == 0 {
		t.Fatalf("%s: no rule groups", rulesFile)
	}
	return rg
}

var appVersionRE = regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?\s*$`)

func appVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := appVersionRE.FindSubmatch(data)
	if m == nil {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return string(m[1])
}

// TestImage checks that the image the manifests name is the one the
// Dockerfile builds and the README documents, and that the layerscope
// binary built from this tree accepts the container's args.
func TestImage(t *testing.T) {
	version := appVersion(t)
	image := imageRepo + ":" + version

	docker, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := strings.Split(string(docker), "\nFROM ")
	final := stages[len(stages)-1]
	if !strings.Contains(final, `ENTRYPOINT ["/usr/bin/layerscope"]`) {
		t.Error(`the Dockerfile's final stage has no ENTRYPOINT ["/usr/bin/layerscope"], which the DaemonSet's args are given to`)
	}
	if !strings.Contains(final, "COPY --from=build /out/layerscope /usr/bin/layerscope") {
		t.Error("the Dockerfile's final stage does not copy the built binary to /usr/bin/layerscope")
	}
	if !strings.Contains(final, "EXPOSE 9431") {
		t.Error("the Dockerfile does not EXPOSE 9431")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), image) {
		t.Errorf("README.md does not name the image %s", image)
	}

	objs := mustDecode(t, "kustomize build deploy/daemonset", kustomizeBuild(t))
	ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet")
	if got := ds.Labels["app.kubernetes.io/version"]; got != version {
		t.Errorf("kustomization's version label %q, want the chart's appVersion %q", got, version)
	}
	args := ds.Spec.Template.Spec.Containers[0].Args

	// The binary rejects unknown flags even with --help, so this proves every
	// flag the DaemonSet passes exists.
	bin := filepath.Join(t.TempDir(), "layerscope")
	build := exec.Command("go", "build", "-o", bin, "./cmd/layerscope")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/layerscope: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, append(slices.Clone(args), "--help")...).CombinedOutput(); err != nil {
		t.Errorf("layerscope %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
	bad := append(slices.Clone(args), "--no-such-flag", "--help")
	if err := exec.Command(bin, bad...).Run(); err == nil {
		t.Errorf("layerscope %s succeeded: the flag check proves nothing", strings.Join(bad, " "))
	}
}
