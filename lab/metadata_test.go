package lab

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestMetadataFile decodes the metadata file of a lab strictly into the
// Kubernetes types and checks it against the topology: every pod with its
// node and IP, the Service's ClusterIP, ports and NodePort, and an
// EndpointSlice listing exactly the backends.
func TestMetadataFile(t *testing.T) {
	nodes, pods := topology("t-")
	l := &Lab{nodes: nodes, pods: pods}
	path := filepath.Join(t.TempDir(), "meta.yaml")
	if err := l.WriteMetadata(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var svc *corev1.Service
	var slice *discoveryv1.EndpointSlice
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var target any
		switch tm.Kind {
		case "Pod":
			target = &corev1.Pod{} // checked by TestMetadataPods
		case "Service":
			svc = &corev1.Service{}
			target = svc
		case "EndpointSlice":
			slice = &discoveryv1.EndpointSlice{}
			target = slice
		default:
			t.Fatalf("document %d: kind %q", i, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v", i, tm.Kind, err)
		}
	}
	if svc == nil || slice == nil {
		t.Fatalf("service %v, endpointslice %v", svc != nil, slice != nil)
	}
	if svc.Name != ServiceObject || svc.Namespace != Namespace || svc.Spec.ClusterIP != ServiceVIP.String() {
		t.Errorf("service %s/%s %s", svc.Namespace, svc.Name, svc.Spec.ClusterIP)
	}
	ports := map[corev1.Protocol]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Protocol] = p
	}
	if p := ports[corev1.ProtocolTCP]; p.Port != ServicePort || p.NodePort != NodePort {
		t.Errorf("TCP port %+v, want %d with NodePort %d", p, ServicePort, NodePort)
	}
	if p := ports[corev1.ProtocolUDP]; p.Port != ServicePort || p.NodePort != 0 {
		t.Errorf("UDP port %+v, want %d without NodePort", p, ServicePort)
	}
	if slice.Labels[discoveryv1.LabelServiceName] != ServiceObject {
		t.Errorf("endpointslice labels %v", slice.Labels)
	}
	listed := map[string]string{}
	for _, e := range slice.Endpoints {
		if e.TargetRef == nil || e.NodeName == nil || len(e.Addresses) != 1 || e.Conditions.Ready == nil || !*e.Conditions.Ready {
			t.Fatalf("endpoint %+v", e)
		}
		listed[e.TargetRef.Name] = e.Addresses[0] + " " + *e.NodeName
	}
	want := map[string]string{}
	for _, p := range pods {
		if p.Backend {
			want[p.Name] = p.IP.String() + " " + p.Node
		}
	}
	if len(listed) != 3 || len(listed) != len(want) {
		t.Errorf("endpoints %v, want %v", listed, want)
	}
	for k, v := range want {
		if listed[k] != v {
			t.Errorf("endpoint %s = %q, want %q", k, listed[k], v)
		}
	}
}

// TestMetadataPods checks each pod object of the file.
func TestMetadataPods(t *testing.T) {
	nodes, pods := topology("t-")
	for i, o := range metadataObjects(nodes, pods) {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		want := pods[i]
		if p.Name != want.Name || p.Spec.NodeName != want.Node || netip.MustParseAddr(p.Status.PodIP) != want.IP {
			t.Errorf("pod %d: %s on %s at %s, want %s on %s at %s", i, p.Name, p.Spec.NodeName, p.Status.PodIP, want.Name, want.Node, want.IP)
		}
		ns := Namespace
		if want.Name == PodDNS {
			ns = SystemNamespace
		}
		wl := WorkloadOf(want.Name)
		rs := p.OwnerReferences[0]
		if p.Namespace != ns || rs.Kind != "ReplicaSet" || rs.Name != wl+"-"+p.Labels["pod-template-hash"] || !*rs.Controller {
			t.Errorf("pod %s: namespace %s, owner %+v, labels %v; want namespace %s, Deployment %s", p.Name, p.Namespace, rs, p.Labels, ns, wl)
		}
	}
}
