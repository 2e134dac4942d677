package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// KubeProxyMode is the proxy mode of the real kube-proxy a Kubernetes lab
// runs on each node.
type KubeProxyMode string

// kube-proxy modes the lab runs (IPVS is missing from these kernels).
const (
	KubeProxyIPTables KubeProxyMode = "iptables"
	KubeProxyNFTables KubeProxyMode = "nftables"
)

// KubeProxyModes lists the kube-proxy modes a Kubernetes lab can run.
var KubeProxyModes = []KubeProxyMode{KubeProxyIPTables, KubeProxyNFTables}

// Parameters of a Kubernetes lab's control plane.
const (
	// ControlPlane is the member name of the control plane's namespace.
	ControlPlane = "control-plane"
	// ControlPlaneLink is the control plane's link in node-1's namespace.
	ControlPlaneLink = "cp0"
	// APIServerPort is the API server's secure port on ControlPlaneIP.
	APIServerPort = 6443
	// K8sBinEnv names the environment variable holding the directory of the
	// Kubernetes binaries (.ci/kubernetes.sh prints it).
	K8sBinEnv = "LAYERSCOPE_K8S_BIN"
	// KubeProxyHealthzPort is kube-proxy's healthz port on 127.0.0.1 of
	// each node namespace.
	KubeProxyHealthzPort = 10256
)

// Addresses of a Kubernetes lab's control plane.
var (
	ControlPlaneCIDR    = netip.MustParsePrefix("10.0.1.0/24")
	ControlPlaneIP      = netip.MustParseAddr("10.0.1.10") // eth0 in the control plane namespace
	ControlPlaneGateway = netip.MustParseAddr("10.0.1.1")  // node-1's cp0
	ServiceCIDR         = netip.MustParsePrefix("10.96.0.0/16")
	KubernetesServiceIP = netip.MustParseAddr("10.96.0.1")
)

// ControlPlaneNetNS is the name of the control plane's namespace of a
// Kubernetes lab with the given prefix.
func ControlPlaneNetNS(prefix string) string { return prefix + ControlPlane }

// kubeBinaries are the programs a Kubernetes lab runs from Config.K8sBin.
var kubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

// kubeCluster is the real control plane and kube-proxies of a Kubernetes
// lab. Its processes are children of the lab's process (killed with it if
// it dies) and write their logs to the Kubernetes state directory. The
// EndpointSlice edits are serialized by mu.
type kubeCluster struct {
	lab    *Lab
	log    *slog.Logger
	bin    string
	dir    string
	mode   KubeProxyMode
	pki    *kubePKI
	client kubernetes.Interface
	relay  net.Listener // 127.0.0.1 of the lab process → API server

	mu       sync.Mutex // EndpointSlice edits
	procMu   sync.Mutex
	procs    []*kubeProc // in start order
	stopping bool
	// cleanups run after the processes stopped, last first (the kubelets'
	// cgroups and mount namespaces).
	cleanups []func() error
	// apiserverArgv is the command of the API server StopAPIServer stopped.
	apiserverArgv []string
}

