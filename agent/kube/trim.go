package kube

import (
	"github.com/layerscope/layerscope/internal/informer"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trimService is the informer transform of Services: it keeps only what
// Store.SetService indexes (addresses, ports, whether there is a
// selector), so the informer cache holds a compact copy of every Service
// of the cluster rather than the full objects.
func trimService(o any) (any, error) {
	v, ok := o.(*corev1.Service)
	if !ok {
		return informer.TrimMeta(o)
	}
	t := &corev1.Service{
		TypeMeta:   v.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: v.Name, Namespace: v.Namespace, UID: v.UID, ResourceVersion: v.ResourceVersion},
		Spec: corev1.ServiceSpec{Type: v.Spec.Type, ClusterIP: v.Spec.ClusterIP, ClusterIPs: v.Spec.ClusterIPs,
			ExternalIPs: v.Spec.ExternalIPs},
	}
	if len(v.Spec.Selector) > 0 {
		t.Spec.Selector = map[string]string{} // only its presence is used
		for k, x := range v.Spec.Selector {
			t.Spec.Selector[k] = x
			break
		}
	}
	for _, p := range v.Spec.Ports {
		t.Spec.Ports = append(t.Spec.Ports, corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, NodePort: p.NodePort})
	}
	for _, in := range v.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			t.Status.LoadBalancer.Ingress = append(t.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: in.IP})
		}
	}
	return t, nil
}

// trimSlice is the informer transform of EndpointSlices: it keeps only
// what Store.SetEndpointSlice indexes (the Service's name, its ports —
// Store.Backends answers with them —, each endpoint's addresses,
// readiness, pod and node), dropping hints, zones and the other labels.
func trimSlice(o any) (any, error) {
	sl, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return informer.TrimMeta(o)
	}
	t := &discoveryv1.EndpointSlice{
		TypeMeta:    sl.TypeMeta,
		ObjectMeta:  metav1.ObjectMeta{Name: sl.Name, Namespace: sl.Namespace, UID: sl.UID, ResourceVersion: sl.ResourceVersion},
		AddressType: sl.AddressType,
		Endpoints:   make([]discoveryv1.Endpoint, len(sl.Endpoints)),
		Ports:       sl.Ports,
	}
	if svc, ok := sl.Labels[discoveryv1.LabelServiceName]; ok {
		t.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	for i := range sl.Endpoints {
		ep := &sl.Endpoints[i]
		te := &t.Endpoints[i]
		te.Addresses, te.NodeName = ep.Addresses, ep.NodeName
		te.Conditions.Ready = ep.Conditions.Ready
		if r := ep.TargetRef; r != nil && r.Kind == "Pod" {
			te.TargetRef = &corev1.ObjectReference{Kind: r.Kind, Name: r.Name}
		}
	}
	return t, nil
}
