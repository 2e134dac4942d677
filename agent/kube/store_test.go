package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// lockedWriter serializes the writes of concurrent log calls.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, nil))
}

const node1 = "node-1"

func ptr[T any](v T) *T { return &v }

func pod(ns, name, node, ip string, owner ...metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owner},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
	return p
}

func owner(kind, name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, Controller: ptr(true)}
}

func service(ns, name, ip string, nodePort int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: ip, ClusterIPs: []string{ip},
			Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080, NodePort: nodePort},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 8080},
			},
		},
	}
}

type ep struct {
	ip, pod, node string
	ready         bool
}

func slice(ns, name, svc string, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(int32(8080))}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(e.ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod},
			NodeName:   ptr(e.node),
		})
	}
	return s
}

var (
	ipA = netip.MustParseAddr("10.244.0.5")
	ipB = netip.MustParseAddr("10.244.0.8")
	ipC = netip.MustParseAddr("10.244.1.8")
	vip = netip.MustParseAddr("10.96.0.42")
)

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWorkloadOf(t *testing.T) {
	for _, tt := range []struct {
		name       string
		p          *corev1.Pod
		kind, wl   string
		labelsHash string
	}{
		{"deployment by template hash", pod("default", "web-6d5f7b8c9d-x2x7q", "", "", owner("ReplicaSet", "web-6d5f7b8c9d")), KindDeployment, "web", "6d5f7b8c9d"},
		{"replicaset without hash label", pod("default", "rs-abc12", "", "", owner("ReplicaSet", "rs")), KindReplicaSet, "rs", ""},
		{"replicaset whose name lacks the hash", pod("default", "x", "", "", owner("ReplicaSet", "plain")), KindReplicaSet, "plain", "abc"},
		{"statefulset", pod("db", "pg-0", "", "", owner("StatefulSet", "pg")), KindStatefulSet, "pg", ""},
		{"daemonset", pod("kube-system", "ls-abcde", "", "", owner("DaemonSet", "layerscope")), KindDaemonSet, "layerscope", ""},
		{"job", pod("batch", "migrate-1-xyz", "", "", owner("Job", "migrate-1")), KindJob, "migrate-1", ""},
		{"bare pod", pod("default", "debug", "", ""), KindPod, "debug", ""},
		{"non-controller owner ignored", pod("default", "p", "", "", metav1.OwnerReference{Kind: "ConfigMap", Name: "c"}), KindPod, "p", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.labelsHash != "" {
				tt.p.Labels = map[string]string{"pod-template-hash": tt.labelsHash}
			}
			kind, wl := workloadOf(tt.p)
			if kind != tt.kind || wl != tt.wl {
				t.Errorf("workloadOf = %s %s, want %s %s", kind, wl, tt.kind, tt.wl)
			}
		})
	}
}

