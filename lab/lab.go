package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// Config configures a lab. The zero value builds the CLI's default lab.
type Config struct {
	// Prefix is prepended to every namespace name. Zero means DefaultPrefix.
	// Tests use a unique short prefix so that labs run in parallel.
	Prefix string
	// StateDir holds per-lab state (the lab process's pid, the original
	// nf_conntrack_max while a scenario lowered it). Zero means
	// /run/layerscope/lab.
	StateDir string
	// Logger receives the lab's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Wiring is how pods are connected to their node: WiringBridge (the
	// zero value) or WiringRouted.
	Wiring Wiring
	// Kubernetes runs a real control plane (etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler) in a namespace of its own on
	// the node network and a real kube-proxy in each node, in place of the
	// lab's own kube-proxy rules; the lab's pods, Service and EndpointSlice
	// are API objects. See the package documentation.
	Kubernetes bool
	// KubeProxyMode is kube-proxy's mode with Kubernetes. Zero means
	// KubeProxyIPTables.
	KubeProxyMode KubeProxyMode
	// K8sBin is the directory of the Kubernetes binaries (etcd,
	// kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy)
	// with Kubernetes. Zero means $LAYERSCOPE_K8S_BIN.
	K8sBin string
	// Kubelets runs, with Kubernetes, a real containerd and kubelet in each
	// node: the kubelets register the nodes and run the lab's pods (their
	// addresses are the lab's), and DaemonSets run on both nodes. Needs
	// containerd, runc and the CNI plugins (.ci/packages.sh).
	Kubelets bool
	// LayerscopeBinary is the static layerscope binary the images of a lab
	// with Kubelets are built from (AgentImage, PauseImage). Zero means
	// $LAYERSCOPE_BINARY, else the running executable.
	LayerscopeBinary string
}

// Wiring is how the lab connects pods to their node.
type Wiring string

// Wirings.
const (
	// WiringBridge puts each pod's host veth on the node's cbr0 bridge,
	// which holds the pods' gateway address (flannel, kubenet).
	WiringBridge Wiring = "bridge"
	// WiringRouted is Calico's: no bridge; the host veth has no address and
	// answers ARP by proxy; the node routes each pod's /32 through it; the
	// pod holds a /32 and reaches everything via 169.254.1.1, an address
	// nobody holds.
	WiringRouted Wiring = "routed"
)

// Wirings lists the pod wirings the lab can build.
var Wirings = []Wiring{WiringBridge, WiringRouted}

// RoutedGateway is the pods' gateway address in the routed wiring.
var RoutedGateway = netip.MustParseAddr("169.254.1.1")

// DefaultStateDir is the state directory used when Config.StateDir is empty.
const DefaultStateDir = "/run/layerscope/lab"

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Prefix == "" {
		out.Prefix = DefaultPrefix
	}
	if out.StateDir == "" {
		out.StateDir = DefaultStateDir
	}
	if out.Wiring == "" {
		out.Wiring = WiringBridge
	}
	if out.Kubernetes && out.KubeProxyMode == "" {
		out.KubeProxyMode = KubeProxyIPTables
	}
	if out.Kubernetes && out.K8sBin == "" {
		out.K8sBin = os.Getenv(K8sBinEnv)
	}
	if out.Kubelets && out.LayerscopeBinary == "" {
		out.LayerscopeBinary = os.Getenv(LayerscopeBinEnv)
		if out.LayerscopeBinary == "" {
			out.LayerscopeBinary, _ = os.Executable()
		}
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	out.Logger = out.Logger.With("component", "lab", "prefix", out.Prefix)
	return out
}

