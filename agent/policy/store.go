package policy

import (
	"errors"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var (
	errEmptyPeer = errors.New("peer has no ipBlock, podSelector or namespaceSelector")
	errBadPort   = errors.New("port out of range")
)

// Ref names a namespaced object.
type Ref struct{ Namespace, Name string }

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// NamedPort is a named container port.
type NamedPort struct {
	Name     string
	Port     uint16
	Protocol corev1.Protocol
}

// Stats counts what the store holds and what it left out.
type Stats struct {
	Policies, Namespaces, Pods int
	// Invalid counts policies left out because a selector, CIDR or port
	// does not parse (the API server rejects them; a file may hold one).
	Invalid int
}

// Store holds the policies, namespaces and pods an evaluation needs. The
// zero value is not usable: create it with NewStore.
type Store struct {
	mu         sync.RWMutex
	policies   map[string]*nsPolicies
	invalid    map[Ref]error
	namespaces map[string]labels.Set
	pods       map[Ref]*Pod
	byIP       map[netip.Addr]*Pod
	synced     atomic.Bool
}

// NewStore returns an empty store, not synced.
func NewStore() *Store {
	return &Store{
		policies:   map[string]*nsPolicies{},
		invalid:    map[Ref]error{},
		namespaces: map[string]labels.Set{},
		pods:       map[Ref]*Pod{},
		byIP:       map[netip.Addr]*Pod{},
	}
}

// Synced reports whether the store holds a complete copy of its source.
func (s *Store) Synced() bool { return s != nil && s.synced.Load() }

// MarkSynced declares the store's content complete, for callers that fill
// it themselves.
func (s *Store) MarkSynced() { s.synced.Store(true) }

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Namespaces: len(s.namespaces), Pods: len(s.pods), Invalid: len(s.invalid)}
	for _, m := range s.policies {
		st.Policies += len(m.sorted)
	}
	return st
}

// SetPolicy adds or replaces a policy. A policy that does not compile is
// removed, counted in Stats.Invalid, and its error returned.
func (s *Store) SetPolicy(np *networkingv1.NetworkPolicy) error {
	c, err := compile(np)
	ref := Ref{np.Namespace, np.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.deletePolicyLocked(ref)
		s.invalid[ref] = err
		return err
	}
	delete(s.invalid, ref)
	m := s.policies[np.Namespace]
	if m == nil {
		m = &nsPolicies{byName: map[string]*compiled{}}
		s.policies[np.Namespace] = m
	}
	m.byName[np.Name] = c
	m.sort()
	return nil
}

// DeletePolicy removes a policy.
func (s *Store) DeletePolicy(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := Ref{namespace, name}
	s.deletePolicyLocked(ref)
	delete(s.invalid, ref)
}

func (s *Store) deletePolicyLocked(ref Ref) {
	if m := s.policies[ref.Namespace]; m != nil && m.byName[ref.Name] != nil {
		delete(m.byName, ref.Name)
		if len(m.byName) == 0 {
			delete(s.policies, ref.Namespace)
		} else {
			m.sort()
		}
	}
}

// SetNamespace adds or replaces a namespace's labels. The label
// kubernetes.io/metadata.name, which the API server sets on every
// namespace, is added when missing.
func (s *Store) SetNamespace(ns *corev1.Namespace) {
	l := make(labels.Set, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		l[k] = v
	}
	if _, ok := l[corev1.LabelMetadataName]; !ok {
		l[corev1.LabelMetadataName] = ns.Name
	}
	s.mu.Lock()
	s.namespaces[ns.Name] = l
	s.mu.Unlock()
}

// DeleteNamespace removes a namespace.
func (s *Store) DeleteNamespace(name string) {
	s.mu.Lock()
	delete(s.namespaces, name)
	s.mu.Unlock()
}

// SetPod adds or replaces a pod, found afterwards by each of its IPs.
func (s *Store) SetPod(p *corev1.Pod) { s.setPod(compactPod(p)) }

func (s *Store) setPod(p *Pod) {
	ref := Ref{p.Namespace, p.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletePodLocked(ref)
	s.pods[ref] = p
	for _, a := range p.IPs() {
		s.byIP[a] = p
	}
}

// DeletePod removes a pod.
func (s *Store) DeletePod(namespace, name string) {
	s.mu.Lock()
	s.deletePodLocked(Ref{namespace, name})
	s.mu.Unlock()
}

func (s *Store) deletePodLocked(ref Ref) {
	old := s.pods[ref]
	if old == nil {
		return
	}
	delete(s.pods, ref)
	for _, a := range old.IPs() {
		if s.byIP[a] == old {
			delete(s.byIP, a)
		}
	}
}

// PodByIP returns the pod holding addr, if the store knows it.
func (s *Store) PodByIP(addr netip.Addr) (Pod, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.byIP[addr.Unmap()]
	if p == nil {
		return Pod{}, false
	}
	return *p, true
}

// nsPolicies are the policies of a namespace, by name and in name order
// (so that evaluation walks a slice and explanations are stable).
type nsPolicies struct {
	byName map[string]*compiled
	sorted []*compiled
}

func (m *nsPolicies) sort() {
	m.sorted = m.sorted[:0]
	for _, c := range m.byName {
		m.sorted = append(m.sorted, c)
	}
	sort.Slice(m.sorted, func(i, j int) bool { return m.sorted[i].ref.Name < m.sorted[j].ref.Name })
}

// inNamespace returns the policies of a namespace in name order.
func (s *Store) inNamespace(ns string) []*compiled {
	if m := s.policies[ns]; m != nil {
		return m.sorted
	}
	return nil
}
