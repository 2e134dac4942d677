package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/layerscope/layerscope/internal/informer"
)

// Pod is what the store keeps of a pod, and what the pod informer caches
// (its transform makes one of each pod the API sends): enough to select
// it and to resolve its named ports. It is compact because the store
// holds every pod of the cluster: the namespace, labels and named ports,
// which the replicas of a workload share, are held once for all of them
// (interned with package unique), and the addresses sit in the struct.
// A Pod is immutable once made.
type Pod struct {
	informer.Meta // Namespace (interned), Name, ResourceVersion
	shape         unique.Handle[podShape]
	ips           [2]netip.Addr // Kubernetes gives a pod at most one per family
	nIPs          uint8
	HostNetwork   bool
}

// podShape is the part of a pod its workload's replicas share.
type podShape struct {
	namespace string
	labels    Labels
	ports     string // named ports: name NUL port NUL protocol NUL, …
}

// Labels is a pod's label set, its pairs sorted by key as key NUL value
// NUL. It implements k8s.io/apimachinery's labels.Labels, which selectors
// match. (NUL appears in neither: the API server validates label keys
// and values.)
type Labels string

// Has reports whether the set holds key.
func (l Labels) Has(key string) bool {
	_, ok := l.Lookup(key)
	return ok
}

// Get returns key's value, empty when the set does not hold key.
func (l Labels) Get(key string) string {
	v, _ := l.Lookup(key)
	return v
}

// Lookup returns key's value and whether the set holds key.
func (l Labels) Lookup(key string) (string, bool) {
	s := string(l)
	for s != "" {
		k, rest, _ := strings.Cut(s, "\x00")
		v, rest, _ := strings.Cut(rest, "\x00")
		if k == key {
			return v, true
		}
		s = rest
	}
	return "", false
}

func makeLabels(m map[string]string) Labels {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return Labels(b.String())
}

// Labels returns the pod's labels.
func (p *Pod) Labels() Labels { return p.shape.Value().labels }

// IPs returns the pod's addresses: none when it uses the host's network
// or has finished.
func (p *Pod) IPs() []netip.Addr { return p.ips[:p.nIPs] }

// namedPort reports whether the pod has a container port named name for
// protocol proto, and its number.
func (p *Pod) namedPort(name string, proto corev1.Protocol) (uint16, bool) {
	s := p.shape.Value().ports
	for s != "" {
		n, rest, _ := strings.Cut(s, "\x00")
		port, rest, _ := strings.Cut(rest, "\x00")
		pr, rest, _ := strings.Cut(rest, "\x00")
		if n == name && corev1.Protocol(pr) == proto {
			v, err := strconv.ParseUint(port, 10, 16)
			return uint16(v), err == nil
		}
		s = rest
	}
	return 0, false
}

// NamedPorts returns the pod's named container ports.
func (p *Pod) NamedPorts() []NamedPort {
	var out []NamedPort
	s := p.shape.Value().ports
	for s != "" {
		n, rest, _ := strings.Cut(s, "\x00")
		port, rest, _ := strings.Cut(rest, "\x00")
		pr, rest, _ := strings.Cut(rest, "\x00")
		v, _ := strconv.ParseUint(port, 10, 16)
		out = append(out, NamedPort{Name: n, Port: uint16(v), Protocol: corev1.Protocol(pr)})
		s = rest
	}
	return out
}

func (p *Pod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (p *Pod) DeepCopyObject() runtime.Object {
	c := *p
	return &c
}

// compactPod keeps of a pod what evaluation uses. A pod that has finished
// (Succeeded, Failed) holds no address. Ports with a number out of range
// are left out (the API server rejects them; a file may hold one).
func compactPod(p *corev1.Pod) *Pod {
	var ports strings.Builder
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" || cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				continue
			}
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports.WriteString(cp.Name)
			ports.WriteByte(0)
			ports.WriteString(strconv.Itoa(int(cp.ContainerPort)))
			ports.WriteByte(0)
			ports.WriteString(string(proto))
			ports.WriteByte(0)
		}
	}
	shape := unique.Make(podShape{namespace: p.Namespace, labels: makeLabels(p.Labels), ports: ports.String()})
	out := &Pod{Meta: informer.KeepMeta(&p.ObjectMeta), shape: shape, HostNetwork: p.Spec.HostNetwork}
	out.Namespace = shape.Value().namespace // the interned copy
	if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		add := func(ip string) {
			a, err := netip.ParseAddr(ip)
			if err != nil || int(out.nIPs) == len(out.ips) {
				return
			}
			if a = a.Unmap(); !slices.Contains(out.IPs(), a) {
				out.ips[out.nIPs] = a
				out.nIPs++
			}
		}
		for _, ip := range p.Status.PodIPs {
			add(ip.IP)
		}
		if out.nIPs == 0 {
			add(p.Status.PodIP)
		}
	}
	return out
}

// compactPodObj is the pod informer's transform.
func compactPodObj(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		return compactPod(p), nil
	}
	return o, nil // already compact (a relist's objects pass twice), or a tombstone
}