// TestInformersFollowChanges drives the store through client-go's fake
// clientset and shared informers: adds, updates and deletes of pods,
// Services and EndpointSlices show in the lookups.
func TestInformersFollowChanges(t *testing.T) {
	podA := pod("default", "pod-a", node1, ipA.String(), owner("ReplicaSet", "web-6d5f7b8c9d"))
	podA.Labels = map[string]string{"pod-template-hash": "6d5f7b8c9d"}
	cs := fake.NewSimpleClientset(podA, service("default", "my-service", vip.String(), 30080),
		slice("default", "my-service-abc", "my-service", ep{ipA.String(), "pod-a", node1, true}, ep{ipC.String(), "pod-c", "node-2", true}))
	store := NewStore(ModeFile, node1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	Watch(ctx, cs, store, 0, nil)
	eventually(t, "sync", store.Synced)

	if p, ok := store.Pod(ipA); !ok || p.Name != "pod-a" || p.Namespace != "default" || p.Workload != "web" || p.WorkloadKind != KindDeployment || p.Node != node1 {
		t.Errorf("Pod(%s) = %+v, %v", ipA, p, ok)
	}
	if _, ok := store.LocalPod(ipA); !ok {
		t.Errorf("pod-a not local to %s", node1)
	}
	for _, tt := range []struct {
		ap    string
		proto uint8
		port  uint16
		ok    bool
	}{
		{"10.96.0.42:8080", 6, 8080, true},
		{"10.96.0.42:8080", 17, 8080, true},
		{"10.96.0.42:8081", 6, 0, false},
		{"10.0.0.10:30080", 6, 30080, true}, // NodePort on any node address
		{"10.0.0.10:30080", 17, 0, false},   // the UDP port has no NodePort
	} {
		sv, ok := store.Service(netip.MustParseAddrPort(tt.ap), tt.proto)
		if ok != tt.ok || (ok && (sv.Name != "my-service" || sv.Namespace != "default" || sv.Port != tt.port)) {
			t.Errorf("Service(%s/%d) = %+v, %v; want port %d, %v", tt.ap, tt.proto, sv, ok, tt.port, tt.ok)
		}
	}
	if e, ok := store.Endpoint(ipC); !ok || e.Pod != "pod-c" || e.Node != "node-2" || e.Service != "my-service" || !e.Ready {
		t.Errorf("Endpoint(%s) = %+v, %v", ipC, e, ok)
	}
	if got := store.Endpoints(); len(got) != 1 || got[0].Ready != 2 {
		t.Errorf("Endpoints() = %+v, want my-service with 2", got)
	}

	// Updates: pod-b appears, pod-c leaves the slice, the Service moves.
	podB := pod("default", "pod-b", node1, ipB.String(), owner("StatefulSet", "cache"))
	if _, err := cs.CoreV1().Pods("default").Create(ctx, podB, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx,
		slice("default", "my-service-abc", "my-service", ep{ipA.String(), "pod-a", node1, true}, ep{ipB.String(), "pod-b", node1, false}),
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := service("default", "my-service", "10.96.0.43", 30081)
	if _, err := cs.CoreV1().Services("default").Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod-b", func() bool {
		p, ok := store.Pod(ipB)
		return ok && p.Workload == "cache" && p.WorkloadKind == KindStatefulSet
	})
	eventually(t, "pod-c out of the slice", func() bool { return !store.IsEndpoint("default", "my-service", ipC) })
	eventually(t, "the service's new address", func() bool {
		_, ok := store.Service(netip.MustParseAddrPort("10.96.0.43:8080"), 6)
		return ok
	})
	if _, ok := store.Service(netip.MustParseAddrPort("10.96.0.42:8080"), 6); ok {
		t.Error("the old ClusterIP still names the service")
	}
	if _, ok := store.Service(netip.MustParseAddrPort("10.0.0.10:30080"), 6); ok {
		t.Error("the old NodePort still names the service")
	}
	if !store.IsEndpoint("default", "my-service", ipB) {
		t.Error("pod-b (not ready) is not an endpoint")
	}
	if got := store.Endpoints(); len(got) != 1 || got[0].Ready != 1 {
		t.Errorf("Endpoints() = %+v, want my-service with 1 ready", got)
	}
	if !store.HasWorkload("default", "web") || !store.HasPod("default", "pod-a") {
		t.Error("pod-a's workload missing")
	}

	// Deletes.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "pod-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod-a deleted", func() bool { _, ok := store.Pod(ipA); return !ok })
	if store.HasWorkload("default", "web") || store.HasPod("default", "pod-a") {
		t.Error("pod-a's workload outlived its only pod")
	}
	if err := cs.DiscoveryV1().EndpointSlices("default").Delete(ctx, "my-service-abc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "empty endpoints", func() bool { e := store.Endpoints(); return len(e) == 1 && e[0].Ready == 0 })
	if err := cs.CoreV1().Services("default").Delete(ctx, "my-service", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service deleted", func() bool { return len(store.Endpoints()) == 0 })
	if p, s, sl := store.Counts(); p != 1 || s != 0 || sl != 0 {
		t.Errorf("Counts() = %d pods, %d services, %d slices; want 1, 0, 0", p, s, sl)
	}
}

func TestPodIPReusedByANewPod(t *testing.T) {
	s := NewStore(ModeFile, node1)
	s.SetPod(pod("default", "old", node1, ipA.String()))
	s.SetPod(pod("default", "new", node1, ipA.String()))
	s.DeletePod("default", "old")
	if p, ok := s.Pod(ipA); !ok || p.Name != "new" {
		t.Errorf("Pod(%s) after the old pod's deletion = %+v, %v; want new", ipA, p, ok)
	}
	done := pod("default", "new", node1, ipA.String())
	done.Status.Phase = corev1.PodSucceeded
	s.SetPod(done)
	if _, ok := s.Pod(ipA); ok {
		t.Error("a finished pod still holds its IP")
	}
	host := pod("kube-system", "proxy", node1, "10.0.0.10")
	host.Spec.HostNetwork = true
	s.SetPod(host)
	if _, ok := s.Pod(netip.MustParseAddr("10.0.0.10")); ok {
		t.Error("a host-network pod took the node's address")
	}
}

func TestFileRoundTrip(t *testing.T) {
	objs := []runtime.Object{
		pod("default", "pod-a", node1, ipA.String(), owner("ReplicaSet", "web-6d5f7b8c9d")),
		service("default", "my-service", vip.String(), 30080),
		slice("default", "my-service-abc", "my-service", ep{ipA.String(), "pod-a", node1, true}),
	}
	path := filepath.Join(t.TempDir(), "meta.yaml")
	if err := WriteFile(path, objs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(objs) {
		t.Fatalf("read %d objects, wrote %d", len(got), len(objs))
	}
	for i := range objs {
		a, b := encodeOne(t, objs[i]), encodeOne(t, got[i])
		if a != b {
			t.Errorf("object %d changed:\n%s\nvs\n%s", i, a, b)
		}
	}
}

// encodeOne encodes one object for comparisons.
func encodeOne(t *testing.T, o runtime.Object) string {
	t.Helper()
	var b strings.Builder
	if err := Encode(&b, []runtime.Object{o}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// kubectlList is what `kubectl get pods,services,endpointslices -o yaml`
// prints: a v1 List.
const kubectlList = `apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: pod-a
    namespace: default
    ownerReferences:
    - apiVersion: apps/v1
      controller: true
      kind: ReplicaSet
      name: web-6d5f7b8c9d
      uid: 0b5a3f0e-0000-4000-8000-000000000001
    labels:
      pod-template-hash: 6d5f7b8c9d
  spec:
    nodeName: node-1
    containers:
    - name: web
      image: nginx
  status:
    phase: Running
    podIP: 10.244.0.5
    podIPs:
    - ip: 10.244.0.5
- apiVersion: v1
  kind: Service
  metadata:
    name: my-service
    namespace: default
  spec:
    clusterIP: 10.96.0.42
    ports:
    - name: http
      port: 8080
      protocol: TCP
      targetPort: 8080
      nodePort: 30080
    selector:
      app: web
    type: NodePort
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 10.244.0.5
    conditions:
      ready: true
    nodeName: node-1
    targetRef:
      kind: Pod
      name: pod-a
      namespace: default
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: my-service
    name: my-service-abc
    namespace: default
  ports:
  - name: http
    port: 8080
    protocol: TCP
kind: List
metadata:
  resourceVersion: ""
`

func TestDecodeStrict(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, doc string
		n         int
		err       string // substring of the error; "" means none
	}{
		{"kubectl list", kubectlList, 3, ""},
		{"stream with comments", "# generated\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n---\n", 1, ""},
		{"typed list", "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p}\n", 1, ""},
		{"policies and namespaces", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n---\n" +
			"apiVersion: v1\nkind: NamespaceList\nitems:\n- metadata: {name: shop, labels: {team: a}}\n---\n" +
			"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: allow, namespace: shop}\n  spec: {podSelector: {}, ingress: [{}]}\n", 3, ""},
		{"unknown policy field", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelectr: {}}\n", 0, `unknown field "podSelectr"`},
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeNmae: x}\n", 0, `unknown field "nodeNmae"`},
		{"unknown field in a list item", strings.Replace(kubectlList, "nodeName: node-1\n    containers", "nodeName: node-1\n    bogus: 1\n    containers", 1), 0, "item 0"},
		{"unknown kind", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", 0, "Deployment"},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n", 0, "without metadata.name"},
		{"not yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n", 0, "document 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, err := ReadFile(path)
			if tt.err == "" {
				if err != nil || len(objs) != tt.n {
					t.Fatalf("ReadFile = %d objects, %v; want %d", len(objs), err, tt.n)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile accepted %q", tt.doc)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q does not name the file and %q", err, tt.err)
			}
			if !strings.Contains(tt.name, "yaml") && !errors.Is(err, ErrBadObject) {
				t.Errorf("error %v is not ErrBadObject", err)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--k8s-metadata-file") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestFileSourceReloads runs a file Source: the file's objects reach the
// store through the informers, and an edit of the file (an endpoint
// removed, a pod deleted) reaches it as updates and deletions.
func TestFileSourceReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.yaml")
	if err := os.WriteFile(path, []byte(kubectlList), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	src, err := Open(Config{Mode: ModeAuto, File: path, Node: node1, ReloadInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	store := src.Store()
	if store.Mode() != ModeFile {
		t.Fatalf("auto with a file: mode %s", store.Mode())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); src.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "sync", store.Synced)
	if p, ok := store.Pod(ipA); !ok || p.Workload != "web" {
		t.Fatalf("Pod(%s) = %+v, %v", ipA, p, ok)
	}
	if e := store.Endpoints(); len(e) != 1 || e[0].Ready != 1 {
		t.Fatalf("Endpoints() = %+v", e)
	}
	// Empty the slice and drop the pod.
	edited := strings.Replace(kubectlList, `  endpoints:
  - addresses:
    - 10.244.0.5
    conditions:
      ready: true
    nodeName: node-1
    targetRef:
      kind: Pod
      name: pod-a
      namespace: default
`, "  endpoints: []\n", 1)
	i, j := strings.Index(edited, "- apiVersion: v1\n  kind: Pod"), strings.Index(edited, "- apiVersion: v1\n  kind: Service")
	edited = edited[:i] + edited[j:]
	replaceFile(t, path, edited)
	eventually(t, "the emptied slice", func() bool { e := store.Endpoints(); return len(e) == 1 && e[0].Ready == 0 })
	eventually(t, "the pod's deletion", func() bool { _, ok := store.Pod(ipA); return !ok })
	// A broken edit keeps the last good content. The edits replace the
	// file whole, as kube.WriteFile does: a reload between os.WriteFile's
	// truncation and its write would read an empty file, which is valid.
	replaceFile(t, path, "kind: Nope\n")
	eventually(t, "the broken file read", func() bool {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		return strings.Contains(logs.String(), "metadata file invalid, keeping its last content")
	})
	if _, ok := store.Service(netip.MustParseAddrPort("10.96.0.42:8080"), 6); !ok {
		t.Error("an invalid file emptied the store")
	}
}

// replaceFile replaces path with data at once (a rename), so that a
// reload never reads it half written.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestOpenModes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tt := range []struct {
		cfg  Config
		mode Mode
		err  error
	}{
		{Config{}, ModeOff, nil},
		{Config{Mode: ModeOff, File: "x"}, ModeOff, nil},
		{Config{Mode: ModeFile}, "", ErrNoFile},
		{Config{Mode: "maybe"}, "", ErrBadMode},
		// Not in a pod: the API mode degrades to an empty, unsynced store.
		{Config{Mode: ModeAPI}, ModeAPI, nil},
	} {
		src, err := Open(tt.cfg)
		if !errors.Is(err, tt.err) {
			t.Errorf("Open(%+v) error %v, want %v", tt.cfg, err, tt.err)
			continue
		}
		if err == nil && src.Store().Mode() != tt.mode {
			t.Errorf("Open(%+v) mode %s, want %s", tt.cfg, src.Store().Mode(), tt.mode)
		}
		if err == nil && src.Store().Synced() {
			t.Errorf("Open(%+v): synced without a source", tt.cfg)
		}
	}
	if _, err := Open(Config{Mode: ModeAPI, Kubeconfig: filepath.Join(t.TempDir(), "nope")}); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("a missing kubeconfig: %v", err)
	}
}

// TestAPIUnreachable points the API mode at an address nothing listens
// on: Run keeps going, the store stays empty and unsynced, and the failure
// is logged once, not per retry.
func TestAPIUnreachable(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	src, err := Open(Config{Mode: ModeAPI, Kubeconfig: kc, Node: node1, SyncWarning: time.Second, Logger: newTestLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	src.Run(ctx)
	if src.Store().Synced() {
		t.Error("synced without an API")
	}
	if n := strings.Count(logs.String(), "not reachable"); n != 1 {
		t.Errorf("%d log lines about the unreachable API, want 1:\n%s", n, logs.String())
	}
}

// TestForbiddenLoggedOnce: an API that refuses the service account (RBAC)
// is logged once with what the agent needs, however often the informers
// retry, and the store stays unsynced.
func TestForbiddenLoggedOnce(t *testing.T) {
	cs := fake.NewSimpleClientset()
	cs.PrependReactor("list", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: action.GetResource().Resource}, "", errors.New("RBAC: access denied"))
	})
	var logs strings.Builder
	src := &Source{log: newTestLogger(&logs), store: NewStore(ModeAPI, node1)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	Watch(ctx, cs, src.store, 0, src.onWatchError)
	<-ctx.Done()
	if src.store.Synced() {
		t.Error("synced while every list is forbidden")
	}
	if n := strings.Count(logs.String(), "refused the agent"); n != 1 {
		t.Errorf("%d log lines about the refusal, want 1:\n%s", n, logs.String())
	}
}

// TestLookupsDoNotAllocate: the record path's lookups are map probes
// under a read lock.
func TestLookupsDoNotAllocate(t *testing.T) {
	s := benchStore()
	ap := netip.AddrPortFrom(vip, 8080)
	dst := make([]netip.AddrPort, 0, 8)
	n := testing.AllocsPerRun(1000, func() {
		s.Pod(ipA)
		s.LocalPod(ipA)
		s.Service(ap, 6)
		s.Endpoint(ipC)
		s.IsEndpoint("default", "my-service", ipC)
		dst = s.Backends(ap, 6, dst[:0])
	})
	if n != 0 {
		t.Errorf("%v allocations per lookup round, want 0", n)
	}
}

func benchStore() *Store {
	s := NewStore(ModeFile, node1)
	s.SetPod(pod("default", "pod-a", node1, ipA.String(), owner("StatefulSet", "web")))
	s.SetService(service("default", "my-service", vip.String(), 30080))
	s.SetEndpointSlice(slice("default", "s", "my-service", ep{ipA.String(), "pod-a", node1, true}, ep{ipC.String(), "pod-c", "node-2", true}))
	// A cluster's worth of other objects.
	for i := range 5000 {
		ip := netip.AddrFrom4([4]byte{10, 245, byte(i >> 8), byte(i)}).String()
		s.SetPod(pod("ns", fmt.Sprintf("p%d", i), node1, ip))
		s.SetService(service("ns", fmt.Sprintf("s%d", i), netip.AddrFrom4([4]byte{10, 97, byte(i >> 8), byte(i)}).String(), 0))
	}
	return s
}

func BenchmarkLookups(b *testing.B) {
	s := benchStore()
	ap := netip.AddrPortFrom(vip, 8080)
	b.Run("Pod", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Pod(ipA)
		}
	})
	b.Run("Service", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Service(ap, 6)
		}
	})
	b.Run("IsEndpoint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.IsEndpoint("default", "my-service", ipC)
		}
	})
	b.Run("ParallelPod", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Pod(ipA)
			}
		})
	})
}

