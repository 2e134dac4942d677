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

// nsName is a namespaced object's key in the index.
type nsName struct{ ns, name string }

// svcRef is port port of Service o, and the answer to a lookup of it: kept
// whole in the map entry (a Service lookup is on every flow's path and
// there are far fewer Service ports than endpoints), o to tell whose
// entry it is.
type svcRef struct {
	v    Service
	o    *svcObj
	port int32
}

// ref is port i of o, by its NodePort when nodePort is set.
func (o *svcObj) ref(i int, nodePort bool) svcRef {
	p := &o.ports[i]
	r := svcRef{v: Service{Namespace: o.Namespace, Name: o.Name, Port: p.port, PortName: p.name.Value()}, o: o, port: int32(i)}
	if nodePort {
		r.v.Port = p.nodePort
	}
	return r
}

// epRef is endpoint address i of a slice.
type epRef struct {
	o *sliceObj
	i int32
}

func (r epRef) endpoint() Endpoint {
	e := &r.o.eps[r.i]
	return Endpoint{Namespace: r.o.Namespace, Service: r.o.service, Pod: r.o.pod(e), Node: e.node.Value(), Ready: e.ready}
}

// index holds the lookup maps over the compact objects the informer
// caches hold (compact.go). It is guarded by Store.mu: informer handlers
// write under the write lock, lookups read under the read lock.
type index struct {
	pods     map[nsName]*podObj
	byIP     map[netip.Addr]*podObj
	wl       map[wlKey]int // pods per workload
	services map[nsName]*svcObj
	byAddr   map[svcKey]svcRef
	byNode   map[portKey]svcRef
	slices   map[nsName]*sliceObj
	// bySvc lists the slices of each Service (namespace, Service name).
	bySvc map[nsName][]*sliceObj
	// backends is the first slice endpoint listing each address; more
	// the others of the addresses listed more than once (an address
	// usually is in one slice: 150,000 endpoints in a large cluster cost
	// one map entry each).
	backends addrMap[epRef]
	more     map[netip.Addr][]epRef
}

// addrMap is a map by address whose IPv4 keys take 4 bytes rather than a
// netip.Addr's 24.
type addrMap[V any] struct {
	v4 map[uint32]V
	v6 map[netip.Addr]V
}

func newAddrMap[V any]() addrMap[V] {
	return addrMap[V]{v4: map[uint32]V{}, v6: map[netip.Addr]V{}}
}

