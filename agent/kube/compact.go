package kube

import (
	"math"
	"net/netip"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/layerscope/layerscope/internal/informer"
)

// The informer caches hold the store's own compact objects instead of the
// API's: the informers' transforms (compactPodObj, compactServiceObj,
// compactSliceObj) convert each pod, Service and EndpointSlice into the
// fields the lookups read, and the store indexes the very objects the
// caches hold, so each endpoint of the cluster is kept once, in about 50
// bytes (its address, interned node name, pod name and readiness), where a
// discoveryv1.Endpoint takes several hundred. The objects are immutable
// once made: a change of the API object replaces them.
//
// Each embeds the metadata the informer machinery reads (informer.Meta) and
// implements runtime.Object, as the caches require.

// intern returns the canonical handle of a string that repeats across
// objects (node and port names): a handle is a pointer, and the string is
// held once however many entries name it.
func intern(s string) unique.Handle[string] { return unique.Make(s) }

// podObj is a pod as the store keeps it.
type podObj struct {
	informer.Meta
	node                   string
	workloadKind, workload string
	// gone: the pod holds no IP of its own (host network) or has finished
	// (Succeeded, Failed: its IPs are free for others).
	gone bool
	ips  []netip.Addr
}

func (o *podObj) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (o *podObj) DeepCopyObject() runtime.Object {
	c := *o
	c.ips = append([]netip.Addr(nil), o.ips...)
	return &c
}

func compactPod(p *corev1.Pod) *podObj {
	o := &podObj{Meta: informer.KeepMeta(&p.ObjectMeta), node: p.Spec.NodeName,
		gone: p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed}
	o.workloadKind, o.workload = workloadOf(p)
	add := func(ip string) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		if a = a.Unmap(); !containsAddr(o.ips, a) {
			o.ips = append(o.ips, a)
		}
	}
	add(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	return o
}

// compactPodObj is the pod informer's transform.
func compactPodObj(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		return compactPod(p), nil
	}
	return o, nil // already compact (a relist's objects pass twice), or a tombstone
}

// svcObj is a Service as the store keeps it.
type svcObj struct {
	informer.Meta
	externalName bool
	selector     bool // the Service selects pods (its EndpointSlices are managed)
	// addrs are its ClusterIPs, external IPs and load balancer IPs.
	addrs []netip.Addr
	ports []svcPort
}

type svcPort struct {
	name     unique.Handle[string]
	port     uint16
	nodePort uint16
	proto    uint8
}

func (o *svcObj) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (o *svcObj) DeepCopyObject() runtime.Object {
	c := *o
	c.addrs = append([]netip.Addr(nil), o.addrs...)
	c.ports = append([]svcPort(nil), o.ports...)
	return &c
}

func compactService(v *corev1.Service) *svcObj {
	o := &svcObj{Meta: informer.KeepMeta(&v.ObjectMeta), externalName: v.Spec.Type == corev1.ServiceTypeExternalName,
		selector: len(v.Spec.Selector) > 0}
	add := func(ip string) {
		if a, err := netip.ParseAddr(ip); err == nil && !containsAddr(o.addrs, a.Unmap()) {
			o.addrs = append(o.addrs, a.Unmap())
		}
	}
	add(v.Spec.ClusterIP)
	for _, ip := range v.Spec.ClusterIPs {
		add(ip)
	}
	for _, ip := range v.Spec.ExternalIPs {
		add(ip)
	}
	for _, in := range v.Status.LoadBalancer.Ingress {
		add(in.IP)
	}
	o.ports = make([]svcPort, 0, len(v.Spec.Ports))
	for _, p := range v.Spec.Ports {
		sp := svcPort{name: intern(p.Name), port: uint16(p.Port), proto: protoNumber(p.Protocol)}
		if p.NodePort > 0 && p.NodePort <= 65535 {
			sp.nodePort = uint16(p.NodePort)
		}
		o.ports = append(o.ports, sp)
	}
	return o
}