// TestBackends lists a Service port's ready endpoints with their target
// port, from every slice of the Service, by the port's name and protocol.
func TestBackends(t *testing.T) {
	s := NewStore(ModeAPI, "")
	s.SetService(service("default", "web", vip.String(), 30080))
	s.SetEndpointSlice(slice("default", "web-1", "web", ep{"10.244.0.5", "a", "n1", true}, ep{"10.244.0.8", "b", "n1", false}))
	sl := slice("default", "web-2", "web", ep{"10.244.1.8", "c", "n2", true})
	sl.Ports[0].Port = ptr(int32(9090))
	s.SetEndpointSlice(sl)
	s.SetEndpointSlice(slice("default", "other-1", "other", ep{"10.244.1.9", "d", "n2", true}))
	got := s.Backends(netip.AddrPortFrom(vip, 8080), 6, nil)
	slices.SortFunc(got, func(a, b netip.AddrPort) int { return a.Compare(b) })
	want := []netip.AddrPort{netip.MustParseAddrPort("10.244.0.5:8080"), netip.MustParseAddrPort("10.244.1.8:9090")}
	if !slices.Equal(got, want) {
		t.Errorf("backends %v, want %v", got, want)
	}
	if got := s.Backends(netip.AddrPortFrom(vip, 8080), 17, nil); len(got) != 0 {
		t.Errorf("udp port (no slice port of that name): %v", got)
	}
	if got := s.Backends(netip.AddrPortFrom(ipA, 8080), 6, nil); len(got) != 0 {
		t.Errorf("not a service: %v", got)
	}
}

