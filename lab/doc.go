// Package lab builds the two-node mini-cluster of network namespaces that is
// layerscope's embedded default and test bed, and drives traffic through it.
//
// # Topology
//
// A lab with prefix P is six named network namespaces under /run/netns
// ("ip netns exec" works on them):
//
//	P+node-1  10.0.0.10/24 on eth0, cbr0 10.244.0.1/24, vxlan0 10.244.0.0/32
//	P+node-2  10.0.0.11/24 on eth0, cbr0 10.244.1.1/24, vxlan0 10.244.1.0/32
//	P+pod-a   10.244.0.5 on node-1   (Service backend)
//	P+pod-b   10.244.0.8 on node-1   (Service backend)
//	P+pod-c   10.244.1.8 on node-2   (Service backend)
//	P+dns     10.244.0.10 on node-1  (cluster DNS)
//
// The nodes are joined by one veth pair named eth0 in each (MTU 1500). Each
// pod has eth0 (MTU 1450) on a veth whose host end, veth-POD, is a hairpin
// port of its node's cbr0; its default route is the bridge IP. Each node has
// vxlan0 (VNI 1, UDP 4789, MTU 1450, local = node IP, learning off) and
// reaches the other node's pod CIDR the way flannel does: an onlink route via
// the remote VTEP address with a permanent neighbour and FDB entry. Links are
// created inside the namespaces with netlink handles (a veth's peer is
// created directly in its target namespace), so nothing ever appears in the
// root namespace and parallel labs never collide on interface names.
//
// That is the bridge wiring (Config.Wiring WiringBridge, the default). The
// routed wiring (WiringRouted) builds nodes without a bridge, as Calico
// does: the host end veth-POD has no address and answers ARP by proxy, the
// node routes each pod's /32 through it, and the pod holds its address as a
// /32 with its default route via 169.254.1.1 (which nobody holds: the node
// routes it through eth0 only so that proxy ARP answers for it). Service,
// overlay and servers are the same in both.
//
// # Service
//
// Without Config.Kubernetes (see below), both nodes carry kube-proxy's
// iptables-mode rules, written by the lab, for the Service
// 10.96.0.42:8080 (ServicePortName "default/my-service:http") with the three
// backends, and for its NodePort 30080 on every node IP: KUBE-SERVICES →
// KUBE-SVC-… (statistic random 0.3333333333, 0.5000000000, rest) →
// KUBE-SEP-… DNAT, KUBE-NODEPORTS → KUBE-EXT-…, KUBE-MARK-MASQ and
// KUBE-POSTROUTING masquerade for hairpin and NodePort traffic. They are
// applied with "iptables-restore -w --noflush" inside each node namespace,
// as kube-proxy does; see KubeProxyRules. Pod → ClusterIP traffic is routed
// by the node (the ClusterIP is off-link), and bridge-nf-call-iptables is
// enabled per node namespace where br_netfilter exists.
//
// # Kubernetes
//
// With Config.Kubernetes the control plane is real and the lab's own
// kube-proxy rules are not written. A seventh namespace, P+control-plane,
// holds eth0 10.0.1.10/24, linked to cp0 10.0.1.1/24 in node-1 (node-1
// forwards; node-2 routes 10.0.1.0/24 via node-1; the link has the pods'
// MTU, 1450, as an agent sees cp0 like a pod's veth); it has no default
// route, so nothing in it can reach an address outside the lab. In it run
// etcd (127.0.0.1:2379), kube-apiserver (10.0.1.10:6443 only; Service
// range 10.96.0.0/16; Node,RBAC authorization), kube-controller-manager
// and kube-scheduler (--leader-elect=false; the node lifecycle controller
// is off, as no kubelet posts node status). A real kube-proxy runs in each
// node namespace in Config.KubeProxyMode, iptables or nftables, with
// conntrack.maxPerCore 0 (it never writes the machine-wide
// nf_conntrack_max), its hostname the node's name and NodePorts on the node
// network. The binaries come from Config.K8sBin ($LAYERSCOPE_K8S_BIN,
// built by .ci/kubernetes.sh); the certificates (an ECDSA CA, the API
// server's serving certificate, the service account key pair and a client
// certificate and kubeconfig per component) are made at start under
// StateDir/PREFIX/kubernetes, where the components write their logs.
//
// The lab registers itself as API objects: the two Nodes (Ready, without
// Config.Kubelets, as no kubelet runs), the pods (bound to their nodes, Running and Ready with their
// IPs; the pods stay the lab's namespaces) and the Service my-service with
// its selector app=web, whose EndpointSlice the controller-manager's
// endpointslice controller makes from those pods. SetBackends (scale down
// or up; none leaves the Service without endpoints), DeletePod and
// RestorePod delete and create Pod objects through the API server; a
// deleted pod's namespace and servers stay, so connections DNATed to it
// stay in conntrack, stale. WaitKubeProxy waits until both kube-proxies
// DNAT to the backends asked for, reading ProgrammedBackends from the rules
// of either mode (iptables: KUBE-SVC → KUBE-SEP DNAT, whose chain names are
// the ones KubeProxyRules computes; nftables: the service-ips verdict map
// and the service chain's `numgen random mod N map`, with no per-endpoint
// chains).
// KubeClient gives access to the API server; the admin kubeconfig
// (Kubeconfig) names a relay on 127.0.0.1 of the lab process's namespace,
// which dials the API server from the control plane's namespace, so that
// kubectl and agents on the host reach it without any route to the lab's
// addresses.
//
// The components are child processes of the process that built the lab,
// each entered into its namespace with nsenter and killed if that process
// dies; Close stops them (SIGTERM, then SIGKILL after 5 s) before deleting
// the namespaces. StopAPIServer and StartAPIServer take the API server
// away and bring it back.
//
// # Kubelets
//
// With Config.Kubelets each node also runs a real containerd and kubelet:
// the kubelets register the Nodes (the lab does not write them) and run
// the lab's pods — a container of PauseImage each, in a sandbox whose
// address the lab's CNI plugin (lab-ip) reports as the pod's lab address
// without configuring anything, so the lab's servers in the pod's own
// namespace keep answering there — and any DaemonSet runs on both nodes.
// Two kubelets share the machine without changing it: each node has a
// private mount namespace (slave) in which files holding the values
// kubelet checks are bind-mounted over six sysctls (protectKernelDefaults:
// nothing machine-wide is written) and the node's own directories over
// /run/netns and /run/containerd; its own cgroup root in every v1
// hierarchy; and containerd with its own root, state and sockets
// (restrict_oom_score_adj: no CAP_SYS_RESOURCE is needed). The API server
// reaches the kubelets at the nodes' InternalIPs with a client
// certificate of its own (kubectl logs works). AgentImage and PauseImage
// are built from Config.LayerscopeBinary with internal/ociimage and
// imported with ctr. Close, and Down after a crash, kill what is left in
// the nodes' cgroups by pid and remove them.
//
// # Kubernetes metadata
//
// WriteMetadata writes the lab as Kubernetes objects, the format of the
// agent's --k8s-metadata-file (a YAML stream as `kubectl get -o yaml`
// prints it): the pods in namespace default (Namespace) — pod-a and pod-b
// replicas of the Deployment web, pod-c of web-canary, each with its node,
// IP, ReplicaSet owner reference and pod-template-hash label — the DNS pod
// in kube-system (Deployment coredns), the Service my-service
// (ServiceObject: ClusterIP 10.96.0.42, ports http 8080/TCP with NodePort
// 30080 and udp 8080/UDP) and its EndpointSlice listing the three
// backends as ready, with their pods and nodes. Agents given this file
// name the Service, namespaces and workloads of the lab's traffic.
//
// # Servers
//
// The servers run as goroutines of the process that built the lab, each on
// a socket opened inside its pod's namespace: HTTP on :8080 and TLS on :8443
// of every backend (answering with the pod's name and IP in the X-Backend
// and X-Backend-IP headers and the body; /status/NNN answers NNN, /missing
// 404; a self-signed ECDSA certificate per pod is made at start), and DNS on
// 10.244.0.10:53 (github.com/miekg/dns): ServiceName A → 10.96.0.42,
// anything under BrokenZone → SERVFAIL, other names → NXDOMAIN.
//
// # Scenarios
//
// Traffic runs one of Scenarios with clients whose sockets are opened in the
// pods' and nodes' namespaces, and returns a Report with the ground truth a
// test compares the agent's view with: every Request with its client socket
// address (to find it in conntrack and captures), the backend that answered
// and, for Service traffic, the backend the DNAT picked (from the nodes'
// conntrack NEW events, read only), plus per-scenario counts (MTUReport,
// FloodReport, HTTP status, TLS versions, DNS rcodes). Scenarios that change
// the lab put it back before returning.
//
// # Lifecycle
//
// New builds a lab and Close removes everything it made, also after a
// partial New: servers stop, handles close, the namespaces are deleted (with
// their links, routes and iptables rules), and a lowered nf_conntrack_max is
// restored. The conntrack-flood scenario is the only code that changes a
// global setting: it lowers net.netfilter.nf_conntrack_max from the initial
// namespace while holding a machine-wide file lock, records the original in
// StateDir/PREFIX/nf_conntrack_max.orig and restores it before returning.
//
// The process that built a lab writes its pid to StateDir/PREFIX/pid and
// answers stop/start requests for backends on StateDir/PREFIX/control.sock,
// so that another process can attach with Open and run every scenario. Down
// cleans up after a crashed run (stopping a live lab process first) and
// Status reports what exists.
//
// # Concurrency
//
// A Lab's methods may be called from several goroutines. Scenarios that
// change the lab (dead-backend, mtu) run one at a time, and so do the Pod
// edits of a Kubernetes lab (SetBackends).
//
// All lab traffic stays between the lab's namespaces.
package lab
