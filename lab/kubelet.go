package lab

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/layerscope/layerscope/internal/ociimage"
)

// Images a lab with Config.Kubelets imports into each node's containerd.
const (
	// AgentImage is the layerscope image the DaemonSet of a lab with
	// kubelets runs: `helm install … --set image.registry=layerscope.local
	// --set image.repository=layerscope --set image.tag=lab
	// --set image.pullPolicy=Never`.
	AgentImage = "layerscope.local/layerscope:lab"
	// PauseImage is the pods' sandbox image and the image of the lab pods'
	// one container: the layerscope binary running `layerscope lab pause`.
	PauseImage = "layerscope.local/pause:lab"
	// LayerscopeBinEnv names the environment variable holding the static
	// layerscope binary the images are built from, when
	// Config.LayerscopeBinary is empty (else the running executable).
	LayerscopeBinEnv = "LAYERSCOPE_BINARY"
)

// The sysctls a kubelet with protectKernelDefaults checks and would
// otherwise rewrite machine-wide; inside the nodes' mount namespaces files
// holding these values are bind-mounted over them.
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// kubeletNode is the runtime of one node: its directory, private mount
// namespace and cgroup root.
type kubeletNode struct {
	node   Node
	dir    string
	mntns  string // the file holding the mount namespace
	cgroup string // kubelet's cgroupRoot, also the runtime's pids cgroup parent
	run    string // containerd's sockets and kubelet's root: a short path (unix socket paths take 104 bytes)
}

func (n *kubeletNode) socket() string { return filepath.Join(n.run, "containerd.sock") }

// checkKubelets checks what Config.Kubelets needs besides the control
// plane: kubelet in K8sBin, containerd, ctr, runc and the loopback CNI
// plugin from Debian (.ci/packages.sh), and a static layerscope binary.
func (c *Config) checkKubelets() error {
	if !c.Kubelets {
		return nil
	}
	if !c.Kubernetes {
		return fmt.Errorf("%w: Config.Kubelets needs Config.Kubernetes", ErrNoKubelet)
	}
	if _, err := os.Stat(filepath.Join(c.K8sBin, "kubelet")); err != nil {
		return fmt.Errorf("%w: %w", ErrNoK8sBin, err)
	}
	for _, p := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "unshare", "mount"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install containerd runc containernetworking-plugins, .ci/packages.sh)", ErrNoKubelet, p)
		}
	}
	if _, err := os.Stat(cniLoopback); err != nil {
		return fmt.Errorf("%w: %w (apt-get install containernetworking-plugins)", ErrNoKubelet, err)
	}
	if c.LayerscopeBinary == "" {
		return fmt.Errorf("%w: no layerscope binary for the images (Config.LayerscopeBinary, $%s)", ErrNoKubelet, LayerscopeBinEnv)
	}
	return checkStatic(c.LayerscopeBinary)
}

// checkStatic refuses a binary that needs an ELF interpreter: the images
// hold no libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: layerscope binary for the images: %w", ErrNoKubelet, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is not static, the images have no libc: build it with CGO_ENABLED=0 (make build)", ErrNoKubelet, path)
		}
	}
	return nil
}

// cniLoopback is Debian's loopback CNI plugin, which containerd's CRI
// runs for every sandbox.
const cniLoopback = "/usr/lib/cni/loopback"