// compactServiceObj is the Service informer's transform.
func compactServiceObj(o any) (any, error) {
	if v, ok := o.(*corev1.Service); ok {
		return compactService(v), nil
	}
	return o, nil
}

// sliceObj is an EndpointSlice as the store keeps it.
type sliceObj struct {
	informer.Meta
	// service is the kubernetes.io/service-name label: "" for a slice of
	// no Service, which the store ignores.
	service string
	ports   []slicePort
	eps     []sliceEndpoint
	// pods holds the endpoints' pod names end to end (one allocation per
	// slice rather than one per endpoint).
	pods string
}

type slicePort struct {
	name  unique.Handle[string]
	port  uint16 // 0: unset or out of range
	proto uint8
}

// sliceEndpoint is one address of an endpoint: an endpoint with several
// addresses has an entry for each.
type sliceEndpoint struct {
	addr netip.Addr
	node unique.Handle[string]
	// pod is the targetRef's name when it is a Pod: the slice's
	// pods[podOff:podOff+podLen] (a name has at most 253 bytes).
	podOff uint32
	podLen uint16
	ready  bool // the ready condition; unset counts as ready
}

// pod is the pod name of endpoint address e.
func (o *sliceObj) pod(e *sliceEndpoint) string {
	return o.pods[e.podOff : e.podOff+uint32(e.podLen)]
}

func (o *sliceObj) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (o *sliceObj) DeepCopyObject() runtime.Object {
	c := *o
	c.ports = append([]slicePort(nil), o.ports...)
	c.eps = append([]sliceEndpoint(nil), o.eps...)
	return &c
}

func compactSlice(sl *discoveryv1.EndpointSlice) *sliceObj {
	o := &sliceObj{Meta: informer.KeepMeta(&sl.ObjectMeta), service: sl.Labels[discoveryv1.LabelServiceName]}
	if o.service == "" {
		return o
	}
	o.ports = make([]slicePort, 0, len(sl.Ports))
	for _, p := range sl.Ports {
		sp := slicePort{proto: protoNumber(corev1.ProtocolTCP)}
		if p.Name != nil {
			sp.name = intern(*p.Name)
		} else {
			sp.name = intern("")
		}
		if p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
			sp.port = uint16(*p.Port)
		}
		if p.Protocol != nil {
			sp.proto = protoNumber(*p.Protocol)
		}
		o.ports = append(o.ports, sp)
	}
	n := 0
	for i := range sl.Endpoints {
		n += len(sl.Endpoints[i].Addresses)
	}
	o.eps = make([]sliceEndpoint, 0, n)
	var pods strings.Builder
	pods.Grow(podNamesLen(sl))
	noNode := intern("")
	for i := range sl.Endpoints {
		ep := &sl.Endpoints[i]
		e := sliceEndpoint{node: noNode, ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
		if r := ep.TargetRef; r != nil && r.Kind == "Pod" && len(r.Name) <= math.MaxUint16 {
			e.podOff, e.podLen = uint32(pods.Len()), uint16(len(r.Name))
			pods.WriteString(r.Name)
		}
		if ep.NodeName != nil {
			e.node = intern(*ep.NodeName)
		}
		for _, a := range ep.Addresses {
			if addr, err := netip.ParseAddr(a); err == nil {
				e.addr = addr.Unmap()
				o.eps = append(o.eps, e)
			}
		}
	}
	o.pods = pods.String()
	return o
}

// podNamesLen is the length of sl's endpoints' pod names end to end.
func podNamesLen(sl *discoveryv1.EndpointSlice) int {
	n := 0
	for i := range sl.Endpoints {
		if r := sl.Endpoints[i].TargetRef; r != nil && r.Kind == "Pod" {
			n += len(r.Name)
		}
	}
	return n
}

// compactSliceObj is the EndpointSlice informer's transform.
func compactSliceObj(o any) (any, error) {
	if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
		return compactSlice(sl), nil
	}
	return o, nil
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