// kubeProc is one running component.
type kubeProc struct {
	argv []string
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (c *Config) checkKubernetes() error {
	if !c.Kubernetes {
		return nil
	}
	if !slices.Contains(KubeProxyModes, c.KubeProxyMode) {
		return fmt.Errorf("%w %q: want one of %v", ErrBadKubeProxyMode, c.KubeProxyMode, KubeProxyModes)
	}
	if c.K8sBin == "" {
		return fmt.Errorf("%w: set Config.K8sBin or %s (.ci/kubernetes.sh --env)", ErrNoK8sBin, K8sBinEnv)
	}
	for _, b := range kubeBinaries {
		if _, err := os.Stat(filepath.Join(c.K8sBin, b)); err != nil {
			return fmt.Errorf("%w: %w", ErrNoK8sBin, err)
		}
	}
	return nil
}

// buildControlPlaneNet makes the control plane's namespace and links it to
// node-1: eth0 ControlPlaneIP/24 there, cp0 ControlPlaneGateway/24 in
// node-1 (MTU 1450), which forwards between it and the node network; node-2 routes
// ControlPlaneCIDR via node-1. The namespace has no default route: nothing
// in it can reach an address outside the lab.
func (l *Lab) buildControlPlaneNet(handles map[string]*netlink.Handle) error {
	name := ControlPlaneNetNS(l.cfg.Prefix)
	if err := createNamedNS(name); err != nil {
		return err
	}
	l.created = append(l.created, name)
	ns, err := nsenter.Open(name)
	if err != nil {
		return err
	}
	l.ns[ControlPlane] = ns
	h, err := l.handle(ControlPlane)
	if err != nil {
		return err
	}
	defer h.Close()
	for key, val := range map[string]string{
		"net.ipv4.conf.all.rp_filter":     "0",
		"net.ipv4.conf.default.rp_filter": "0",
	} {
		if err := writeSysctl(ns, key, val); err != nil {
			return err
		}
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo in %s: %w", name, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up in %s: %w", name, err)
	}
	n1, n2 := l.nodes[0], l.nodes[1]
	nodeH := handles[n1.Name]
	// The link has the pods' MTU: to an agent on node-1 it is a veth whose
	// peer is in another namespace, like a pod's.
	if err := nodeH.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ControlPlaneLink, MTU: PodMTU},
		PeerName:      NodeIface,
		PeerMTU:       PodMTU,
		PeerNamespace: netlink.NsFd(ns.Fd()),
	}); err != nil {
		return fmt.Errorf("control plane veth: %w", err)
	}
	cp0, err := nodeH.LinkByName(ControlPlaneLink)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ControlPlaneLink, n1.NetNS, err)
	}
	if err := nodeH.AddrAdd(cp0, &netlink.Addr{IPNet: ipNet(ControlPlaneGateway, ControlPlaneCIDR.Bits())}); err != nil {
		return fmt.Errorf("address on %s: %w", ControlPlaneLink, err)
	}
	if err := nodeH.LinkSetUp(cp0); err != nil {
		return fmt.Errorf("%s up: %w", ControlPlaneLink, err)
	}
	eth, err := h.LinkByName(NodeIface)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", NodeIface, name, err)
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(ControlPlaneIP, ControlPlaneCIDR.Bits())}); err != nil {
		return fmt.Errorf("address in %s: %w", name, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("%s up in %s: %w", NodeIface, name, err)
	}
	for _, dst := range []netip.Prefix{NodeCIDR, ClusterCIDR} {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: prefixNet(dst), Gw: ControlPlaneGateway.AsSlice()}); err != nil {
			return fmt.Errorf("route to %s in %s: %w", dst, name, err)
		}
	}
	n2H := handles[n2.Name]
	eth2, err := n2H.LinkByName(NodeIface)
	if err != nil {
		return err
	}
	if err := n2H.RouteAdd(&netlink.Route{LinkIndex: eth2.Attrs().Index, Dst: prefixNet(ControlPlaneCIDR), Gw: n1.IP.AsSlice()}); err != nil {
		return fmt.Errorf("route to the control plane in %s: %w", n2.NetNS, err)
	}
	return nil
}