// TestAddressInSeveralSlices: an address listed by the slices of two
// Services is an endpoint of both; removing or changing either slice
// leaves the other's entry.
func TestAddressInSeveralSlices(t *testing.T) {
	s := NewStore(ModeAPI, "")
	s.SetEndpointSlice(slice("default", "a-1", "a", ep{ipA.String(), "pod-a", "n1", true}))
	s.SetEndpointSlice(slice("default", "b-1", "b", ep{ipA.String(), "pod-a", "n1", false}, ep{ipB.String(), "pod-b", "n1", true}))
	s.SetEndpointSlice(slice("other", "a-1", "a", ep{ipA.String(), "pod-a", "n1", true}))
	for _, svc := range []string{"default/a", "default/b", "other/a"} {
		ns, name, _ := strings.Cut(svc, "/")
		if !s.IsEndpoint(ns, name, ipA) {
			t.Errorf("%s not an endpoint of %s", ipA, svc)
		}
	}
	if e, ok := s.Endpoint(ipA); !ok || e.Service != "a" || e.Namespace != "default" || !e.Ready || e.Node != "n1" || e.Pod != "pod-a" {
		t.Errorf("Endpoint(%s) = %+v, %v; want the first slice's", ipA, e, ok)
	}
	s.DeleteEndpointSlice("default", "a-1")
	if s.IsEndpoint("default", "a", ipA) || !s.IsEndpoint("default", "b", ipA) || !s.IsEndpoint("other", "a", ipA) {
		t.Error("deleting default/a-1 did not leave exactly the other two")
	}
	if e, ok := s.Endpoint(ipA); !ok || e.Service != "b" || e.Ready {
		t.Errorf("Endpoint(%s) = %+v, %v; want b's (not ready)", ipA, e, ok)
	}
	// b's slice no longer lists ipA: other/a's entry remains.
	s.SetEndpointSlice(slice("default", "b-1", "b", ep{ipB.String(), "pod-b", "n1", true}))
	if e, ok := s.Endpoint(ipA); !ok || e.Namespace != "other" || s.IsEndpoint("default", "b", ipA) {
		t.Errorf("Endpoint(%s) = %+v, %v; want other/a's only", ipA, e, ok)
	}
	s.DeleteEndpointSlice("other", "a-1")
	if _, ok := s.Endpoint(ipA); ok {
		t.Errorf("%s still an endpoint with no slice listing it", ipA)
	}
	if !s.IsEndpoint("default", "b", ipB) {
		t.Errorf("%s lost", ipB)
	}
	if len(s.ix.more) != 0 || s.ix.backends.len() != 1 || len(s.ix.bySvc) != 1 {
		t.Errorf("index left with %d extra refs, %d addresses, %d Services' slices; want 0, 1, 1", len(s.ix.more), s.ix.backends.len(), len(s.ix.bySvc))
	}
}

