package manifests

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

func configMapData(o object) map[string]string {
	if cm, ok := o.Obj.(*corev1.ConfigMap); ok {
		return cm.Data
	}
	return nil
}

const goodDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      hostNetwork: true
      containers:
        - name: agent
          image: x
          securityContext:
            capabilities:
              add: [NET_RAW]
`

const goodServiceMonitor = `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  namespaceSelector:
    matchNames: [x]
  endpoints:
    - port: metrics
      relabelings:
        - sourceLabels: [__meta_kubernetes_pod_node_name]
          targetLabel: node
`

const goodPrometheusRule = `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: x
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: up == 0
          for: 5m
`

// TestStrictDecodingRejects checks that the decoding the rendering tests
// rely on fails on the mistakes a manifest can make, and accepts the same
// manifests without them.
func TestStrictDecodingRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		bad  string // an error containing this is expected; "" means valid
	}{
		{"daemonset", goodDaemonSet, ""},
		{"servicemonitor", goodServiceMonitor, ""},
		{"prometheusrule", goodPrometheusRule, ""},
		{"daemonset unknown field", strings.Replace(goodDaemonSet, "hostNetwork:", "hostNetwrk:", 1), `unknown field "spec.template.spec.hostNetwrk"`},
		{"daemonset field of the wrong case", strings.Replace(goodDaemonSet, "hostNetwork:", "HostNetwork:", 1), `unknown field "spec.template.spec.HostNetwork"`},
		{"daemonset field at the wrong level", strings.Replace(goodDaemonSet, "          securityContext:", "          privileged: false\n          securityContext:", 1), `unknown field "spec.template.spec.containers[0].privileged"`},
		{"daemonset duplicate field", strings.Replace(goodDaemonSet, "      hostNetwork: true\n", "      hostNetwork: true\n      hostNetwork: false\n", 1), `key "hostNetwork" already set`},
		{"daemonset wrong type", strings.Replace(goodDaemonSet, "hostNetwork: true", "hostNetwork: yes please", 1), "hostNetwork"},
		{"unknown kind", strings.Replace(goodDaemonSet, "kind: DaemonSet", "kind: DaemonSett", 1), "DaemonSett"},
		{"no kind", strings.Replace(goodDaemonSet, "kind: DaemonSet\n", "", 1), "no apiVersion or kind"},
		{"servicemonitor misspelt relabelings", strings.Replace(goodServiceMonitor, "relabelings:", "relabellings:", 1), `unknown field "spec.endpoints[0].relabellings"`},
		{"servicemonitor snake case", strings.Replace(goodServiceMonitor, "sourceLabels:", "source_labels:", 1), `unknown field "spec.endpoints[0].relabelings[0].source_labels"`},
		{"servicemonitor duplicate", strings.Replace(goodServiceMonitor, "    - port: metrics\n", "    - port: metrics\n      port: http\n", 1), `key "port" already set`},
		{"prometheusrule unknown field", strings.Replace(goodPrometheusRule, "for: 5m", "for: 5m\n          severity: page", 1), `unknown field "spec.groups[0].rules[0].severity"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodeAll([]byte(tt.doc))
			switch {
			case tt.bad == "" && err != nil:
				t.Fatalf("valid manifest rejected: %v", err)
			case tt.bad == "" && len(objs) != 1:
				t.Fatalf("%d objects, want 1", len(objs))
			case tt.bad != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tt.bad)
			case tt.bad != "" && !strings.Contains(err.Error(), tt.bad):
				t.Fatalf("error %q does not contain %q", err, tt.bad)
			}
		})
	}

	// A good document decodes into the k8s.io/api type with its fields.
	objs, err := decodeAll([]byte(goodDaemonSet))
	if err != nil {
		t.Fatal(err)
	}
	ds, ok := objs[0].Obj.(*appsv1.DaemonSet)
	if !ok || !ds.Spec.Template.Spec.HostNetwork ||
		!slices.Equal(ds.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add, []corev1.Capability{"NET_RAW"}) {
		t.Errorf("decoded %#v", objs[0].Obj)
	}
}