// startKubernetes starts etcd, the API server, controller-manager and
// scheduler in the control plane namespace, registers the lab as API
// objects (Nodes, Pods, the Service and its EndpointSlice) and starts a
// kube-proxy in each node namespace, then waits until both DNAT the
// Service to its three backends.
func (l *Lab) startKubernetes(ctx context.Context) error {
	start := time.Now()
	dir := filepath.Join(l.stateDir(), "kubernetes")
	k := &kubeCluster{lab: l, log: l.log, bin: l.cfg.K8sBin, dir: dir, mode: l.cfg.KubeProxyMode}
	l.kube = k
	pki, err := newKubePKI(filepath.Join(dir, "pki"), net.IP(ControlPlaneIP.AsSlice()))
	if err != nil {
		return err
	}
	k.pki = pki
	rc := pki.restConfig()
	cpNS := l.ns[ControlPlane]
	rc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, cpNS, network, addr)
	}
	rc.Timeout = 10 * time.Second
	if k.client, err = kubernetes.NewForConfig(rc); err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if err := k.startRelay(cpNS); err != nil {
		return err
	}
	cp := ControlPlaneNetNS(l.cfg.Prefix)
	p := func(name string) string { return filepath.Join(pki.dir, name) }
	if err := k.start("etcd", cp, "etcd",
		"--name=lab", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=lab=http://127.0.0.1:2380", "--listen-metrics-urls=http://127.0.0.1:2381",
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := k.start("kube-apiserver", cp, "kube-apiserver",
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address="+ControlPlaneIP.String(), "--advertise-address="+ControlPlaneIP.String(),
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"), "--client-ca-file="+p("ca.crt"),
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+ServiceCIDR.String(), "--service-node-port-range=30000-32767",
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		// Its client certificate at the kubelets (kubectl logs, exec),
		// which it reaches at their nodes' lab addresses (never by name:
		// no resolver is reachable from its namespace).
		"--kubelet-client-certificate="+p("kubelet-client.crt"), "--kubelet-client-key="+p("kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true", "--profiling=false", "--v=1"); err != nil {
		return err
	}
	if err := k.waitAPI(ctx); err != nil {
		return err
	}
	apiUp := time.Since(start)
	if err := k.start("kube-controller-manager", cp, "kube-controller-manager",
		"--kubeconfig="+pki.kubeconfigPath("kube-controller-manager"),
		"--authentication-kubeconfig="+pki.kubeconfigPath("kube-controller-manager"),
		"--authorization-kubeconfig="+pki.kubeconfigPath("kube-controller-manager"),
		"--bind-address=127.0.0.1", "--secure-port=10257", "--leader-elect=false",
		// Each controller acts as its own service account, with the
		// permissions of its bootstrap role.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p("sa.key"), "--root-ca-file="+p("ca.crt"),
		"--cluster-cidr="+ClusterCIDR.String(), "--service-cluster-ip-range="+ServiceCIDR.String(),
		// No kubelet posts node status in this lab: the node lifecycle
		// controller would mark the nodes unreachable and evict the pods.
		"--controllers=*,-node-lifecycle-controller", "--profiling=false", "--v=1"); err != nil {
		return err
	}
	if err := k.start("kube-scheduler", cp, "kube-scheduler",
		"--kubeconfig="+pki.kubeconfigPath("kube-scheduler"),
		"--authentication-kubeconfig="+pki.kubeconfigPath("kube-scheduler"),
		"--authorization-kubeconfig="+pki.kubeconfigPath("kube-scheduler"),
		"--bind-address=127.0.0.1", "--secure-port=10259", "--leader-elect=false", "--profiling=false", "--v=1"); err != nil {
		return err
	}
	if l.cfg.Kubelets {
		if err := k.startKubelets(ctx); err != nil {
			return err
		}
	}
	if err := k.register(ctx); err != nil {
		return err
	}
	for _, n := range l.nodes {
		cfg, err := k.writeKubeProxyConfig(n)
		if err != nil {
			return err
		}
		if err := k.start("kube-proxy-"+n.Name, n.NetNS, "kube-proxy", "--config="+cfg, "--v=1"); err != nil {
			return err
		}
	}
	names := make([]string, 0, 3)
	for _, b := range l.Backends() {
		names = append(names, b.Name)
	}
	if err := l.WaitKubeProxy(ctx, names...); err != nil {
		return err
	}
	k.log.Info("kubernetes up", "kube_proxy_mode", k.mode, "api_ready_seconds", apiUp.Seconds(),
		"duration_seconds", time.Since(start).Seconds(), "kubeconfig", pki.kubeconfigPath("admin"))
	return nil
}

// startRelay listens on a free port of 127.0.0.1 in the lab process's own
// namespace and relays each connection, TLS untouched, to the API server,
// dialed from the control plane's namespace. The admin's kubeconfig names
// it, so that kubectl and agents on the host reach the API server without
// a route to the lab's addresses (which would be the default route, out of
// the machine).
func (k *kubeCluster) startRelay(cpNS *nsenter.NS) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("api server relay: %w", err)
	}
	k.relay = ln
	api := net.JoinHostPort(ControlPlaneIP.String(), fmt.Sprint(APIServerPort))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				up, err := dialIn(ctx, cpNS, "tcp4", api)
				cancel()
				if err != nil {
					k.log.Debug("api server relay", "err", err)
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(up, c)
					_ = up.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(c, up)
				_ = c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return k.pki.writeAdminKubeconfig("https://" + ln.Addr().String())
}