// startKubelets builds the images, then per node: a private mount
// namespace, a cgroup root, containerd with the images imported, and a
// kubelet that registers the node; it waits until both nodes are Ready.
func (k *kubeCluster) startKubelets(ctx context.Context) error {
	images := filepath.Join(k.dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	tars, err := buildLabImages(k.lab.cfg.LayerscopeBinary, images)
	if err != nil {
		return err
	}
	for _, n := range k.lab.nodes {
		// Host-network pods (the agent) reach the API server at the
		// kubernetes Service's ClusterIP: a route makes the kernel send it
		// out, kube-proxy's DNAT rewrites it first.
		if out, err := exec.CommandContext(ctx, "ip", "-n", n.NetNS, "route", "add", ServiceCIDR.String(), "dev", NodeIface).CombinedOutput(); err != nil {
			return fmt.Errorf("route to the services in %s: %w: %s", n.NetNS, err, out)
		}
	}
	for _, n := range k.lab.nodes {
		kn := &kubeletNode{
			node:   n,
			dir:    filepath.Join(k.dir, "nodes", n.Name),
			cgroup: kubeletCgroup(k.lab.cfg.Prefix, n.Name),
			run:    kubeletRunDir(k.lab.cfg.Prefix, n.Name),
		}
		if err := k.startNode(ctx, kn, tars); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return k.poll(ctx, "the kubelets' nodes Ready", func() error {
		for _, n := range k.lab.nodes {
			node, err := k.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !nodeReady(node) {
				return fmt.Errorf("node %s not Ready", n.Name)
			}
		}
		return nil
	})
}

// kubeletCgroup is the cgroup root of a node's kubelet; the runtime's
// pids cgroup is its sibling with the suffix "-runtime".
func kubeletCgroup(prefix, node string) string { return "/layerscope-lab-" + prefix + node }

// kubeletRunDir holds a node's containerd sockets and kubelet root.
func kubeletRunDir(prefix, node string) string {
	return filepath.Join("/run/layerscope", "kubelet-"+prefix+node)
}

// downKubelets removes what the kubelets of a crashed lab process left
// (Down): the processes still in the nodes' runtime and pod cgroups
// (containerd's shims and the containers, killed by pid), the cgroups,
// the mount namespaces' holders and the runtime directories.
func downKubelets(stateDir, prefix string, nodes []Node) error {
	var errs []error
	for _, n := range nodes {
		root := kubeletCgroup(prefix, n.Name)
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", root+"-runtime")); err == nil {
			errs = append(errs, killCgroup(filepath.Join("/sys/fs/cgroup/pids", root+"-runtime")))
		}
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", root)); err == nil {
			errs = append(errs, removeCgroupRoot(root))
		}
		holder := filepath.Join(stateDir, prefix, "kubernetes", "nodes", n.Name, "ns")
		_ = syscall.Unmount(filepath.Join(holder, "mnt"), syscall.MNT_DETACH)
		_ = syscall.Unmount(holder, syscall.MNT_DETACH)
		errs = append(errs, os.RemoveAll(kubeletRunDir(prefix, n.Name)))
	}
	return errors.Join(errs...)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// buildLabImages writes the agent's and the pause image as docker-archive
// tarballs from the static layerscope binary bin.
func buildLabImages(bin, dir string) ([]string, error) {
	spec := ociimage.Spec{
		Binary: bin, CABundle: "/etc/ssl/certs/ca-certificates.crt", License: "",
		Version: "lab", Revision: "lab", Licenses: "Apache-2.0", Source: "https://github.com/layerscope/layerscope",
		Created: time.Unix(0, 0).UTC(), Arch: runtime.GOARCH,
	}
	lic := filepath.Join(dir, "LICENSE")
	if err := os.WriteFile(lic, []byte("Apache License, Version 2.0: see the LICENSE file of the layerscope repository.\n"), 0o644); err != nil {
		return nil, err
	}
	spec.License = lic
	var out []string
	for _, im := range []struct {
		ref  string
		file string
		cmd  []string
	}{{AgentImage, "agent.tar", nil}, {PauseImage, "pause.tar", []string{"lab", "pause"}}} {
		s := spec
		s.Cmd = im.cmd
		img, err := ociimage.Build(s)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.ref, err)
		}
		path := filepath.Join(dir, im.file)
		if err := ociimage.WriteArchive(path, im.ref, img); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.ref, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// startNode starts one node's containerd and kubelet.
func (k *kubeCluster) startNode(ctx context.Context, n *kubeletNode, images []string) error {
	for _, d := range []string{"containerd", "run", "netns", "cni/bin", "cni/net.d", "cni/ips", "pod-logs", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(n.run, 0o700); err != nil {
		return err
	}
	k.cleanups = append(k.cleanups, func() error { return os.RemoveAll(n.run) })
	if err := k.makeMountNS(n); err != nil {
		return err
	}
	if err := makeCgroupRoot(n.cgroup); err != nil {
		return err
	}
	k.cleanups = append(k.cleanups, func() error { return removeCgroupRoot(n.cgroup) })
	if err := k.writeCNI(n); err != nil {
		return err
	}
	if err := k.writeContainerdConfig(n); err != nil {
		return err
	}
	// containerd, and the shims it starts, run in a pids cgroup of the
	// node's own: stopping the lab kills whatever is left there by pid.
	runtimeCg := filepath.Join("/sys/fs/cgroup/pids", n.cgroup+"-runtime")
	if err := os.MkdirAll(runtimeCg, 0o755); err != nil {
		return fmt.Errorf("runtime cgroup: %w", err)
	}
	k.cleanups = append(k.cleanups, func() error { return killCgroup(runtimeCg) })
	if err := k.run("containerd-"+n.node.Name, []string{
		"sh", "-c", `echo $$ >"$0/cgroup.procs" && exec "$@"`, runtimeCg,
		"nsenter", "--mount=" + n.mntns, "--net=" + netnsPath(n.node.NetNS), "--",
		"containerd", "--config", filepath.Join(n.dir, "containerd", "config.toml"),
	}); err != nil {
		return err
	}
	if err := k.poll(ctx, "containerd of "+n.node.Name, func() error {
		return exec.CommandContext(ctx, "ctr", "--address", n.socket(), "version").Run()
	}); err != nil {
		return err
	}
	for _, im := range images {
		if out, err := exec.CommandContext(ctx, "ctr", "--address", n.socket(), "-n", "k8s.io", "images", "import", im).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr images import %s: %w: %s", im, err, out)
		}
	}
	cfg, err := k.writeKubeletConfig(n)
	if err != nil {
		return err
	}
	kubeconfig, err := k.pki.addClient("kubelet-"+n.node.Name, "system:node:"+n.node.Name, "system:nodes")
	if err != nil {
		return err
	}
	return k.run("kubelet-"+n.node.Name, []string{
		"nsenter", "--mount=" + n.mntns, "--net=" + netnsPath(n.node.NetNS), "--",
		filepath.Join(k.bin, "kubelet"), "--config=" + cfg, "--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(n.run, "kubelet"), "--cert-dir=" + filepath.Join(n.run, "kubelet", "pki"),
		"--hostname-override=" + n.node.Name, "--node-ip=" + n.node.IP.String(), "--v=1",
	})
}

func netnsPath(name string) string { return "/run/netns/" + name }

// makeMountNS makes the node's persistent private mount namespace (slave:
// the host's mounts propagate in, none out) and, inside it, bind-mounts
// over the sysctls kubelet checks files holding the values it expects,
// and the node's own directories over /run/netns (the sandboxes'
// namespaces) and /run/containerd (the shims' and runc's state).
func (k *kubeCluster) makeMountNS(n *kubeletNode) error {
	holder := filepath.Join(n.dir, "ns")
	if err := os.MkdirAll(holder, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(holder, holder, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount namespace holder: %w", err)
	}
	k.cleanups = append(k.cleanups, func() error {
		_ = syscall.Unmount(filepath.Join(holder, "mnt"), syscall.MNT_DETACH)
		return syscall.Unmount(holder, syscall.MNT_DETACH)
	})
	if err := syscall.Mount("", holder, "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("mount namespace holder: %w", err)
	}
	n.mntns = filepath.Join(holder, "mnt")
	if err := os.WriteFile(n.mntns, nil, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("unshare", "--mount="+n.mntns, "--propagation", "slave", "true").CombinedOutput(); err != nil {
		return fmt.Errorf("unshare --mount: %w: %s", err, out)
	}
	// Left in place when the lab goes: removing it, even empty on the
	// host, would detach the bind mounts over it in the mount namespaces
	// of every other lab's nodes (the kernel lazily unmounts a directory
	// removed in another namespace), stopping their containerd.
	if err := os.MkdirAll("/run/containerd", 0o711); err != nil {
		return err
	}
	binds := [][2]string{
		{filepath.Join(n.dir, "netns"), "/run/netns"},
		{filepath.Join(n.dir, "run"), "/run/containerd"},
	}
	keys := make([]string, 0, len(kubeletSysctls))
	for key := range kubeletSysctls {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		f := filepath.Join(n.dir, "sysctl", strings.ReplaceAll(key, "/", "_"))
		if err := os.WriteFile(f, []byte(kubeletSysctls[key]+"\n"), 0o644); err != nil {
			return err
		}
		binds = append(binds, [2]string{f, "/proc/sys/" + key})
	}
	for _, b := range binds {
		if out, err := exec.Command("nsenter", "--mount="+n.mntns, "--", "mount", "--bind", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("bind %s over %s in the node's mount namespace: %w: %s", b[0], b[1], err, out)
		}
	}
	return nil
}

// writeCNI installs the node's CNI: the loopback plugin and lab-ip, which
// adds nothing to the sandbox and reports the address the lab gave the
// pod (the lab's servers serve it from the pod's own namespace). A pod
// the lab does not know gets no address: an error.
func (k *kubeCluster) writeCNI(n *kubeletNode) error {
	cni := filepath.Join(n.dir, "cni")
	if err := os.Symlink(cniLoopback, filepath.Join(cni, "bin", "loopback")); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	ips := filepath.Join(cni, "ips")
	for _, p := range k.lab.pods {
		if p.Node != n.node.Name {
			continue
		}
		ns := Namespace
		if p.Name == PodDNS {
			ns = SystemNamespace
		}
		if err := os.WriteFile(filepath.Join(ips, ns+"_"+p.Name), []byte(p.IP.String()), 0o644); err != nil {
			return err
		}
	}
	plugin := `#!/bin/sh
# lab-ip: the CNI plugin of a layerscope lab node. The lab made each pod's
# namespace, address and servers; this reports the pod's lab address to
# the runtime and changes nothing.
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'; exit 0 ;;
ADD) ;;
*) cat >/dev/null; exit 0 ;;
esac
cat >/dev/null
ns= name=
IFS=';'
for kv in $CNI_ARGS; do
	case "$kv" in
	K8S_POD_NAMESPACE=*) ns=${kv#*=} ;;
	K8S_POD_NAME=*) name=${kv#*=} ;;
	esac
done
f="` + ips + `/${ns}_${name}"
if [ ! -f "$f" ]; then
	printf '{"cniVersion":"1.0.0","code":11,"msg":"no lab address for pod %s/%s on this node"}\n' "$ns" "$name"
	exit 1
fi
printf '{"cniVersion":"1.0.0","ips":[{"address":"%s/32"}]}\n' "$(cat "$f")"
`
	if err := os.WriteFile(filepath.Join(cni, "bin", "lab-ip"), []byte(plugin), 0o755); err != nil {
		return err
	}
	conf := `{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"lab-ip"}]}` + "\n"
	return os.WriteFile(filepath.Join(cni, "net.d", "10-lab.conflist"), []byte(conf), 0o644)
}

func (k *kubeCluster) writeContainerdConfig(n *kubeletNode) error {
	d := filepath.Join(n.dir, "containerd")
	conf := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # Without CAP_SYS_RESOURCE no process may lower its oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`, filepath.Join(d, "root"), filepath.Join(d, "state"), n.socket(), n.socket()+".ttrpc", PauseImage,
		filepath.Join(n.dir, "cni", "bin"), filepath.Join(n.dir, "cni", "net.d"))
	return os.WriteFile(filepath.Join(d, "config.toml"), []byte(conf), 0o644)
}

// writeKubeletConfig writes the node's KubeletConfiguration: cgroup v1
// allowed, the node's own cgroup root, kernel defaults checked (never
// written), the node's containerd, pod logs in the node's directory.
func (k *kubeCluster) writeKubeletConfig(n *kubeletNode) (string, error) {
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
protectKernelDefaults: true
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
evictionHard: {memory.available: "1Mi", nodefs.available: "0%%", imagefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.inodesFree: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
clusterDomain: cluster.local
resolvConf: ""
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 5s
`, filepath.Join(k.pki.dir, "ca.crt"), n.node.IP, n.cgroup, n.socket(), filepath.Join(n.dir, "pod-logs"))
	path := filepath.Join(n.dir, "kubelet-config.yaml")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// cgroupHierarchies returns the mounted cgroup v1 hierarchies, each once.
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Name() == "unified" {
			continue
		}
		p, err := filepath.EvalSymlinks(filepath.Join("/sys/fs/cgroup", e.Name()))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err != nil {
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no cgroup v1 hierarchy under /sys/fs/cgroup", ErrNoKubelet)
	}
	return out, nil
}

// makeCgroupRoot creates root in every hierarchy (kubelet checks that its
// cgroupRoot exists in each), with the parent's cpus and mems in cpuset.
func makeCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" || strings.Contains(filepath.Base(h), "cpuset") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// removeCgroupRoot kills every process left under root (the pods'
// containers) and removes its cgroups, deepest first.
func removeCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		if filepath.Base(h) == "pids" {
			errs = append(errs, killCgroup(filepath.Join(h, root)))
		}
	}
	// The container runtime also makes the pods' cgroups in the unified
	// hierarchy of a hybrid host.
	for _, h := range append(hs, "/sys/fs/cgroup/unified") {
		errs = append(errs, removeCgroupTree(filepath.Join(h, root)))
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs, by pid, every process in the cgroup dir and its
// descendants until none is left, then removes them.
func killCgroup(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []int
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		if len(pids) == 0 {
			return removeCgroupTree(dir)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v left in cgroup %s", pids, dir)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func removeCgroupTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for _, d := range slices.Backward(dirs) {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// Kubelets reports whether the lab runs a containerd and a kubelet per
// node (Config.Kubelets).
func (l *Lab) Kubelets() bool { return l.kube != nil && l.cfg.Kubelets }