// TestServiceAddressTakenOver: when a second Service claims an address
// and port, deleting the first leaves the second's.
func TestServiceAddressTakenOver(t *testing.T) {
	s := NewStore(ModeAPI, "")
	s.SetService(service("default", "old", vip.String(), 30080))
	s.SetService(service("default", "new", vip.String(), 30080))
	s.DeleteService("default", "old")
	for _, ap := range []string{"10.96.0.42:8080", "192.0.2.1:30080"} {
		if sv, ok := s.Service(netip.MustParseAddrPort(ap), 6); !ok || sv.Name != "new" || sv.PortName != "http" {
			t.Errorf("Service(%s) = %+v, %v; want new's http port", ap, sv, ok)
		}
	}
	if sv, ok := s.Service(netip.MustParseAddrPort("192.0.2.1:30080"), 6); sv.Port != 30080 || !ok {
		t.Errorf("by NodePort: port %d, want the NodePort", sv.Port)
	}
}

// TestResyncKeepsIndex: the informers' resyncs deliver the objects they
// hold again; the store keeps its entries and generation.
func TestResyncKeepsIndex(t *testing.T) {
	s := NewStore(ModeAPI, "")
	o := compactSlice(slice("default", "a-1", "a", ep{ipA.String(), "pod-a", "n1", true}))
	s.setSlice(o)
	g := s.Generation()
	s.setSlice(o)
	if s.Generation() != g {
		t.Error("a resync changed the generation")
	}
	s.setSlice(compactSlice(slice("default", "a-1", "a", ep{ipA.String(), "pod-a", "n1", false})))
	if s.Generation() == g {
		t.Error("a change kept the generation")
	}
	if e, ok := s.Endpoint(ipA); !ok || e.Ready {
		t.Errorf("Endpoint(%s) = %+v, %v after the change", ipA, e, ok)
	}
}

