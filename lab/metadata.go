package lab

import (
	"bytes"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Kubernetes names of the lab's members in its metadata file.
const (
	Namespace        = "default"     // namespace of the backend pods and the Service
	SystemNamespace  = "kube-system" // namespace of the DNS pod
	ServiceObject    = "my-service"  // the Service's name (ServiceName is its DNS name)
	EndpointSliceObj = "my-service-7xk2p"
	// Workload names: pod-a and pod-b are replicas of the Deployment web,
	// pod-c is the only replica of web-canary, the DNS pod of coredns.
	WorkloadWeb     = "web"
	WorkloadCanary  = "web-canary"
	WorkloadCoreDNS = "coredns"
)

// templateHash is the pod-template-hash of each Deployment's ReplicaSet.
var templateHash = map[string]string{
	WorkloadWeb: "6d5f7b8c9d", WorkloadCanary: "7c9f8d6b5", WorkloadCoreDNS: "5d78c9869d",
}

// WorkloadOf returns the Deployment a lab pod belongs to in the metadata
// file.
func WorkloadOf(pod string) string {
	switch pod {
	case PodC:
		return WorkloadCanary
	case PodDNS:
		return WorkloadCoreDNS
	}
	return WorkloadWeb
}

// WriteMetadata writes the lab's Kubernetes metadata to path: its pods
// (with their nodes, IPs and Deployments, as ReplicaSet owner references
// and pod-template-hash labels), the Service with its ClusterIP ports and
// NodePort, and the Service's EndpointSlice listing the backends. It is a
// YAML stream of Pod, Service and EndpointSlice objects as `kubectl get
// -o yaml` prints them, the format of the agent's --k8s-metadata-file.
func (l *Lab) WriteMetadata(path string) error {
	b, err := metadataYAML(l.nodes, l.pods)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab metadata: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("lab metadata: %w", err)
	}
	return nil
}

func metadataYAML(nodes []Node, pods []Pod) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Kubernetes metadata of the layerscope lab (lab.WriteMetadata).\n")
	for i, o := range metadataObjects(nodes, pods) {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("lab metadata: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func metadataObjects(nodes []Node, pods []Pod) []any {
	t := true
	var out []any
	var eps []discoveryv1.Endpoint
	for _, p := range pods {
		ns, wl := Namespace, WorkloadOf(p.Name)
		labels := map[string]string{"app": "web", "pod-template-hash": templateHash[wl]}
		if p.Name == PodDNS {
			ns, labels = SystemNamespace, map[string]string{"k8s-app": "kube-dns", "pod-template-hash": templateHash[wl]}
		}
		port := corev1.ContainerPort{Name: "http", ContainerPort: ServicePort, Protocol: corev1.ProtocolTCP}
		if p.Name == PodDNS {
			port = corev1.ContainerPort{Name: "dns", ContainerPort: DNSPort, Protocol: corev1.ProtocolUDP}
		}
		out = append(out, &corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{
				Name: p.Name, Namespace: ns, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "apps/v1", Kind: "ReplicaSet", Name: wl + "-" + templateHash[wl],
					UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-0000000000%02x", len(out))), Controller: &t, BlockOwnerDeletion: &t,
				}},
			},
			Spec: corev1.PodSpec{
				NodeName:   p.Node,
				Containers: []corev1.Container{{Name: wl, Image: "layerscope-lab", Ports: []corev1.ContainerPort{port}}},
			},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, HostIP: nodeIP(nodes, p.Node), PodIP: p.IP.String(),
				PodIPs: []corev1.PodIP{{IP: p.IP.String()}},
			},
		})
		if p.Backend {
			node := p.Node
			eps = append(eps, discoveryv1.Endpoint{
				Addresses:  []string{p.IP.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &t, Serving: &t, Terminating: new(bool)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: Namespace, Name: p.Name},
				NodeName:   &node,
			})
		}
	}
	http, udp := "http", "udp"
	tcpProto, udpProto := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := int32(ServicePort)
	out = append(out,
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: ServiceObject, Namespace: Namespace},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeNodePort, ClusterIP: ServiceVIP.String(), ClusterIPs: []string{ServiceVIP.String()},
				Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{
					{Name: http, Protocol: tcpProto, Port: ServicePort, TargetPort: intstr.FromInt32(ServicePort), NodePort: NodePort},
					// The lab programs no NodePort for the UDP port.
					{Name: udp, Protocol: udpProto, Port: ServicePort, TargetPort: intstr.FromInt32(ServicePort)},
				},
			},
		},
		&discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{
				Name: EndpointSliceObj, Namespace: Namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: ServiceObject, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   eps,
			Ports: []discoveryv1.EndpointPort{
				{Name: &http, Protocol: &tcpProto, Port: &port},
				{Name: &udp, Protocol: &udpProto, Port: &port},
			},
		})
	return out
}

func nodeIP(nodes []Node, name string) string {
	for _, n := range nodes {
		if n.Name == name {
			return n.IP.String()
		}
	}
	return ""
}
