package manifests

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// TestHelmLint runs helm's own chart checks, warnings as errors.
func TestHelmLint(t *testing.T) {
	home := t.TempDir()
	out := run(t, []string{"HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home, "HELM_DATA_HOME=" + home},
		tool(t, "helm", envHelm, helmVersion), "lint", "--strict", "--namespace", namespace, chartDir)
	if !strings.Contains(string(out), "0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
}