// TestCompactObjectsCopy: the compact objects are runtime.Objects whose
// deep copies share nothing writable with the original.
func TestCompactObjectsCopy(t *testing.T) {
	sl := compactSlice(slice("default", "a-1", "a", ep{ipA.String(), "pod-a", "n1", true}))
	c := sl.DeepCopyObject().(*sliceObj)
	c.eps[0].ready = false
	c.Name = "x"
	if !sl.eps[0].ready || sl.Name != "a-1" {
		t.Error("the slice's copy shares its endpoints or metadata")
	}
	sv := compactService(service("default", "s", vip.String(), 0))
	if c := sv.DeepCopyObject().(*svcObj); len(c.ports) != 2 || c.addrs[0] != vip {
		t.Errorf("Service copy %+v", c)
	} else if c.ports[0].port = 1; sv.ports[0].port != 8080 {
		t.Error("the Service's copy shares its ports")
	}
	p := compactPod(pod("default", "p", node1, ipA.String(), owner("StatefulSet", "web")))
	if c := p.DeepCopyObject().(*podObj); c.workload != "web" || c.ips[0] != ipA {
		t.Errorf("pod copy %+v", c)
	} else if c.ips[0] = ipB; p.ips[0] != ipA {
		t.Error("the pod's copy shares its IPs")
	}
	for _, o := range []runtime.Object{sl, sv, p} {
		if m, err := meta.Accessor(o); err != nil || m.GetNamespace() != "default" {
			t.Errorf("%T: accessor %v, %v", o, m, err)
		}
	}
}

