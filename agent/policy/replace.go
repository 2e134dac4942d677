package policy

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Replace makes the store hold exactly the NetworkPolicies, Namespaces and
// Pods of objs (other objects are ignored), as a metadata file gives them,
// and marks it synced. It returns the error of each policy left out (see
// SetPolicy).
func (s *Store) Replace(objs []runtime.Object) map[Ref]error {
	keepPol, keepNS, keepPod := map[Ref]bool{}, map[string]bool{}, map[Ref]bool{}
	var bad map[Ref]error
	for _, o := range objs {
		switch v := o.(type) {
		case *networkingv1.NetworkPolicy:
			keepPol[Ref{v.Namespace, v.Name}] = true
			if err := s.SetPolicy(v); err != nil {
				if bad == nil {
					bad = map[Ref]error{}
				}
				bad[Ref{v.Namespace, v.Name}] = err
			}
		case *corev1.Namespace:
			keepNS[v.Name] = true
			s.SetNamespace(v)
		case *corev1.Pod:
			keepPod[Ref{v.Namespace, v.Name}] = true
			s.SetPod(v)
		}
	}
	s.mu.Lock()
	for ns, m := range s.policies {
		for name := range m.byName {
			if ref := (Ref{ns, name}); !keepPol[ref] {
				s.deletePolicyLocked(ref)
			}
		}
	}
	for ref := range s.invalid {
		if !keepPol[ref] {
			delete(s.invalid, ref)
		}
	}
	for ns := range s.namespaces {
		if !keepNS[ns] {
			delete(s.namespaces, ns)
		}
	}
	for ref := range s.pods {
		if !keepPod[ref] {
			s.deletePodLocked(ref)
		}
	}
	s.mu.Unlock()
	s.MarkSynced()
	return bad
}
