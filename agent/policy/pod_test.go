package policy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestLabelsMatchAsASet checks that selectors match a compact label set
// exactly as they match the map it was made of, for random label sets and
// selectors of every operator.
func TestLabelsMatchAsASet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keys := []string{"app", "app.kubernetes.io/name", "tier", "a", "ab", "b"}
	vals := []string{"", "x", "y", "web"}
	ops := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}
	for range 5000 {
		m := map[string]string{}
		for _, k := range keys {
			if r.IntN(2) == 0 {
				m[k] = vals[r.IntN(len(vals))]
			}
		}
		ls := &metav1.LabelSelector{MatchLabels: map[string]string{}}
		for range r.IntN(3) {
			ls.MatchLabels[keys[r.IntN(len(keys))]] = vals[r.IntN(len(vals))]
		}
		for range r.IntN(3) {
			e := metav1.LabelSelectorRequirement{Key: keys[r.IntN(len(keys))], Operator: ops[r.IntN(len(ops))]}
			if e.Operator == metav1.LabelSelectorOpIn || e.Operator == metav1.LabelSelectorOpNotIn {
				e.Values = []string{vals[r.IntN(len(vals))], vals[r.IntN(len(vals))]}
			}
			ls.MatchExpressions = append(ls.MatchExpressions, e)
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatal(err)
		}
		l := makeLabels(m)
		if got, want := sel.Matches(l), sel.Matches(labels.Set(m)); got != want {
			t.Fatalf("selector %v on %v: compact %v, map %v", sel, m, got, want)
		}
		for _, k := range keys {
			v, ok := m[k]
			if gv, gok := l.Lookup(k); gv != v || gok != ok || l.Has(k) != ok || l.Get(k) != v {
				t.Fatalf("%v: Lookup(%q) = %q %v, want %q %v", m, k, gv, gok, v, ok)
			}
		}
	}
}

func TestCompactPod(t *testing.T) {
	v4, v6 := "10.244.1.7", "fd00::1:7"
	replica := func(name, ip string) *corev1.Pod {
		p := pod("prod", name, ip, map[string]string{"app": "web", "pod-template-hash": "7d9f"},
			corev1.ContainerPort{Name: "http", ContainerPort: 8080},
			corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			corev1.ContainerPort{ContainerPort: 9090},               // unnamed: not kept
			corev1.ContainerPort{Name: "bad", ContainerPort: 70000}) // out of range: not kept
		p.ResourceVersion = "42"
		return p
	}
	a, b := compactPod(replica("web-1", v4)), compactPod(replica("web-2", "10.244.1.8"))
	if a.Namespace != "prod" || a.Name != "web-1" || a.ResourceVersion != "42" || a.HostNetwork {
		t.Errorf("meta: %+v", a.Meta)
	}
	if a.shape != b.shape || unsafe.StringData(string(a.Labels())) != unsafe.StringData(string(b.Labels())) ||
		unsafe.StringData(a.Namespace) != unsafe.StringData(b.Namespace) {
		t.Error("two replicas do not share their namespace, labels and ports")
	}
	if got := a.IPs(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr(v4)}) {
		t.Errorf("IPs %v", got)
	}
	want := []NamedPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	if got := a.NamedPorts(); !slices.Equal(got, want) {
		t.Errorf("named ports %v, want %v", got, want)
	}
	if p, ok := a.namedPort("dns", corev1.ProtocolUDP); !ok || p != 53 {
		t.Errorf("dns/UDP: %d %v", p, ok)
	}
	if _, ok := a.namedPort("dns", corev1.ProtocolTCP); ok {
		t.Error("dns/TCP resolved")
	}
	if _, ok := a.namedPort("bad", corev1.ProtocolTCP); ok {
		t.Error("an out-of-range port resolved")
	}

	dual := replica("web-3", v4)
	dual.Status.PodIPs = []corev1.PodIP{{IP: v4}, {IP: v6}, {IP: "10.9.9.9"}, {IP: "not-an-ip"}}
	if got := compactPod(dual).IPs(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr(v4), netip.MustParseAddr(v6)}) {
		t.Errorf("dual-stack IPs %v", got)
	}
	old := replica("web-4", "")
	old.Status.PodIPs, old.Status.PodIP = nil, "::ffff:10.244.1.9"
	if got := compactPod(old).IPs(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.244.1.9")}) {
		t.Errorf("PodIP only: %v", got)
	}
	done := replica("job-1", v4)
	done.Status.Phase = corev1.PodSucceeded
	if got := compactPod(done).IPs(); len(got) != 0 {
		t.Errorf("a finished pod holds %v", got)
	}
	if c := a.DeepCopyObject().(*Pod); c == a || c.Name != a.Name || c.shape != a.shape {
		t.Error("DeepCopyObject")
	}
}
