package kube

import (
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Pod is what the store knows of a pod, found by one of its IPs.
type Pod struct {
	Namespace, Name string
	// Node is the node the pod is scheduled on (spec.nodeName).
	Node string
	// WorkloadKind and Workload name the pod's controller (see the package
	// documentation, "Workloads").
	WorkloadKind, Workload string
}

// Service is a Service port, found by a ClusterIP (or external or load
// balancer IP) and port, or by its NodePort.
type Service struct {
	Namespace, Name string
	// Port is the service port: the ClusterIP port, or the NodePort when
	// the service was found by it.
	Port uint16
	// PortName is the port's name in the Service spec (may be empty).
	PortName string
}

// Endpoint is a backend address listed in an EndpointSlice of a Service.
type Endpoint struct {
	// Namespace and Service name the Service the slice belongs to.
	Namespace, Service string
	// Pod is the endpoint's targetRef when it is a Pod; Node its nodeName.
	Pod, Node string
	// Ready is the endpoint's ready condition (unset counts as ready).
	Ready bool
}

// ServiceEndpoints is the ready endpoint count of one Service.
type ServiceEndpoints struct {
	Namespace, Name string
	Ready           int
}

type svcKey struct {
	addr  netip.Addr
	port  uint16
	proto uint8
}

type portKey struct {
	port  uint16
	proto uint8
}

type wlKey struct{ ns, name string }

type podEntry struct {
	info Pod
	ips  []netip.Addr
}

type svcEntry struct {
	keys      []svcKey
	nodePorts []portKey
	selector  bool // the Service selects pods (its EndpointSlices are managed)
}

type sliceEntry struct {
	ns, service string
	eps         []sliceEndpoint
	ports       []slicePort
}

type slicePort struct {
	name  string
	port  uint16
	proto uint8
}

type sliceEndpoint struct {
	addr netip.Addr
	ep   Endpoint
}

// index holds the lookup maps. It is guarded by Store.mu: informer
// handlers write under the write lock, lookups read under the read lock.
type index struct {
	pods     map[string]*podEntry // namespace/name
	byIP     map[netip.Addr]*podEntry
	wl       map[wlKey]int        // pods per workload
	services map[string]*svcEntry // namespace/name
	byAddr   map[svcKey]Service
	byNode   map[portKey]Service
	slices   map[string]*sliceEntry // namespace/name of the slice
	// backends lists the slice endpoints of each address: usually one, so
	// a slice rather than a map per address (150,000 endpoints in a large
	// cluster).
	backends map[netip.Addr][]sliceRef
}

// sliceRef is an endpoint of the EndpointSlice namespace/name slice.
type sliceRef struct {
	slice string
	ep    Endpoint
}

func newIndex() index {
	return index{
		pods: map[string]*podEntry{}, byIP: map[netip.Addr]*podEntry{}, wl: map[wlKey]int{},
		services: map[string]*svcEntry{}, byAddr: map[svcKey]Service{}, byNode: map[portKey]Service{},
		slices: map[string]*sliceEntry{}, backends: map[netip.Addr][]sliceRef{},
	}
}

// Store holds the Kubernetes metadata the agent names addresses with. Its
// lookups are safe for concurrent use, take a read lock and do not
// allocate; the informers (or a test) write it through the Set and Delete
// methods.
type Store struct {
	mode   Mode
	node   string
	synced atomic.Bool
	gen    atomic.Uint64 // bumped on every change

	mu sync.RWMutex
	ix index
}

// NewStore returns an empty store of the given source mode for the named
// node. Open builds one fed by informers; a store made here is filled by
// its Set and Delete methods.
func NewStore(mode Mode, node string) *Store {
	return &Store{mode: mode, node: node, ix: newIndex()}
}

// Mode is the source the store is fed from (ModeAPI, ModeFile or ModeOff).
func (s *Store) Mode() Mode {
	if s == nil {
		return ModeOff
	}
	return s.mode
}

// Node is the name of the node the agent runs on ("" if unknown).
func (s *Store) Node() string {
	if s == nil {
		return ""
	}
	return s.node
}

// Synced reports whether the store holds a complete copy of its source.
func (s *Store) Synced() bool { return s != nil && s.synced.Load() }

// Generation changes whenever the store's content does.
func (s *Store) Generation() uint64 {
	if s == nil {
		return 0
	}
	return s.gen.Load()
}

// Pod returns the pod holding addr.
func (s *Store) Pod(addr netip.Addr) (Pod, bool) {
	if s == nil {
		return Pod{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.ix.byIP[addr.Unmap()]; p != nil {
		return p.info, true
	}
	return Pod{}, false
}

// LocalPod returns the pod holding addr when it runs on this node (or
// when the store's node is unknown).
func (s *Store) LocalPod(addr netip.Addr) (Pod, bool) {
	p, ok := s.Pod(addr)
	if !ok || (s.node != "" && p.Node != s.node) {
		return Pod{}, false
	}
	return p, true
}

// HasPod reports whether the pod namespace/name exists.
func (s *Store) HasPod(namespace, name string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.ix.pods[namespace+"/"+name]
	return ok
}

// HasWorkload reports whether any pod of the workload namespace/name
// exists.
func (s *Store) HasWorkload(namespace, name string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ix.wl[wlKey{namespace, name}] > 0
}

// Service returns the Service port a client reached at ap over the IP
// protocol proto: a ClusterIP, external IP or load balancer IP with its
// port, else a NodePort on any address.
func (s *Store) Service(ap netip.AddrPort, proto uint8) (Service, bool) {
	if s == nil {
		return Service{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.ix.byAddr[svcKey{ap.Addr().Unmap(), ap.Port(), proto}]; ok {
		return v, true
	}
	v, ok := s.ix.byNode[portKey{ap.Port(), proto}]
	return v, ok
}

// Backends appends to dst the ready endpoints, with their target port,
// of the Service port a client reached at ap over proto (see Service):
// where the kernel may DNAT the connection. It allocates only to grow dst.
func (s *Store) Backends(ap netip.AddrPort, proto uint8, dst []netip.AddrPort) []netip.AddrPort {
	v, ok := s.Service(ap, proto)
	if !ok {
		return dst
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.ix.slices {
		if e.ns != v.Namespace || e.service != v.Name {
			continue
		}
		for _, p := range e.ports {
			if p.name != v.PortName || p.proto != proto || p.port == 0 {
				continue
			}
			for _, ep := range e.eps {
				if ep.ep.Ready {
					dst = append(dst, netip.AddrPortFrom(ep.addr, p.port))
				}
			}
		}
	}
	return dst
}

// Endpoint returns the EndpointSlice endpoint holding addr (one of them,
// when several Services select it).
func (s *Store) Endpoint(addr netip.Addr) (Endpoint, bool) {
	if s == nil {
		return Endpoint{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if refs := s.ix.backends[addr.Unmap()]; len(refs) > 0 {
		return refs[0].ep, true
	}
	return Endpoint{}, false
}

// IsEndpoint reports whether addr is listed in an EndpointSlice of the
// Service namespace/service (whatever its conditions).
func (s *Store) IsEndpoint(namespace, service string, addr netip.Addr) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.ix.backends[addr.Unmap()] {
		if e := r.ep; e.Service == service && e.Namespace == namespace {
			return true
		}
	}
	return false
}

// Endpoints returns the ready endpoint count of every Service that selects
// pods, sorted by namespace and name; a Service whose EndpointSlices are
// empty (or missing) has 0. Endpoints listed in several slices (one per
// address family) count once per pod.
func (s *Store) Endpoints() []ServiceEndpoints {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ready := map[string]map[string]struct{}{}
	for _, sl := range s.ix.slices {
		k := sl.ns + "/" + sl.service
		for _, e := range sl.eps {
			if !e.ep.Ready {
				continue
			}
			id := e.ep.Pod
			if id == "" {
				id = e.addr.String()
			}
			if ready[k] == nil {
				ready[k] = map[string]struct{}{}
			}
			ready[k][id] = struct{}{}
		}
	}
	out := make([]ServiceEndpoints, 0, len(s.ix.services))
	for k, sv := range s.ix.services {
		if !sv.selector && ready[k] == nil {
			continue // endpoints managed by hand, or none at all by design
		}
		ns, name := splitKey(k)
		out = append(out, ServiceEndpoints{Namespace: ns, Name: name, Ready: len(ready[k])})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Counts returns the number of pods, Services and EndpointSlices held.
func (s *Store) Counts() (pods, services, slices int) {
	if s == nil {
		return 0, 0, 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ix.pods), len(s.ix.services), len(s.ix.slices)
}

func splitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

func protoNumber(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return 17
	case corev1.ProtocolSCTP:
		return 132
	}
	return 6 // TCP, the API's default
}

// SetPod adds or replaces a pod. Pods that hold no IP of their own (host
// network) or that finished (Succeeded, Failed: their IPs are free for
// others) are removed.
func (s *Store) SetPod(p *corev1.Pod) {
	key := p.Namespace + "/" + p.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	s.deletePodLocked(key)
	if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	kind, wl := workloadOf(p)
	e := &podEntry{info: Pod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, WorkloadKind: kind, Workload: wl}}
	addIP := func(ip string) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		a = a.Unmap()
		for _, x := range e.ips {
			if x == a {
				return
			}
		}
		e.ips = append(e.ips, a)
		s.ix.byIP[a] = e
	}
	addIP(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		addIP(ip.IP)
	}
	s.ix.pods[key] = e
	s.ix.wl[wlKey{p.Namespace, wl}]++
}

// DeletePod removes the pod namespace/name.
func (s *Store) DeletePod(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletePodLocked(namespace + "/" + name)
	s.gen.Add(1)
}

func (s *Store) deletePodLocked(key string) {
	e := s.ix.pods[key]
	if e == nil {
		return
	}
	for _, a := range e.ips {
		if s.ix.byIP[a] == e { // not taken over by a newer pod
			delete(s.ix.byIP, a)
		}
	}
	k := wlKey{e.info.Namespace, e.info.Workload}
	if s.ix.wl[k]--; s.ix.wl[k] <= 0 {
		delete(s.ix.wl, k)
	}
	delete(s.ix.pods, key)
}

// SetService adds or replaces a Service.
func (s *Store) SetService(v *corev1.Service) {
	key := v.Namespace + "/" + v.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	s.deleteServiceLocked(key)
	if v.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	e := &svcEntry{selector: len(v.Spec.Selector) > 0}
	var addrs []netip.Addr
	add := func(ip string) {
		if a, err := netip.ParseAddr(ip); err == nil {
			addrs = append(addrs, a.Unmap())
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
	for _, p := range v.Spec.Ports {
		proto := protoNumber(p.Protocol)
		for _, a := range addrs {
			k := svcKey{a, uint16(p.Port), proto}
			if !containsKey(e.keys, k) {
				e.keys = append(e.keys, k)
			}
			s.ix.byAddr[k] = Service{Namespace: v.Namespace, Name: v.Name, Port: uint16(p.Port), PortName: p.Name}
		}
		if p.NodePort > 0 {
			k := portKey{uint16(p.NodePort), proto}
			e.nodePorts = append(e.nodePorts, k)
			s.ix.byNode[k] = Service{Namespace: v.Namespace, Name: v.Name, Port: uint16(p.NodePort), PortName: p.Name}
		}
	}
	s.ix.services[key] = e
}

func containsKey(ks []svcKey, k svcKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// DeleteService removes the Service namespace/name.
func (s *Store) DeleteService(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteServiceLocked(namespace + "/" + name)
	s.gen.Add(1)
}

func (s *Store) deleteServiceLocked(key string) {
	e := s.ix.services[key]
	if e == nil {
		return
	}
	ns, name := splitKey(key)
	for _, k := range e.keys {
		if v, ok := s.ix.byAddr[k]; ok && v.Namespace == ns && v.Name == name {
			delete(s.ix.byAddr, k)
		}
	}
	for _, k := range e.nodePorts {
		if v, ok := s.ix.byNode[k]; ok && v.Namespace == ns && v.Name == name {
			delete(s.ix.byNode, k)
		}
	}
	delete(s.ix.services, key)
}

// SetEndpointSlice adds or replaces an EndpointSlice. Slices without the
// kubernetes.io/service-name label belong to no Service and are ignored.
func (s *Store) SetEndpointSlice(sl *discoveryv1.EndpointSlice) {
	key := sl.Namespace + "/" + sl.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	s.deleteSliceLocked(key)
	svc := sl.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return
	}
	e := &sliceEntry{ns: sl.Namespace, service: svc}
	for _, p := range sl.Ports {
		sp := slicePort{proto: protoNumber(corev1.ProtocolTCP)}
		if p.Name != nil {
			sp.name = *p.Name
		}
		if p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
			sp.port = uint16(*p.Port)
		}
		if p.Protocol != nil {
			sp.proto = protoNumber(*p.Protocol)
		}
		e.ports = append(e.ports, sp)
	}
	for i := range sl.Endpoints {
		ep := &sl.Endpoints[i]
		info := Endpoint{Namespace: sl.Namespace, Service: svc, Ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
		if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
			info.Pod = ep.TargetRef.Name
		}
		if ep.NodeName != nil {
			info.Node = *ep.NodeName
		}
		for _, a := range ep.Addresses {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			addr = addr.Unmap()
			e.eps = append(e.eps, sliceEndpoint{addr, info})
			s.ix.backends[addr] = append(s.ix.backends[addr], sliceRef{key, info})
		}
	}
	s.ix.slices[key] = e
}

// DeleteEndpointSlice removes the EndpointSlice namespace/name.
func (s *Store) DeleteEndpointSlice(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteSliceLocked(namespace + "/" + name)
	s.gen.Add(1)
}

func (s *Store) deleteSliceLocked(key string) {
	e := s.ix.slices[key]
	if e == nil {
		return
	}
	for _, ep := range e.eps {
		refs := slices.DeleteFunc(s.ix.backends[ep.addr], func(r sliceRef) bool { return r.slice == key })
		if len(refs) == 0 {
			delete(s.ix.backends, ep.addr)
		} else {
			s.ix.backends[ep.addr] = refs
		}
	}
	delete(s.ix.slices, key)
}