// TestChartValues renders the chart with non-default values: everything
// still decodes strictly, and the values do what they say.
func TestChartValues(t *testing.T) {
	tests := []struct {
		name   string
		set    []string
		absent []string // kinds that must not be rendered
		check  func(t *testing.T, objs []object)
	}{
		{
			name:   "objects off",
			set:    []string{"rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=agent", "serviceMonitor.enabled=false", "prometheusRule.enabled=false", "dashboards.enabled=false", "service.enabled=false"},
			absent: []string{"ClusterRole", "ClusterRoleBinding", "ServiceAccount", "ServiceMonitor", "PrometheusRule", "ConfigMap", "Service"},
			check: func(t *testing.T, objs []object) {
				ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet")
				if sa := ds.Spec.Template.Spec.ServiceAccountName; sa != "agent" {
					t.Errorf("serviceAccountName %q, want agent", sa)
				}
			},
		},
		{
			name: "web config, flags, scheduling",
			set: []string{
				"webConfig.secretName=layerscope-web",
				"serviceMonitor.scheme=https", "serviceMonitor.tlsConfig.insecureSkipVerify=true", "serviceMonitor.labels.release=kps",
				"extraArgs={--traces,--conntrack-top-n=10}", "extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT", "extraEnv[0].value=http://otel:4317",
				"nodeSelector.kubernetes\\.io/os=linux", "podAnnotations.a=b", "image.tag=dev", "resources.limits.memory=1Gi",
				"captureAPI.enabled=true",
			},
			check: func(t *testing.T, objs []object) {
				ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet")
				pod := ds.Spec.Template.Spec
				c := pod.Containers[0]
				for _, a := range []string{"--web-config-file=/etc/layerscope/web/web-config.yml", "--traces", "--conntrack-top-n=10", "--capture-api"} {
					if !slices.Contains(c.Args, a) {
						t.Errorf("args %q lack %s", c.Args, a)
					}
				}
				if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "layerscope-web" ||
					len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/layerscope/web" || !c.VolumeMounts[0].ReadOnly {
					t.Errorf("web config volume %+v mounted %+v", pod.Volumes, c.VolumeMounts)
				}
				if c.LivenessProbe.HTTPGet.Port.String() != "health" || c.ReadinessProbe.HTTPGet.Port.String() != "health" {
					t.Error("probes not on the health port: basic auth on the metrics port would fail them")
				}
				if c.Env[len(c.Env)-1].Name != "OTEL_EXPORTER_OTLP_ENDPOINT" {
					t.Errorf("env %+v lacks the extra variable last", c.Env)
				}
				if pod.NodeSelector["kubernetes.io/os"] != "linux" || ds.Spec.Template.Annotations["a"] != "b" {
					t.Errorf("nodeSelector %v, pod annotations %v", pod.NodeSelector, ds.Spec.Template.Annotations)
				}
				if c.Image != imageRepo+":dev" {
					t.Errorf("image %q", c.Image)
				}
				if m := c.Resources.Limits[corev1.ResourceMemory]; m.String() != "1Gi" {
					t.Errorf("memory limit %s", m.String())
				}
				checkSecurityContext(t, c.SecurityContext)
				sm := one[*serviceMonitor](t, objs, "ServiceMonitor")
				ep := sm.Spec.Endpoints[0]
				if ep.Scheme != "https" || ep.TLSConfig["insecureSkipVerify"] != true || sm.Metadata.Labels["release"] != "kps" {
					t.Errorf("ServiceMonitor %+v labels %v", ep, sm.Metadata.Labels)
				}
			},
		},
		{
			name: "capture API on the node's socket",
			set:  []string{"captureAPI.enabled=true", "captureAPI.socket.enabled=true", "captureAPI.socket.group=layerscope"},
			check: func(t *testing.T, objs []object) {
				pod := one[*appsv1.DaemonSet](t, objs, "DaemonSet").Spec.Template.Spec
				c := pod.Containers[0]
				for _, a := range []string{"--capture-api", "--api-socket=/run/layerscope/api.sock", "--api-socket-group=layerscope"} {
					if !slices.Contains(c.Args, a) {
						t.Errorf("args %q lack %s", c.Args, a)
					}
				}
				if len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/run/layerscope" ||
					len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/run/layerscope" {
					t.Errorf("socket volume %+v mounted %+v", pod.Volumes, c.VolumeMounts)
				}
			},
		},
		{
			name: "capture API with Kubernetes auth, operators who capture",
			set: []string{"captureAPI.enabled=true", "captureAPI.kubernetesAuth=true", "rbac.operator.create=true", "rbac.operator.capture=true",
				"rbac.operator.subjects[0].kind=Group", "rbac.operator.subjects[0].name=sre"},
			check: func(t *testing.T, objs []object) {
				c := one[*appsv1.DaemonSet](t, objs, "DaemonSet").Spec.Template.Spec.Containers[0]
				for _, a := range []string{"--capture-api", "--capture-api-kubernetes-auth"} {
					if !slices.Contains(c.Args, a) {
						t.Errorf("args %q lack %s", c.Args, a)
					}
				}
				grants := func(rules []rbacv1.PolicyRule) map[string]bool {
					out := map[string]bool{}
					for _, r := range rules {
						for _, g := range r.APIGroups {
							for _, res := range r.Resources {
								for _, v := range r.Verbs {
									out[v+" "+g+"/"+res] = true
								}
							}
						}
					}
					return out
				}
				var agent, operator map[string]bool
				for _, cr := range find[*rbacv1.ClusterRole](t, objs, "ClusterRole") {
					if strings.HasSuffix(cr.Name, "-operator") {
						operator = grants(cr.Rules)
					} else {
						agent = grants(cr.Rules)
					}
				}
				for _, g := range []string{"create authentication.k8s.io/tokenreviews", "create authorization.k8s.io/subjectaccessreviews"} {
					if !agent[g] {
						t.Errorf("the agent's ClusterRole lacks %s: %v", g, agent)
					}
				}
				if operator["create layerscope.io/captures"] || operator["create /pods/portforward"] {
					t.Errorf("the operator's ClusterRole grants captures or port-forwards cluster-wide: %v", operator)
				}
				role := grants(one[*rbacv1.Role](t, objs, "Role").Rules)
				for _, g := range []string{"create layerscope.io/captures", "create /pods/portforward", "get /pods/proxy"} {
					if !role[g] {
						t.Errorf("the operator's Role lacks %s: %v", g, role)
					}
				}
			},
		},
		{
			name: "image from a mirror, by tag",
			set:  []string{"image.registry=registry.example:5000/", "image.repository=mirror/layerscope", "image.tag=1.2.3"},
			check: func(t *testing.T, objs []object) {
				c := one[*appsv1.DaemonSet](t, objs, "DaemonSet").Spec.Template.Spec.Containers[0]
				if c.Image != "registry.example:5000/mirror/layerscope:1.2.3" {
					t.Errorf("image %q, want registry.example:5000/mirror/layerscope:1.2.3", c.Image)
				}
				checkResourceAttribute(t, c, "service.version", "1.2.3")
			},
		},
		{
			name: "image pinned by digest",
			set:  []string{"image.registry=", "image.repository=mirror.example/layerscope", "image.tag=1.2.3", "image.digest=" + testDigest},
			check: func(t *testing.T, objs []object) {
				c := one[*appsv1.DaemonSet](t, objs, "DaemonSet").Spec.Template.Spec.Containers[0]
				if want := "mirror.example/layerscope@" + testDigest; c.Image != want {
					t.Errorf("image %q, want %s", c.Image, want)
				}
				checkResourceAttribute(t, c, "service.version", "1.2.3")
			},
		},
		{
			name: "resource attributes",
			set:  []string{"otel.resourceAttributes.deployment\\.environment\\.name=prod", "otel.resourceAttributes.k8s\\.cluster\\.name=lab"},
			check: func(t *testing.T, objs []object) {
				c := one[*appsv1.DaemonSet](t, objs, "DaemonSet").Spec.Template.Spec.Containers[0]
				checkResourceAttribute(t, c, "deployment.environment.name", "prod")
				checkResourceAttribute(t, c, "k8s.cluster.name", "lab")
				checkResourceAttribute(t, c, "k8s.pod.uid", "$(POD_UID)")
			},
		},
		{
			name: "dashboards for a sidecar elsewhere",
			set:  []string{"dashboards.namespace=monitoring", "dashboards.sidecarLabel=grafana_dashboard_layerscope", "dashboards.sidecarLabelValue=yes"},
			check: func(t *testing.T, objs []object) {
				cms := find[*corev1.ConfigMap](t, objs, "ConfigMap")
				if len(cms) == 0 {
					t.Fatal("no dashboard ConfigMaps")
				}
				for _, cm := range cms {
					if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard_layerscope"] != "yes" {
						t.Errorf("ConfigMap %s/%s labels %v, want namespace monitoring and grafana_dashboard_layerscope=yes", cm.Namespace, cm.Name, cm.Labels)
					}
					if _, ok := cm.Labels["grafana_dashboard"]; ok {
						t.Errorf("ConfigMap %s keeps the default sidecar label", cm.Name)
					}
				}
				if ds := one[*appsv1.DaemonSet](t, objs, "DaemonSet"); ds.Namespace != namespace {
					t.Errorf("the DaemonSet moved to %q with the dashboards", ds.Namespace)
				}
			},
		},
		{
			name: "release name and overrides",
			set:  []string{"fullnameOverride=ls"},
			check: func(t *testing.T, objs []object) {
				checkRBAC(t, objs)
				for _, o := range objs {
					if o.Kind != "ConfigMap" && o.Name != "ls" {
						t.Errorf("%s not named by fullnameOverride", o.key())
					}
				}
			},
		},
	}
	t.Run("capture API without authentication", func(t *testing.T) {
		home := t.TempDir()
		cmd := exec.Command(tool(t, "helm", envHelm, helmVersion), "template", release, chartDir, "--namespace", namespace, "--set", "captureAPI.enabled=true")
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "captureAPI.enabled") || !strings.Contains(string(out), "webConfig.secretName") {
			t.Errorf("helm template with captureAPI.enabled and no authentication: %v\n%s\nwant a refusal naming captureAPI.enabled and webConfig.secretName", err, out)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			objs := mustDecode(t, "helm template "+strings.Join(args, " "), helmTemplate(t, args...))
			for _, kind := range tt.absent {
				if n := len(find[any](t, objs, kind)); n != 0 {
					t.Errorf("%d %s rendered", n, kind)
				}
			}
			tt.check(t, objs)
		})
	}
}