// scaleStore is a store filled the way TestScaleAPI fills the lab's API
// server: services Services with one port each and a slice of perSlice
// endpoints (on 5,000 nodes), and 110 pods on node-1.
func scaleStore(services, perSlice int) (*Store, []netip.Addr, []netip.Addr, []netip.Addr) {
	s := NewStore(ModeAPI, node1)
	var vips, backends, pods []netip.Addr
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		v := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		vips = append(vips, v)
		s.SetService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: v.String(), ClusterIPs: []string{v.String()},
				Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}}}})
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "scale", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		node := fmt.Sprintf("node-%04d", i%5000)
		for j := range perSlice {
			n := 10<<24 | 128<<16 + uint32(i*perSlice+j)
			a := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
			backends = append(backends, a)
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}, NodeName: &node,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("%s-%02d", name, j)}})
		}
		s.SetEndpointSlice(sl)
	}
	for i := range 110 {
		a := netip.AddrFrom4([4]byte{10, 250, 0, byte(10 + i)})
		pods = append(pods, a)
		s.SetPod(pod("scale", fmt.Sprintf("local-%03d", i), node1, a.String(), owner("ReplicaSet", fmt.Sprintf("wl%02d-6d5f7b8c9d", i%22))))
	}
	return s, vips, backends, pods
}