// dialIn opens a connection from inside a namespace; the socket stays in
// it.
func dialIn(ctx context.Context, ns *nsenter.NS, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// start runs a component in a namespace with nsenter (which execs it, so
// the pid is the component's); bin is a path or a name in k.bin. The component dies with the lab's process.
func (k *kubeCluster) start(name, netns, bin string, args ...string) error {
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(k.bin, bin)
	}
	return k.run(name, append([]string{"nsenter", "--net=" + nsenter.Path(netns), "--", bin}, args...))
}

// run starts argv as a component named name.
func (k *kubeCluster) run(name string, argv []string) error {
	k.procMu.Lock()
	defer k.procMu.Unlock()
	if k.stopping {
		return ErrClosed
	}
	logPath := filepath.Join(k.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = k.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &kubeProc{argv: argv, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	k.procs = append(k.procs, p)
	k.log.Debug("started", "process", name, "pid", cmd.Process.Pid, "log", logPath)
	return nil
}

// exited returns an error naming the first component that has exited, with
// the end of its log.
func (k *kubeCluster) exited() error {
	k.procMu.Lock()
	defer k.procMu.Unlock()
	for _, p := range k.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s (%v): %s", ErrKubeComponent, p.name, p.err, logTail(p.log, 5))
		default:
		}
	}
	return nil
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// poll calls check every 100 ms until it returns nil, a component exits or
// ctx ends.
func (k *kubeCluster) poll(ctx context.Context, what string, check func() error) error {
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if err := k.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (k *kubeCluster) waitAPI(ctx context.Context) error {
	return k.poll(ctx, "the API server", func() error {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := k.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(c)
		return err
	})
}

// stop terminates the components in reverse start order: SIGTERM, then
// SIGKILL after 5 s.
func (k *kubeCluster) stop() error {
	k.procMu.Lock()
	k.stopping = true
	procs := slices.Clone(k.procs)
	k.procMu.Unlock()
	var errs []error
	if k.relay != nil {
		_ = k.relay.Close()
	}
	for _, p := range slices.Backward(procs) {
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			k.log.Warn("component did not stop on SIGTERM; killing it", "process", p.name)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, c := range slices.Backward(k.cleanups) {
		errs = append(errs, c())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.log.Info("kubernetes down")
	return nil
}

// register creates the lab's objects: both Nodes (Ready, with their IPs
// and pod CIDRs: there is no kubelet to register them), the pods (bound to
// their nodes, Running and Ready with their IPs) and the Service, whose
// EndpointSlice the controller-manager's endpointslice controller makes
// from the pods its selector matches.
func (k *kubeCluster) register(ctx context.Context) error {
	c := k.client
	for _, n := range k.lab.nodes {
		if k.lab.cfg.Kubelets {
			break // the kubelets registered them
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
				"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux",
			}},
			Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String()}},
		}
		created, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("register node %s: %w", n.Name, err)
		}
		now := metav1.Now()
		created.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP.String()}, {Type: corev1.NodeHostName, Address: n.Name}},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "LabNode",
				Message: "network namespace node of the layerscope lab", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
		}
		if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("status of node %s: %w", n.Name, err)
		}
	}
	// Pods need their namespace's default ServiceAccount, which the
	// controller-manager may not have made yet.
	for _, ns := range []string{Namespace, SystemNamespace} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("service account %s/default: %w", ns, err)
		}
	}
	for _, p := range k.lab.pods {
		if err := k.createPod(ctx, p.Name); err != nil {
			return err
		}
	}
	for _, o := range metadataObjects(k.lab.nodes, k.lab.pods) {
		if svc, ok := o.(*corev1.Service); ok {
			if _, err := c.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create service %s: %w", svc.Name, err)
			}
		}
	}
	return nil
}