// testDigest is a well-formed image digest.
const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func checkResourceAttribute(t *testing.T, c corev1.Container, key, want string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "OTEL_RESOURCE_ATTRIBUTES" {
			if got, ok := resourceAttributes(t, e.Value)[key]; !ok || got != want {
				t.Errorf("OTEL_RESOURCE_ATTRIBUTES %q: %s=%q, want %q", e.Value, key, got, want)
			}
			return
		}
	}
	t.Errorf("no OTEL_RESOURCE_ATTRIBUTES in %+v", c.Env)
}

// TestChartWithoutOperator renders the chart for a cluster without the
// Prometheus Operator's CRDs, where a ServiceMonitor or a PrometheusRule
// would fail the whole install: neither is rendered, everything else is.
// A cluster with only one of the CRDs gets only that object.
func TestChartWithoutOperator(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want map[string]bool
	}{
		{"no CRDs", nil, map[string]bool{"ServiceMonitor": false, "PrometheusRule": false}},
		{"ServiceMonitor only", []string{"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"}, map[string]bool{"ServiceMonitor": true, "PrometheusRule": false}},
		{"both", operatorAPIs, map[string]bool{"ServiceMonitor": true, "PrometheusRule": true}},
		{"both, switched off", append(slices.Clone(operatorAPIs), "--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false"),
			map[string]bool{"ServiceMonitor": false, "PrometheusRule": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustDecode(t, "helm template", helmTemplateFor(t, tt.args...))
			for kind, want := range tt.want {
				if n := len(find[any](t, objs, kind)); (n == 1) != want || n > 1 {
					t.Errorf("%d %s rendered, want %v", n, kind, want)
				}
			}
			for _, kind := range []string{"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service"} {
				if n := len(find[any](t, objs, kind)); n != 1 {
					t.Errorf("%d %s rendered, want 1", n, kind)
				}
			}
		})
	}
}