// BenchmarkLookupsAtScale: the lookups of the record path in a store
// holding TestScaleAPI's full scale (10,000 Services, 150,000 endpoints,
// 110 local pods), each round over different keys; it logs the Go heap
// the store holds.
func BenchmarkLookupsAtScale(b *testing.B) {
	heap0 := heapInuse()
	s, vips, backends, pods := scaleStore(10000, 15)
	b.Logf("the store holds %.1f MiB of heap", float64(heapInuse()-heap0)/(1<<20))
	bench := func(name string, fn func(i int)) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				fn(i)
				i++
			}
		})
	}
	bench("ServiceByClusterIP", func(i int) {
		if _, ok := s.Service(netip.AddrPortFrom(vips[i%len(vips)], 80), 6); !ok {
			b.Fatal("miss")
		}
	})
	bench("ServiceMiss", func(i int) {
		if _, ok := s.Service(netip.AddrPortFrom(backends[i%len(backends)], 8080), 6); ok {
			b.Fatal("hit")
		}
	})
	bench("PodByIP", func(i int) {
		if _, ok := s.Pod(pods[i%len(pods)]); !ok {
			b.Fatal("miss")
		}
	})
	bench("EndpointByBackend", func(i int) {
		if _, ok := s.Endpoint(backends[i%len(backends)]); !ok {
			b.Fatal("miss")
		}
	})
	names := make([]string, len(vips))
	for i := range names {
		names[i] = fmt.Sprintf("svc-%05d", i)
	}
	bench("IsEndpoint", func(i int) {
		k := i % len(backends)
		if !s.IsEndpoint("scale", names[k/15], backends[k]) {
			b.Fatal("miss")
		}
	})
	dst := make([]netip.AddrPort, 0, 16)
	bench("BackendsOfService", func(i int) {
		if dst = s.Backends(netip.AddrPortFrom(vips[i%len(vips)], 80), 6, dst[:0]); len(dst) != 15 {
			b.Fatalf("%d backends", len(dst))
		}
	})
	// Not a lookup: the ready endpoint count of every Service, which each
	// scrape of the kube metrics reads.
	b.Run("EndpointsOfAllServices", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := len(s.Endpoints()); n != len(vips) {
				b.Fatalf("%d Services", n)
			}
		}
	})
	b.Run("ParallelEndpointByBackend", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				s.Endpoint(backends[i%len(backends)])
			}
		})
	})
}

func heapInuse() int64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestIPv6Endpoints: IPv6 endpoints are found by their address, IPv4 ones
// also by the IPv4-mapped form.
func TestIPv6Endpoints(t *testing.T) {
	s := NewStore(ModeAPI, "")
	s.SetService(service("default", "web", vip.String(), 0))
	v6 := netip.MustParseAddr("fd00:10:244::5")
	sl := slice("default", "web-v6", "web", ep{v6.String(), "pod-a", "n1", true})
	sl.AddressType = discoveryv1.AddressTypeIPv6
	s.SetEndpointSlice(sl)
	s.SetEndpointSlice(slice("default", "web-v4", "web", ep{ipA.String(), "pod-a", "n1", true}))
	if e, ok := s.Endpoint(v6); !ok || e.Pod != "pod-a" || !s.IsEndpoint("default", "web", v6) {
		t.Errorf("Endpoint(%s) = %+v, %v", v6, e, ok)
	}
	if _, ok := s.Endpoint(netip.AddrFrom16(ipA.As16())); !ok {
		t.Errorf("%s not found by its IPv4-mapped form", ipA)
	}
	if got := s.Endpoints(); len(got) != 1 || got[0].Ready != 1 {
		t.Errorf("Endpoints() = %+v, want web with 1 (one pod in two slices)", got)
	}
	s.DeleteEndpointSlice("default", "web-v6")
	if _, ok := s.Endpoint(v6); ok {
		t.Errorf("%s outlived its slice", v6)
	}
}