func v4key(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (m addrMap[V]) get(a netip.Addr) (V, bool) {
	if a.Is4() {
		v, ok := m.v4[v4key(a)]
		return v, ok
	}
	v, ok := m.v6[a]
	return v, ok
}

func (m addrMap[V]) set(a netip.Addr, v V) {
	if a.Is4() {
		m.v4[v4key(a)] = v
	} else {
		m.v6[a] = v
	}
}

func (m addrMap[V]) delete(a netip.Addr) {
	if a.Is4() {
		delete(m.v4, v4key(a))
	} else {
		delete(m.v6, a)
	}
}

func (m addrMap[V]) len() int { return len(m.v4) + len(m.v6) }

func newIndex() index {
	return index{
		pods: map[nsName]*podObj{}, byIP: map[netip.Addr]*podObj{}, wl: map[wlKey]int{},
		services: map[nsName]*svcObj{}, byAddr: map[svcKey]svcRef{}, byNode: map[portKey]svcRef{},
		slices: map[nsName]*sliceObj{}, bySvc: map[nsName][]*sliceObj{},
		backends: newAddrMap[epRef](), more: map[netip.Addr][]epRef{},
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
		return Pod{Namespace: p.Namespace, Name: p.Name, Node: p.node, WorkloadKind: p.workloadKind, Workload: p.workload}, true
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
	_, ok := s.ix.pods[nsName{namespace, name}]
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
	r, ok := s.serviceLocked(ap, proto)
	if !ok {
		return Service{}, false
	}
	return r.v, true
}

func (s *Store) serviceLocked(ap netip.AddrPort, proto uint8) (svcRef, bool) {
	if r, ok := s.ix.byAddr[svcKey{ap.Addr().Unmap(), ap.Port(), proto}]; ok {
		return r, true
	}
	r, ok := s.ix.byNode[portKey{ap.Port(), proto}]
	return r, ok
}

// Backends appends to dst the ready endpoints, with their target port,
// of the Service port a client reached at ap over proto (see Service):
// where the kernel may DNAT the connection. It allocates only to grow dst.
func (s *Store) Backends(ap netip.AddrPort, proto uint8, dst []netip.AddrPort) []netip.AddrPort {
	if s == nil {
		return dst
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.serviceLocked(ap, proto)
	if !ok {
		return dst
	}
	name := r.o.ports[r.port].name
	for _, sl := range s.ix.bySvc[nsName{r.o.Namespace, r.o.Name}] {
		for _, p := range sl.ports {
			if p.name != name || p.proto != proto || p.port == 0 {
				continue
			}
			for i := range sl.eps {
				if ep := &sl.eps[i]; ep.ready {
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
	if r, ok := s.ix.backends.get(addr.Unmap()); ok {
		return r.endpoint(), true
	}
	return Endpoint{}, false
}

// IsEndpoint reports whether addr is listed in an EndpointSlice of the
// Service namespace/service (whatever its conditions).
func (s *Store) IsEndpoint(namespace, service string, addr netip.Addr) bool {
	if s == nil {
		return false
	}
	addr = addr.Unmap()
	s.mu.RLock()
	defer s.mu.RUnlock()
	of := func(r epRef) bool { return r.o.service == service && r.o.Namespace == namespace }
	r, ok := s.ix.backends.get(addr)
	if !ok {
		return false
	}
	if of(r) {
		return true
	}
	for _, r := range s.ix.more[addr] {
		if of(r) {
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
	// An endpoint is its pod, or its address when it names none.
	type id struct {
		pod  string
		addr netip.Addr
	}
	seen := map[id]struct{}{}
	out := make([]ServiceEndpoints, 0, len(s.ix.services))
	for k, sv := range s.ix.services {
		clear(seen)
		for _, sl := range s.ix.bySvc[k] {
			for i := range sl.eps {
				if e := &sl.eps[i]; e.ready {
					if pod := sl.pod(e); pod != "" {
						seen[id{pod: pod}] = struct{}{}
					} else {
						seen[id{addr: e.addr}] = struct{}{}
					}
				}
			}
		}
		if !sv.selector && len(seen) == 0 {
			continue // endpoints managed by hand, or none at all by design
		}
		out = append(out, ServiceEndpoints{Namespace: k.ns, Name: k.name, Ready: len(seen)})
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
func (s *Store) SetPod(p *corev1.Pod) { s.setPod(compactPod(p)) }

func (s *Store) setPod(o *podObj) {
	key := nsName{o.Namespace, o.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix.pods[key] == o {
		return // a resync: the informer delivers the object it holds again
	}
	defer s.gen.Add(1)
	s.deletePodLocked(key)
	if o.gone {
		return
	}
	for _, a := range o.ips {
		s.ix.byIP[a] = o
	}
	s.ix.pods[key] = o
	s.ix.wl[wlKey{o.Namespace, o.workload}]++
}

// DeletePod removes the pod namespace/name.
func (s *Store) DeletePod(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletePodLocked(nsName{namespace, name})
	s.gen.Add(1)
}

func (s *Store) deletePodLocked(key nsName) {
	o := s.ix.pods[key]
	if o == nil {
		return
	}
	for _, a := range o.ips {
		if s.ix.byIP[a] == o { // not taken over by a newer pod
			delete(s.ix.byIP, a)
		}
	}
	k := wlKey{o.Namespace, o.workload}
	if s.ix.wl[k]--; s.ix.wl[k] <= 0 {
		delete(s.ix.wl, k)
	}
	delete(s.ix.pods, key)
}

// SetService adds or replaces a Service.
func (s *Store) SetService(v *corev1.Service) { s.setService(compactService(v)) }

func (s *Store) setService(o *svcObj) {
	key := nsName{o.Namespace, o.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix.services[key] == o {
		return
	}
	defer s.gen.Add(1)
	s.deleteServiceLocked(key)
	if o.externalName {
		return
	}
	for i, p := range o.ports {
		for _, a := range o.addrs {
			s.ix.byAddr[svcKey{a, p.port, p.proto}] = o.ref(i, false)
		}
		if p.nodePort > 0 {
			s.ix.byNode[portKey{p.nodePort, p.proto}] = o.ref(i, true)
		}
	}
	s.ix.services[key] = o
}

// DeleteService removes the Service namespace/name.
func (s *Store) DeleteService(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteServiceLocked(nsName{namespace, name})
	s.gen.Add(1)
}

func (s *Store) deleteServiceLocked(key nsName) {
	o := s.ix.services[key]
	if o == nil {
		return
	}
	for _, p := range o.ports {
		for _, a := range o.addrs {
			k := svcKey{a, p.port, p.proto}
			if r, ok := s.ix.byAddr[k]; ok && r.o == o { // not taken over by another Service
				delete(s.ix.byAddr, k)
			}
		}
		if k := (portKey{p.nodePort, p.proto}); p.nodePort > 0 && s.ix.byNode[k].o == o {
			delete(s.ix.byNode, k)
		}
	}
	delete(s.ix.services, key)
}

// SetEndpointSlice adds or replaces an EndpointSlice. Slices without the
// kubernetes.io/service-name label belong to no Service and are ignored.
func (s *Store) SetEndpointSlice(sl *discoveryv1.EndpointSlice) { s.setSlice(compactSlice(sl)) }

func (s *Store) setSlice(o *sliceObj) {
	key := nsName{o.Namespace, o.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix.slices[key] == o {
		return
	}
	defer s.gen.Add(1)
	s.deleteSliceLocked(key)
	if o.service == "" {
		return
	}
	for i := range o.eps {
		a, r := o.eps[i].addr, epRef{o, int32(i)}
		if _, ok := s.ix.backends.get(a); ok {
			s.ix.more[a] = append(s.ix.more[a], r)
		} else {
			s.ix.backends.set(a, r)
		}
	}
	svc := nsName{o.Namespace, o.service}
	s.ix.bySvc[svc] = append(s.ix.bySvc[svc], o)
	s.ix.slices[key] = o
}

// DeleteEndpointSlice removes the EndpointSlice namespace/name.
func (s *Store) DeleteEndpointSlice(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteSliceLocked(nsName{namespace, name})
	s.gen.Add(1)
}

func (s *Store) deleteSliceLocked(key nsName) {
	o := s.ix.slices[key]
	if o == nil {
		return
	}
	of := func(r epRef) bool { return r.o == o }
	for i := range o.eps {
		a := o.eps[i].addr
		more := slices.DeleteFunc(s.ix.more[a], of)
		if r, _ := s.ix.backends.get(a); of(r) {
			if len(more) > 0 {
				s.ix.backends.set(a, more[0])
				more = slices.Delete(more, 0, 1)
			} else {
				s.ix.backends.delete(a)
			}
		}
		if len(more) == 0 {
			delete(s.ix.more, a)
		} else {
			s.ix.more[a] = more
		}
	}
	svc := nsName{o.Namespace, o.service}
	if rest := slices.DeleteFunc(s.ix.bySvc[svc], func(x *sliceObj) bool { return x == o }); len(rest) > 0 {
		s.ix.bySvc[svc] = rest
	} else {
		delete(s.ix.bySvc, svc)
	}
	delete(s.ix.slices, key)
}