// createPod creates a lab pod's Pod object, bound to its node, and sets its
// status Running and Ready with its IP.
func (k *kubeCluster) createPod(ctx context.Context, name string) error {
	for _, o := range metadataObjects(k.lab.nodes, k.lab.pods) {
		pod, ok := o.(*corev1.Pod)
		if !ok || pod.Name != name {
			continue
		}
		// No ReplicaSet exists: owner references would let the garbage
		// collector delete the pod.
		pod.OwnerReferences = nil
		no := false
		pod.Spec.AutomountServiceAccountToken = &no
		status := pod.Status
		if k.lab.cfg.Kubelets {
			// The node's kubelet runs it (a container that only waits) and
			// reports its status, with the address the lab gave it.
			zero := int64(1)
			pod.Spec.TerminationGracePeriodSeconds = &zero
			for i := range pod.Spec.Containers {
				pod.Spec.Containers[i].Image = PauseImage
				pod.Spec.Containers[i].ImagePullPolicy = corev1.PullNever
			}
		}
		created, err := k.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create pod %s: %w", name, err)
		}
		if k.lab.cfg.Kubelets {
			return nil
		}
		now := metav1.Now()
		started := true
		created.Status = status
		created.Status.StartTime = &now
		created.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		for _, ctr := range pod.Spec.Containers {
			created.Status.ContainerStatuses = append(created.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image, Ready: true, Started: &started,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		if _, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("status of pod %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("%w: no pod %q", ErrNotFound, name)
}

// writeKubeProxyConfig writes the KubeProxyConfiguration of a node:
// conntrack.maxPerCore 0 so that kube-proxy never writes the machine-wide
// nf_conntrack_max, NodePorts on the node network only, health and metrics
// on the node's loopback.
func (k *kubeCluster) writeKubeProxyConfig(n Node) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: %s
clusterCIDR: %s
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [%q]
masqueradeAll: %t
conntrack:
  maxPerCore: 0
  min: 0
`, k.pki.kubeconfigPath("kube-proxy"), n.Name, k.mode, ClusterCIDR, KubeProxyHealthzPort, NodeCIDR.String(), k.lab.masqueradeAll)
	path := filepath.Join(k.dir, "kube-proxy-"+n.Name+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("kube-proxy config: %w", err)
	}
	return path, nil
}

// Kubernetes reports whether the lab runs a real control plane and
// kube-proxy (Config.Kubernetes), and in which kube-proxy mode.
func (l *Lab) Kubernetes() (KubeProxyMode, bool) {
	if l.kube == nil {
		return "", false
	}
	return l.kube.mode, true
}

// KubeClient returns an administrator's client of the lab's API server. Its
// connections are made from the control plane's namespace.
func (l *Lab) KubeClient() (kubernetes.Interface, error) {
	if l.kube == nil {
		return nil, ErrNoKubernetes
	}
	return l.kube.client, nil
}

// KubeRESTConfig returns the administrator's client configuration of the
// lab's API server, dialing from the control plane's namespace.
func (l *Lab) KubeRESTConfig() (*rest.Config, error) {
	if l.kube == nil {
		return nil, ErrNoKubernetes
	}
	rc := l.kube.pki.restConfig()
	cpNS := l.ns[ControlPlane]
	rc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, cpNS, network, addr)
	}
	return rc, nil
}

// Kubeconfig returns the path of the administrator's kubeconfig of the
// lab's API server. It names a relay on 127.0.0.1 of the lab process's
// namespace (`kubectl --kubeconfig PATH …` works there while the lab is
// up); the components use the API server's own address.
func (l *Lab) Kubeconfig() (string, error) {
	if l.kube == nil {
		return "", ErrNoKubernetes
	}
	return l.kube.pki.kubeconfigPath("admin"), nil
}

// SetBackends scales the Service's backends to exactly the named pods
// through the API server: the Pod objects of the others are deleted and
// missing ones created (Running and Ready). The endpointslice controller
// updates the Service's EndpointSlice and kube-proxy reprograms the nodes
// shortly after (see WaitKubeProxy); no names leave the Service without
// endpoints. The pods' namespaces and servers stay whatever their objects
// do, as a terminating pod's do: connections DNATed to a deleted pod stay
// in conntrack, stale.
func (l *Lab) SetBackends(ctx context.Context, pods ...string) error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	for _, name := range pods {
		if p, ok := l.Pod(name); !ok || !p.Backend {
			return fmt.Errorf("%w: no backend %q", ErrNotFound, name)
		}
	}
	k := l.kube
	k.mu.Lock()
	defer k.mu.Unlock()
	api := k.client.CoreV1().Pods(Namespace)
	zero := int64(0)
	for _, b := range l.Backends() {
		_, err := api.Get(ctx, b.Name, metav1.GetOptions{})
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s: %w", b.Name, err)
		}
		switch want := slices.Contains(pods, b.Name); {
		case want && !exists:
			if err := k.createPod(ctx, b.Name); err != nil {
				return err
			}
		case !want && exists:
			if err := api.Delete(ctx, b.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete pod %s: %w", b.Name, err)
			}
		}
	}
	l.log.Info("backends set through the API", "pods", pods)
	return nil
}

// Endpoints returns, sorted, the ready endpoints of the Service's
// EndpointSlices, as the API server has them.
func (l *Lab) Endpoints(ctx context.Context) ([]string, error) {
	if l.kube == nil {
		return nil, ErrNoKubernetes
	}
	list, err := l.kube.client.DiscoveryV1().EndpointSlices(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + ServiceObject,
	})
	if err != nil {
		return nil, fmt.Errorf("endpointslices: %w", err)
	}
	var out []string
	for _, es := range list.Items {
		for _, ep := range es.Endpoints {
			if ep.TargetRef != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				out = append(out, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// backendPods returns the backends whose Pod objects exist.
func (l *Lab) backendPods(ctx context.Context) ([]string, error) {
	var out []string
	for _, b := range l.Backends() {
		_, err := l.kube.client.CoreV1().Pods(Namespace).Get(ctx, b.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			out = append(out, b.Name)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("pod %s: %w", b.Name, err)
		}
	}
	return out, nil
}

// DeletePod deletes a backend's Pod object through the API server (see
// SetBackends); RestorePod brings it back.
func (l *Lab) DeletePod(ctx context.Context, pod string) error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	if p, ok := l.Pod(pod); !ok || !p.Backend {
		return fmt.Errorf("%w: no backend %q", ErrNotFound, pod)
	}
	have, err := l.backendPods(ctx)
	if err != nil {
		return err
	}
	return l.SetBackends(ctx, slices.DeleteFunc(have, func(s string) bool { return s == pod })...)
}

// RestorePod re-creates a backend's Pod object deleted by DeletePod or
// SetBackends.
func (l *Lab) RestorePod(ctx context.Context, pod string) error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	if p, ok := l.Pod(pod); !ok || !p.Backend {
		return fmt.Errorf("%w: no backend %q", ErrNotFound, pod)
	}
	have, err := l.backendPods(ctx)
	if err != nil {
		return err
	}
	return l.SetBackends(ctx, append(have, pod)...)
}

// WaitKubeProxy waits until kube-proxy on every node DNATs the Service's
// TCP port to exactly the named backends (none: the Service has no
// endpoints).
func (l *Lab) WaitKubeProxy(ctx context.Context, pods ...string) error {
	if l.kube == nil {
		return ErrNoKubernetes
	}
	want := slices.Sorted(slices.Values(pods))
	for _, n := range l.nodes {
		var got []string
		err := l.kube.poll(ctx, "kube-proxy on "+n.Name, func() error {
			if err := l.kubeProxyHealthy(ctx, n.Name); err != nil {
				return err
			}
			var err error
			got, err = l.ProgrammedBackends(ctx, n.Name)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("DNAT to %v, want %v", got, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ProgrammedBackends returns, sorted, the backends a node's kube-proxy
// rules DNAT the Service's TCP port (ServiceVIP:ServicePort) to. It reads
// the rules of the lab's kube-proxy mode: in iptables mode the KUBE-SVC
// chain of the ClusterIP and the DNAT of its KUBE-SEP chains; in nftables
// mode the service-ips verdict map and the `numgen random mod N map` of
// the service chain (there are no per-endpoint chains). A lab without
// Kubernetes has its own iptables rules, read the same way; a lab attached
// with Open reads the nftables table where a node has one.
func (l *Lab) ProgrammedBackends(ctx context.Context, node string) ([]string, error) {
	n, ok := l.Node(node)
	if !ok {
		return nil, fmt.Errorf("%w: no node %q", ErrNotFound, node)
	}
	var addrs []netip.Addr
	nft := l.kube != nil && l.kube.mode == KubeProxyNFTables
	if l.kube == nil && !l.owner {
		// Attached to a lab of another process: its mode is whichever
		// table is there.
		_, err := RunInNetNS(ctx, n.NetNS, nil, "nft", "list", "table", "ip", "kube-proxy")
		nft = err == nil
	}
	if nft {
		out, err := RunInNetNS(ctx, n.NetNS, nil, "nft", "list", "table", "ip", "kube-proxy")
		if err != nil {
			return nil, err
		}
		addrs = nftDNATTargets(string(out), ServiceAddr)
	} else {
		out, err := RunInNetNS(ctx, n.NetNS, nil, "iptables-save", "-t", "nat")
		if err != nil {
			return nil, err
		}
		addrs = iptablesDNATTargets(string(out), ServiceAddr)
	}
	var names []string
	for _, a := range addrs {
		if name := l.nameOf(a); name != "" {
			names = append(names, name)
		} else {
			names = append(names, a.String())
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// iptablesDNATTargets returns the addresses the KUBE-SEP chains of the
// ClusterIP's KUBE-SVC chain DNAT TCP to.
func iptablesDNATTargets(save string, svc netip.AddrPort) []netip.Addr {
	var svcChain string
	jumps := map[string][]string{}
	dnat := map[string]netip.Addr{}
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "-A" {
			continue
		}
		chain, target := f[1], argAfter(f, "-j")
		switch {
		case chain == ChainServices && argAfter(f, "-d") == svc.Addr().String()+"/32" &&
			argAfter(f, "-p") == "tcp" && argAfter(f, "--dport") == fmt.Sprint(svc.Port()):
			svcChain = target
		case strings.HasPrefix(chain, "KUBE-SVC-") && strings.HasPrefix(target, "KUBE-SEP-"):
			jumps[chain] = append(jumps[chain], target)
		case strings.HasPrefix(chain, "KUBE-SEP-") && target == "DNAT" && argAfter(f, "-p") == "tcp":
			if ap, err := netip.ParseAddrPort(argAfter(f, "--to-destination")); err == nil {
				dnat[chain] = ap.Addr()
			}
		}
	}
	var out []netip.Addr
	for _, sep := range jumps[svcChain] {
		if a, ok := dnat[sep]; ok {
			out = append(out, a)
		}
	}
	return out
}

func argAfter(f []string, flag string) string {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == flag {
			return f[i+1]
		}
	}
	return ""
}

// nftDNATTarget matches an endpoint of a service chain's DNAT: "addr .
// port" in the numgen map of several endpoints, "to addr:port" for one.
var nftDNATTarget = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+) \. \d+|\bto (\d+\.\d+\.\d+\.\d+):\d+`)

// nftDNATTargets returns the addresses kube-proxy's nftables table DNATs
// the ClusterIP's TCP port to: the service-ips map sends it to a service
// chain whose `dnat ip to numgen random mod N map { i : addr . port }`
// lists the endpoints (`dnat to addr:port` when there is one).
func nftDNATTargets(table string, svc netip.AddrPort) []netip.Addr {
	key := fmt.Sprintf("%s . tcp . %d : goto ", svc.Addr(), svc.Port())
	var chain string
	if i := strings.Index(table, key); i >= 0 {
		rest := table[i+len(key):]
		chain = strings.TrimRight(strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '}' })[0], ",")
	}
	if chain == "" {
		return nil
	}
	var out []netip.Addr
	in := false
	for line := range strings.Lines(table) {
		t := strings.TrimSpace(line)
		switch {
		case t == "chain "+chain+" {":
			in = true
		case in && t == "}":
			return out
		case in && strings.Contains(t, "dnat"):
			for _, m := range nftDNATTarget.FindAllStringSubmatch(t, -1) {
				if a, err := netip.ParseAddr(m[1] + m[2]); err == nil {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// kubeProxyHealthy reports whether a node's kube-proxy answers its healthz
// with 200 (it has synced its rules recently).
func (l *Lab) kubeProxyHealthy(ctx context.Context, node string) error {
	ns := l.ns[node]
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns, network, addr)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", KubeProxyHealthzPort), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kube-proxy healthz on %s: %s: %s", node, resp.Status, strings.TrimSpace(body.String()))
	}
	return nil
}
