package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/layerscope/layerscope/internal/nsenter"
)

const pidFile = "pid" // under the lab's state dir: the process serving the lab

func (l *Lab) writePID() error {
	p := filepath.Join(l.stateDir(), pidFile)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// readPID returns the pid recorded for a lab and whether it is alive.
func readPID(stateRoot, prefix string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(stateRoot, prefix, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

// Down removes what a lab with cfg's prefix left behind: it asks a live lab
// process (see the pid file) to stop and waits for it, restores a
// nf_conntrack_max a crashed conntrack-flood left lowered, deletes the
// lab's namespaces (with their links and iptables rules) and its state. It
// returns the namespaces it deleted. Nothing to clean is not an error.
func Down(ctx context.Context, cfg *Config) ([]string, error) {
	c := cfg.withDefaults()
	if err := checkPrefix(c.Prefix); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	var errs []error
	if pid, alive := readPID(c.StateDir, c.Prefix); alive && pid != os.Getpid() {
		c.Logger.Info("stopping lab process", "pid", pid)
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			for syscall.Kill(pid, 0) == nil {
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("waiting for lab process %d: %w", pid, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}
	errs = append(errs, restoreConntrackMax(c.StateDir, c.Prefix))
	nodes, _ := topology(c.Prefix)
	errs = append(errs, downKubelets(c.StateDir, c.Prefix, nodes))
	var removed []string
	for _, name := range append(NamespaceNames(c.Prefix), ControlPlaneNetNS(c.Prefix)) {
		if _, err := os.Stat(nsenter.Path(name)); err != nil {
			continue
		}
		if err := deleteNamedNS(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	if err := os.RemoveAll(filepath.Join(c.StateDir, c.Prefix)); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// LinkStatus is one interface of a lab namespace.
type LinkStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // veth, bridge, vxlan, device
	MTU    int    `json:"mtu"`
	Up     bool   `json:"up"`
	Master string `json:"master,omitempty"`
}

// NamespaceStatus is one namespace of a lab as found on the machine.
type NamespaceStatus struct {
	Member string       `json:"member"`
	NetNS  string       `json:"netns"`
	Exists bool         `json:"exists"`
	Links  []LinkStatus `json:"links,omitempty"`
	// Chains are the KUBE-* nat chains with their rule counts (nodes).
	Chains map[string]int `json:"chains,omitempty"`
	// Servers maps "http", "tls" or "dns" to whether it answered a probe.
	Servers map[string]bool `json:"servers,omitempty"`
	Err     string          `json:"error,omitempty"`
}

// StatusReport is what exists of a lab.
type StatusReport struct {
	Prefix     string            `json:"prefix"`
	Namespaces []NamespaceStatus `json:"namespaces"`
	PID        int               `json:"pid,omitempty"` // process serving the lab, if alive
	// ConntrackMaxLowered holds the original nf_conntrack_max while a
	// conntrack-flood has it lowered (or crashed before restoring it).
	ConntrackMaxLowered string `json:"conntrack_max_lowered,omitempty"`
}

// Up reports whether every namespace of the lab exists.
func (s *StatusReport) Up() bool {
	for _, n := range s.Namespaces {
		if !n.Exists {
			return false
		}
	}
	return len(s.Namespaces) > 0
}

// Status inspects the machine for a lab with cfg's prefix: namespaces,
// their links, the kube-proxy chains of the nodes and whether the pods'
// servers answer.
func Status(ctx context.Context, cfg *Config) (*StatusReport, error) {
	c := cfg.withDefaults()
	if err := checkPrefix(c.Prefix); err != nil {
		return nil, err
	}
	nodes, pods := topology(c.Prefix)
	s := &StatusReport{Prefix: c.Prefix}
	if pid, alive := readPID(c.StateDir, c.Prefix); alive {
		s.PID = pid
	}
	if b, err := os.ReadFile(filepath.Join(c.StateDir, c.Prefix, conntrackMaxState)); err == nil {
		s.ConntrackMaxLowered = strings.TrimSpace(string(b))
	}
	probe := func(ns *nsenter.NS, network string, to netip.AddrPort) bool {
		ok := false
		_ = ns.Do(func() error {
			if network == "dns" {
				m := new(dns.Msg)
				m.SetQuestion(ServiceName, dns.TypeA)
				cl := &dns.Client{Timeout: 300 * time.Millisecond}
				_, _, err := cl.ExchangeContext(ctx, m, to.String())
				ok = err == nil
				return nil
			}
			c, err := (&netDialer).DialContext(ctx, "tcp4", to.String())
			if err == nil {
				c.Close()
				ok = true
			}
			return nil
		})
		return ok
	}
	add := func(member, name string, node bool, pod *Pod) {
		st := NamespaceStatus{Member: member, NetNS: name}
		defer func() { s.Namespaces = append(s.Namespaces, st) }()
		ns, err := nsenter.Open(name)
		if err != nil {
			return
		}
		defer ns.Close()
		st.Exists = true
		links, err := listLinks(ns)
		if err != nil {
			st.Err = err.Error()
		}
		st.Links = links
		if node {
			out, err := RunInNetNS(ctx, name, nil, "iptables-save", "-t", "nat")
			if err != nil {
				st.Err = err.Error()
			} else {
				st.Chains = kubeChains(string(out))
			}
			// kube-proxy's nftables mode (Kubernetes labs) has a table of
			// its own; a node without it answers with an error.
			if out, err := RunInNetNS(ctx, name, nil, "nft", "list", "table", "ip", "kube-proxy"); err == nil {
				for c, n := range nftChains(string(out)) {
					st.Chains["nft:"+c] = n
				}
			}
		}
		if pod != nil {
			st.Servers = map[string]bool{}
			if pod.Backend {
				st.Servers["http"] = probe(ns, "tcp", netip.AddrPortFrom(pod.IP, ServicePort))
				st.Servers["tls"] = probe(ns, "tcp", netip.AddrPortFrom(pod.IP, TLSPort))
			} else {
				st.Servers["dns"] = probe(ns, "dns", DNSAddr)
			}
		}
	}
	for _, n := range nodes {
		add(n.Name, n.NetNS, true, nil)
	}
	for i := range pods {
		add(pods[i].Name, pods[i].NetNS, false, &pods[i])
	}
	// A Kubernetes lab's control plane namespace, listed only when there.
	if cp := ControlPlaneNetNS(c.Prefix); fileExists(nsenter.Path(cp)) {
		add(ControlPlane, cp, false, nil)
	}
	return s, nil
}

func listLinks(ns *nsenter.NS) ([]LinkStatus, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []LinkStatus
	for _, l := range links {
		a := l.Attrs()
		out = append(out, LinkStatus{Name: a.Name, Kind: l.Type(), MTU: a.MTU, Up: a.Flags&(1<<0) != 0, Master: names[a.MasterIndex]})
	}
	return out, nil
}

// kubeChains counts the rules of each KUBE-* chain in iptables-save output.
func kubeChains(save string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(save, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":KUBE-"):
			out[strings.TrimPrefix(f[0], ":")] += 0
		case len(f) > 1 && f[0] == "-A" && strings.HasPrefix(f[1], "KUBE-"):
			out[f[1]]++
		}
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// nftChains counts the rules of each chain in `nft list table` output.
func nftChains(table string) map[string]int {
	out := map[string]int{}
	chain := ""
	for line := range strings.Lines(table) {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "chain ") && strings.HasSuffix(t, "{"):
			chain = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(t, "chain "), "{"))
			out[chain] += 0
		case chain != "" && t == "}":
			chain = ""
		case chain != "" && t != "" && !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "comment "):
			out[chain]++
		}
	}
	return out
}

// String renders the report for a terminal.
func (s *StatusReport) String() string {
	var b strings.Builder
	state := "down"
	if s.Up() {
		state = "up"
	}
	fmt.Fprintf(&b, "lab %s: %s", s.Prefix, state)
	if s.PID > 0 {
		fmt.Fprintf(&b, " (served by pid %d)", s.PID)
	}
	b.WriteByte('\n')
	if s.ConntrackMaxLowered != "" {
		fmt.Fprintf(&b, "  nf_conntrack_max is lowered; original value %s (restored by `lab down`)\n", s.ConntrackMaxLowered)
	}
	for _, n := range s.Namespaces {
		if !n.Exists {
			fmt.Fprintf(&b, "  %-8s %-16s missing\n", n.Member, n.NetNS)
			continue
		}
		fmt.Fprintf(&b, "  %-8s %-16s", n.Member, n.NetNS)
		for _, l := range n.Links {
			up := "down"
			if l.Up {
				up = "up"
			}
			fmt.Fprintf(&b, " %s(%s,%d,%s", l.Name, l.Kind, l.MTU, up)
			if l.Master != "" {
				fmt.Fprintf(&b, ",master %s", l.Master)
			}
			b.WriteByte(')')
		}
		b.WriteByte('\n')
		if len(n.Chains) > 0 {
			keys := make([]string, 0, len(n.Chains))
			for k := range n.Chains {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "           chains:")
			for _, k := range keys {
				fmt.Fprintf(&b, " %s[%d]", k, n.Chains[k])
			}
			b.WriteByte('\n')
		}
		if len(n.Servers) > 0 {
			keys := make([]string, 0, len(n.Servers))
			for k := range n.Servers {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "           servers:")
			for _, k := range keys {
				v := "down"
				if n.Servers[k] {
					v = "up"
				}
				fmt.Fprintf(&b, " %s=%s", k, v)
			}
			b.WriteByte('\n')
		}
		if n.Err != "" {
			fmt.Fprintf(&b, "           error: %s\n", n.Err)
		}
	}
	return b.String()
}