// Lab is a running two-node mini-cluster. A Lab built by New owns its
// namespaces and servers and removes them on Close; a Lab from Open drives
// traffic through a lab built by another process and only releases its
// handles on Close.
//
// The accessor methods may be called from any goroutine. Traffic scenarios
// that change the lab (dead-backend, mtu) are serialized by the Lab.
type Lab struct {
	cfg   Config
	log   *slog.Logger
	nodes []Node
	pods  []Pod
	owner bool

	ns      map[string]*nsenter.NS // by member name (node-1, pod-a, …)
	created []string               // namespace names this Lab created

	servers *servers
	pki     *pki
	control net.Listener // owner only: stop/start requests of attached processes

	kube *kubeCluster // with Config.Kubernetes, owner only

	// masqueradeAll is set when br_netfilter is missing (see buildNode).
	masqueradeAll bool

	scenarioMu sync.Mutex // one changing scenario at a time
	mu         sync.Mutex
	closed     bool
}

// New builds a lab: six namespaces, their links, routes, VXLAN, kube-proxy
// rules and servers; with Config.Kubernetes also the control plane's
// namespace, the control plane and a kube-proxy per node. On error everything made so far is removed. The lab
// runs until Close; ctx only bounds the build.
func New(ctx context.Context, cfg *Config) (l *Lab, err error) {
	c := cfg.withDefaults()
	if err := checkPrefix(c.Prefix); err != nil {
		return nil, err
	}
	if !slices.Contains(Wirings, c.Wiring) {
		return nil, fmt.Errorf("%w %q: want one of %v", ErrBadWiring, c.Wiring, Wirings)
	}
	if err := c.checkKubernetes(); err != nil {
		return nil, err
	}
	if err := c.checkKubelets(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	nodes, pods := topology(c.Prefix)
	for _, name := range append(NamespaceNames(c.Prefix), ControlPlaneNetNS(c.Prefix)) {
		if _, err := os.Stat(nsenter.Path(name)); err == nil {
			return nil, fmt.Errorf("%w: %s (run `layerscope lab down --prefix %s`)", ErrExists, name, c.Prefix)
		}
	}
	l = &Lab{cfg: c, log: c.Logger, nodes: nodes, pods: pods, owner: true, ns: map[string]*nsenter.NS{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	start := time.Now()
	if err := l.build(ctx); err != nil {
		return l, err
	}
	l.log.Info("lab up", "duration_seconds", time.Since(start).Seconds())
	return l, nil
}

// Open attaches to a lab built by another process (for example
// `layerscope lab up`). Scenarios that start or stop servers fail with
// ErrNotOwner.
func Open(cfg *Config) (*Lab, error) {
	c := cfg.withDefaults()
	if err := checkPrefix(c.Prefix); err != nil {
		return nil, err
	}
	nodes, pods := topology(c.Prefix)
	l := &Lab{cfg: c, log: c.Logger, nodes: nodes, pods: pods, ns: map[string]*nsenter.NS{}}
	for _, m := range l.members() {
		ns, err := nsenter.Open(m.netns)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		l.ns[m.name] = ns
	}
	// The wiring is what the builder made: a bridge on the nodes or not.
	l.cfg.Wiring = WiringRouted
	if h, err := l.handle(Node1); err == nil {
		if _, err := h.LinkByName(BridgeName); err == nil {
			l.cfg.Wiring = WiringBridge
		}
		h.Close()
	}
	pki, err := loadPKI(l.stateDir())
	if err != nil {
		l.log.Debug("no lab certificates; TLS clients will not verify", "err", err)
	}
	l.pki = pki
	return l, nil
}

type member struct{ name, netns string }

func (l *Lab) members() []member {
	var out []member
	for _, n := range l.nodes {
		out = append(out, member{n.Name, n.NetNS})
	}
	for _, p := range l.pods {
		out = append(out, member{p.Name, p.NetNS})
	}
	return out
}

// Wiring returns how the lab's pods are connected to their nodes.
func (l *Lab) Wiring() Wiring { return l.cfg.Wiring }

// Prefix returns the lab's namespace name prefix.
func (l *Lab) Prefix() string { return l.cfg.Prefix }

// Nodes returns the two nodes.
func (l *Lab) Nodes() []Node { return append([]Node(nil), l.nodes...) }

// Pods returns the pods, the DNS server pod last.
func (l *Lab) Pods() []Pod { return append([]Pod(nil), l.pods...) }

// Node returns the node with the given name ("node-1", "node-2").
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Pod returns the pod with the given name ("pod-a", …, "dns").
func (l *Lab) Pod(name string) (Pod, bool) {
	for _, p := range l.pods {
		if p.Name == name {
			return p, true
		}
	}
	return Pod{}, false
}

// Backends returns the Service's endpoints in kube-proxy's order.
func (l *Lab) Backends() []Pod {
	var out []Pod
	for _, p := range l.pods {
		if p.Backend {
			out = append(out, p)
		}
	}
	return out
}

// NetNS returns the namespace name of a node or pod, or "" if unknown.
func (l *Lab) NetNS(member string) string {
	for _, m := range l.members() {
		if m.name == member {
			return m.netns
		}
	}
	if member == ControlPlane && l.cfg.Kubernetes {
		return ControlPlaneNetNS(l.cfg.Prefix)
	}
	return ""
}

// Namespace returns the open namespace of a node or pod. It stays valid
// until Close.
func (l *Lab) Namespace(member string) (*nsenter.NS, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	ns, ok := l.ns[member]
	if !ok {
		return nil, fmt.Errorf("%w: no member %q", ErrNotFound, member)
	}
	return ns, nil
}

// podByIP returns the name of the pod or node holding ip, or "".
func (l *Lab) nameOf(ip netip.Addr) string {
	for _, p := range l.pods {
		if p.IP == ip {
			return p.Name
		}
	}
	for _, n := range l.nodes {
		if n.IP == ip || n.BridgeIP == ip || n.VTEPIP == ip {
			return n.Name
		}
	}
	return ""
}

func (l *Lab) stateDir() string { return filepath.Join(l.cfg.StateDir, l.cfg.Prefix) }

// Close stops the servers and, for a lab built by New, deletes every
// namespace it created (which removes their links, routes and iptables
// rules) and restores any sysctl a scenario changed. It is safe to call more
// than once and after a partial New.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	var errs []error
	if l.control != nil {
		errs = append(errs, l.control.Close())
	}
	if l.kube != nil {
		errs = append(errs, l.kube.stop())
	}
	if l.servers != nil {
		errs = append(errs, l.servers.close())
	}
	for name, ns := range l.ns {
		errs = append(errs, ns.Close())
		delete(l.ns, name)
	}
	if !l.owner {
		return errors.Join(errs...)
	}
	errs = append(errs, restoreConntrackMax(l.cfg.StateDir, l.cfg.Prefix))
	for _, name := range l.created {
		errs = append(errs, deleteNamedNS(name))
	}
	l.created = nil
	if err := os.RemoveAll(l.stateDir()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %s: %w", l.cfg.Prefix, err)
	}
	l.log.Info("lab down")
	return nil
}

// createNamedNS creates a named namespace under /run/netns without moving
// the calling thread: the work runs on a locked thread that returns to its
// own namespace afterwards (or is discarded by the runtime if it cannot).
func createNamedNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if serr := netns.Set(orig); serr != nil {
			errc <- errors.Join(err, serr) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// deleteNamedNS unmounts and removes a named namespace. A missing one is
// not an error.
func deleteNamedNS(name string) error {
	p := nsenter.Path(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// writeSysctl writes a per-namespace sysctl from inside ns. /proc/sys/net
// resolves against the calling thread's namespace.
func writeSysctl(ns *nsenter.NS, key, value string) error {
	return ns.Do(func() error {
		p := "/proc/sys/" + filepathFromKey(key)
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns.Name(), err)
		}
		return nil
	})
}

func filepathFromKey(key string) string {
	b := []byte(key)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// handle opens a netlink handle inside a member's namespace.
func (l *Lab) handle(member string) (*netlink.Handle, error) {
	ns := l.ns[member]
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns.Name(), err)
	}
	return h, nil
}
