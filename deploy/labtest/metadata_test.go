package labtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/layerscope/layerscope/lab"
)

// Kubernetes names of the lab: the backends are the pods of Deployment
// web (ReplicaSet web-5d9c7b8f6d) behind Service default/my-service, the
// DNS pod is kube-system's coredns, and default/empty is a Service whose
// selector matches no pod.
const (
	backendWorkload = "web"
	templateHash    = "5d9c7b8f6d"
	serviceName     = "my-service"
	emptyService    = "empty"
)

// writeMetadata writes the lab's Kubernetes objects to path as the agent's
// static metadata file (a YAML stream as `kubectl get -o yaml` prints it):
// the pods, Service default/my-service (ClusterIP, TCP port http with its
// NodePort, UDP port udp) whose EndpointSlice lists endpoints, and
// default/empty without endpoints. The file is replaced atomically, so an
// agent reloading it never reads half of it.
func writeMetadata(t *testing.T, path string, l *lab.Lab, endpoints []lab.Pod) {
	t.Helper()
	var objs []any
	for _, p := range l.Pods() {
		ns, owner, hash := "default", backendWorkload+"-"+templateHash, templateHash
		labels := map[string]string{"app": backendWorkload, "pod-template-hash": hash}
		if !p.Backend {
			ns, owner, hash = "kube-system", "coredns-7db6d8ff4d", "7db6d8ff4d"
			labels = map[string]string{"k8s-app": "kube-dns", "pod-template-hash": hash}
		}
		ctrl := true
		objs = append(objs, &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: owner + "-" + p.Name, Namespace: ns, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner, UID: types.UID("uid-" + owner), Controller: &ctrl}}},
			Spec: corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{{Name: "main", Image: "lab"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.IP.String(), PodIPs: []corev1.PodIP{{IP: p.IP.String()}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	objs = append(objs,
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: lab.ServiceVIP.String(), ClusterIPs: []string{lab.ServiceVIP.String()},
				Selector: map[string]string{"app": backendWorkload},
				Ports: []corev1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, Port: lab.ServicePort, TargetPort: intstr.FromInt32(lab.ServicePort), NodePort: lab.NodePort},
					{Name: "udp", Protocol: corev1.ProtocolUDP, Port: lab.ServicePort, TargetPort: intstr.FromInt32(lab.ServicePort)},
				}},
		},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: emptyService, Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.43", ClusterIPs: []string{"10.96.0.43"},
				Selector: map[string]string{"app": "nothing"},
				Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
	ready := true
	var eps []discoveryv1.Endpoint
	for _, p := range endpoints {
		node := p.Node
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{p.IP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			NodeName: &node, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: backendWorkload + "-" + templateHash + "-" + p.Name}})
	}
	http, udp, port := "http", "udp", int32(lab.ServicePort)
	tcp, udpProto := corev1.ProtocolTCP, corev1.ProtocolUDP
	objs = append(objs,
		&discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: serviceName + "-x7k2p", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: serviceName}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   eps,
			Ports:       []discoveryv1.EndpointPort{{Name: &http, Protocol: &tcp, Port: &port}, {Name: &udp, Protocol: &udpProto, Port: &port}},
		},
		&discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: emptyService + "-q9w4z", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: emptyService}},
			AddressType: discoveryv1.AddressTypeIPv4,
		})

	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
