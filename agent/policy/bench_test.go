package policy

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	flowrec "github.com/layerscope/layerscope/agent/flow"
)

// benchStore is a cluster of nsCount namespaces (team=t0..t4), each with
// 10 apps of 10 pods and perNS policies: a default deny, then policies
// selecting app i that allow app i-1 of the namespace on the named port
// http, and app i of team t(i mod 5) namespaces on 8000-8100.
func benchStore(b *testing.B, nsCount, perNS int) *Store {
	b.Helper()
	s := NewStore()
	for n := range nsCount {
		ns := fmt.Sprintf("ns%d", n)
		s.SetNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": fmt.Sprintf("t%d", n%5)}}})
		for a := range 10 {
			for i := range 10 {
				ip := netip.AddrFrom4([4]byte{10, byte(n / 250), byte(n % 250), byte(a*10 + i + 1)})
				s.SetPod(pod(ns, fmt.Sprintf("app%d-%d", a, i), ip.String(), map[string]string{"app": fmt.Sprintf("app%d", a), "tier": "x"},
					corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
			}
		}
		if err := s.SetPolicy(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default-deny"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}); err != nil {
			b.Fatal(err)
		}
		rng := tcp(8000)
		end := int32(8100)
		rng.EndPort = &end
		for p := 1; p < perNS; p++ {
			a := p % 10
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("allow-%d", p)},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: *app(fmt.Sprintf("app%d", a)),
					Ingress: []networkingv1.NetworkPolicyIngressRule{
						{From: []networkingv1.NetworkPolicyPeer{{PodSelector: app(fmt.Sprintf("app%d", (a+9)%10))}}, Ports: ports(named("http"))},
						{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: team(fmt.Sprintf("t%d", p%5)), PodSelector: app(fmt.Sprintf("app%d", a))}}, Ports: ports(rng)},
					},
				},
			}
			if err := s.SetPolicy(np); err != nil {
				b.Fatal(err)
			}
		}
	}
	s.MarkSynced()
	return s
}

func benchExplain(b *testing.B, nsCount, perNS int) {
	s := benchStore(b, nsCount, perNS)
	// ns0 app0-0 -> ns0 app1-0:8080: allowed by allow-1's first rule.
	allowed := Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.11"), Port: 8080}
	// ns0 app2-0 -> ns0 app1-0:8080: only the default deny and allow-1
	// (app0) select app1: denied.
	denied := Flow{Src: netip.MustParseAddr("10.0.0.21"), Dst: netip.MustParseAddr("10.0.0.11"), Port: 8080}
	if e := s.Explain(Observation{Flow: allowed}); e.Verdict != VerdictUnexplained {
		b.Fatalf("allowed flow: %s", e)
	}
	if e := s.Explain(Observation{Flow: denied}); e.Verdict != VerdictPolicy {
		b.Fatalf("denied flow: %s", e)
	}
	b.Run("allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Explain(Observation{Flow: allowed})
		}
	})
	b.Run("denied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Explain(Observation{Flow: denied})
		}
	})
	b.Run("Allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allowed(denied)
		}
	})
}

// BenchmarkExplain: 1,000 policies across 100 namespaces (10 each), 10,000
// pods.
func BenchmarkExplain(b *testing.B) { benchExplain(b, 100, 10) }

// BenchmarkExplainCrowded: 1,000 policies in one namespace, every one
// consulted for a pod that 100 of them select.
func BenchmarkExplainCrowded(b *testing.B) { benchExplain(b, 1, 1000) }

func BenchmarkSetPolicy(b *testing.B) {
	s := benchStore(b, 10, 10)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns0", Name: "bench"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *app("app1"),
			Ingress:     from(ports(named("http"), tcp(9090)), networkingv1.NetworkPolicyPeer{NamespaceSelector: team("t1"), PodSelector: app("app2")}),
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SetPolicy(np); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordsFinal is the agent's cost per failed connection: the
// observation from its flow record and conntrack entry, the explanation,
// its conversion for the sinks and the count (1,000 policies across 100
// namespaces, 10,000 pods). Connections that did not fail cost nothing.
func BenchmarkRecordsFinal(b *testing.B) {
	s := benchStore(b, 100, 10)
	src, dst := netip.MustParseAddr("10.0.0.21"), netip.MustParseAddr("10.0.0.11")
	rec := &flowrec.Record{Key: flowrec.Key{Src: src, Dst: dst, SrcPort: 40000, DstPort: 8080, Proto: flowrec.ProtoTCP}, Outcome: flowrec.OutcomeTimeout}
	x := &Records{Store: s, Denied: &Denied{}}
	if p := x.Final(rec, nil); p.Verdict != "policy" {
		b.Fatalf("%+v", p)
	}
	b.ReportAllocs()
	for b.Loop() {
		x.Final(rec, nil)
	}
}

// clusterPod is a pod as the API server returns it for a replica of a
// Deployment: the labels its ReplicaSet gives every replica, owner,
// annotations, managed fields, a container with a named port, the
// service account volume and a running status.
func clusterPod(i, replicas int) *corev1.Pod {
	app := fmt.Sprintf("app-%05d", i/replicas)
	ns := fmt.Sprintf("team-%03d", i/replicas%100)
	hash := fmt.Sprintf("%010x", (i/replicas)*2654435761%(1<<40))
	name := fmt.Sprintf("%s-%s-%05d", app, hash[:8], i)
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
	truth := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, GenerateName: app + "-" + hash[:8] + "-",
			UID: types.UID(fmt.Sprintf("5a3f0c1e-8b2d-4c7a-9e61-%012d", i)), ResourceVersion: fmt.Sprint(100000 + i),
			Labels: map[string]string{
				"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app + "-prod",
				"app.kubernetes.io/part-of": ns, "pod-template-hash": hash[:8],
			},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
				Name: app + "-" + hash[:8], UID: "0c8e", Controller: &truth}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1"}},
		},
		Spec: corev1.PodSpec{
			NodeName: fmt.Sprintf("node-%04d", i%5000), ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/" + app + ":v1.2.3",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
			}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x2c9v"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, HostIP: "192.168.0.1", PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// BenchmarkWatchPodsMemory is the heap the policy watch keeps per pod of
// the cluster (the informer's cache, with its namespace index, and the
// store), fed by client-go's informers from a fake clientset: pods in
// Deployments of 10 replicas, which share their labels. MiB/150k-pods
// extrapolates to the pods of a 5,000-node cluster.
func BenchmarkWatchPodsMemory(b *testing.B) {
	const pods, replicas = 30000, 10
	objs := make([]k8sruntime.Object, pods)
	for i := range objs {
		objs[i] = clusterPod(i, replicas)
	}
	cs := fake.NewClientset(objs...)
	objs = nil
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		s := NewStore()
		Watch(ctx, cs, s, 0, nil, nil)
		for !s.Synced() {
			time.Sleep(10 * time.Millisecond)
		}
		if st := s.Stats(); st.Pods != pods {
			b.Fatalf("store holds %d pods, want %d", st.Pods, pods)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		cancel()
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / pods
	b.ReportMetric(per, "B/pod")
	b.ReportMetric(per*150000/(1<<20), "MiB/150k-pods")
}