// TestChartSchema checks that values.schema.json refuses wrong values with
// an error naming the value, before anything reaches a cluster.
func TestChartSchema(t *testing.T) {
	bin := tool(t, "helm", envHelm, helmVersion)
	for _, tt := range []struct{ set, name string }{
		{"metricsPort=0", "metricsPort"},
		{"healthPort=70000", "healthPort"},
		{"logFormat=xml", "logFormat"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"image.digest=latest", "digest"},
		{"image.repository=", "repository"},
		{"serviceMonitor.enable=true", "enable"},
		{"serviceMonitor.interval=often", "interval"},
		{"extraArgs={traces}", "extraArgs"},
		{"captureAPI.socket.hostPath=run/layerscope", "hostPath"},
		{"otel.resourceAttributes.a=b\\,c", "resourceAttributes"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			cmd := exec.Command(bin, "template", release, chartDir, "--namespace", namespace, "--set", tt.set)
			cmd.Env = append(os.Environ(), helmEnv(t)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helm template --set %s succeeded", tt.set)
			}
			if !strings.Contains(string(out), "schema") || !strings.Contains(string(out), tt.name) {
				t.Errorf("helm template --set %s: %s\nwant a schema error naming %s", tt.set, out, tt.name)
			}
		})
	}
}

// TestHelmLint runs helm's own chart checks, warnings as errors.
func TestHelmLint(t *testing.T) {
	home := t.TempDir()
	out := run(t, []string{"HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home, "HELM_DATA_HOME=" + home},
		tool(t, "helm", envHelm, helmVersion), "lint", "--strict", "--namespace", namespace, chartDir)
	if !strings.Contains(string(out), "0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
}
