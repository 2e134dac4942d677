package tracing

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/exporters/otlp"
)

func TestPodMeta(t *testing.T) {
	store := kube.NewStore(kube.ModeAPI, "node-1")
	controller := true
	store.SetPod(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pod-a", Labels: map[string]string{"pod-template-hash": "6d5f7b8c9d"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-6d5f7b8c9d", Controller: &controller}}},
		Spec:   corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5"},
	})
	ready := true
	node := "node-2"
	store.SetEndpointSlice(&discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s", Labels: map[string]string{discoveryv1.LabelServiceName: "my-service"}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.8"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "pod-c"}, NodeName: &node}},
	})
	for _, tt := range []struct {
		addr string
		want otlp.Pod
	}{
		{"10.244.0.5", otlp.Pod{Namespace: "default", Name: "pod-a", WorkloadKind: "Deployment", Workload: "web"}},
		{"10.244.1.8", otlp.Pod{Namespace: "default", Name: "pod-c"}}, // another node's: from its EndpointSlice
		{"10.0.0.10", otlp.Pod{}},
	} {
		if got := podMeta(store, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("podMeta(%s) = %+v, want %+v", tt.addr, got, tt.want)
		}
	}
}
