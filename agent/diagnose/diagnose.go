package diagnose

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// Class is the kind of verdict. Its exit code is what `layerscope
// diagnose` exits with.
type Class int

// Verdict classes, in the order the layers are walked.
const (
	Healthy     Class = iota // no fault observed
	NoTraffic                // nothing from FROM to TO was observed
	DNSNXDomain              // DNS answered NXDOMAIN: wrong name or namespace
	DNSServFail              // DNS answered SERVFAIL (or another error): the DNS server is broken
	Conntrack                // the conntrack table is full or dropping
	NoDNAT                   // the service address is not translated: no endpoints or no kube-proxy rules
	MTU                      // L3: packets too big for the path (frag-needed, MTU mismatch)
	Backend                  // L4: one or more backends refuse, reset or do not answer
	Path                     // packets leave one hop and never reach the next
	App                      // L7: the application answers with errors
	numClasses
)

var classNames = [numClasses]string{"healthy", "no-traffic", "dns-nxdomain", "dns-servfail", "conntrack", "no-dnat", "mtu", "backend", "path", "app"}

// String returns the class's name as printed and in JSON.
func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return "class" + strconv.Itoa(int(c))
	}
	return classNames[c]
}

// ExitCode is the process exit code of the class: 0 for Healthy, 2 and up
// otherwise (1 is left to errors of the command itself).
func (c Class) ExitCode() int {
	if c == Healthy {
		return 0
	}
	return int(c) + 1
}

// MarshalText writes the class's name.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a class's name.
func (c *Class) UnmarshalText(b []byte) error {
	for i, n := range classNames {
		if n == string(b) {
			*c = Class(i)
			return nil
		}
	}
	return fmt.Errorf("diagnose: unknown class %q", b)
}

// Layer returns the layer a class names: "L3", "L4", "L7", "DNS", …
func (c Class) Layer() string {
	switch c {
	case DNSNXDomain, DNSServFail:
		return "DNS"
	case Conntrack:
		return "L4/conntrack"
	case NoDNAT:
		return "service"
	case MTU:
		return "L3"
	case Backend:
		return "L4"
	case Path:
		return "L3/path"
	case App:
		return "L7"
	case NoTraffic:
		return "source"
	}
	return ""
}

// Endpoint is a FROM or TO argument: an address with an optional port, or
// a name (pod, service or DNS name) that resolved to addresses.
type Endpoint struct {
	// Arg is the argument as given.
	Arg string
	// Addrs are its addresses (a pod's IP, a service's ClusterIP); empty
	// for a DNS name that names nothing known.
	Addrs []netip.Addr
	// Port, when not zero, narrows TO to one port.
	Port uint16
	// DNSName is set when Arg is a name that is not a known pod or
	// service: the diagnosis then looks at DNS.
	DNSName string
	// Service is true when Addrs are a Service's addresses (set by the
	// caller that resolved a service name). Without it, an address counts
	// as a service address when some agent saw connections to it DNATed.
	Service bool
}

// ParseEndpoint reads IP, IP:port or [IPv6]:port; anything else is a name,
// returned with DNSName set (callers that know pods and services resolve
// it before).
func ParseEndpoint(s string) Endpoint {
	e := Endpoint{Arg: s}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		e.Addrs, e.Port = []netip.Addr{ap.Addr().Unmap()}, ap.Port()
		return e
	}
	if a, err := netip.ParseAddr(s); err == nil {
		e.Addrs = []netip.Addr{a.Unmap()}
		return e
	}
	e.DNSName = s
	return e
}

func (e *Endpoint) has(ip string, port uint16) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return slices.Contains(e.Addrs, a.Unmap()) && (e.Port == 0 || e.Port == port)
}

// NodeEvidence is what one agent reported.
type NodeEvidence struct {
	// Source is where it came from (the agent's URL).
	Source string `json:"source"`
	// Node is the agent's node name (from Status, else Source).
	Node string `json:"node"`
	// Status is the agent's status; nil when it could not be read.
	Status *api.Status `json:"-"`
	// Connections are the agent's connection events of the window, oldest
	// first (several events per connection view are fine).
	Connections []api.Connection `json:"-"`
	// Err says why this agent's evidence is missing or partial.
	Err string `json:"error,omitempty"`
}

// Input is one diagnosis.
type Input struct {
	From, To Endpoint
	// Since is the window looked at (for the texts; the evidence is
	// already limited to it).
	Since time.Duration
	Nodes []NodeEvidence
	// Now is when the evidence was taken; zero means the newest status
	// or event time in Nodes.
	Now time.Time
}

// Verdict is the answer: the first broken layer with its evidence.
type Verdict struct {
	Class Class `json:"class"`
	// Layer is Class.Layer().
	Layer string `json:"layer"`
	// Summary is one line: what is broken.
	Summary string `json:"summary"`
	// Evidence lines: counts, times, hops.
	Evidence []string `json:"evidence"`
	// Hops are the interfaces the traffic was seen on, "node/interface
	// (role)", in path order as far as the agents know it.
	Hops []string `json:"hops"`
	// Next is the manual check to run next.
	Next string `json:"next"`
	// Connections is the number of FROM → TO connections looked at.
	Connections int `json:"connections"`
	// Sources are the agents asked, with their errors.
	Sources []NodeEvidence `json:"sources"`
	// ExitCode is Class.ExitCode().
	ExitCode int `json:"exit_code"`

	paths []string // "path to BACKEND: hop → hop", for the evidence
}

// conn is one connection as diagnosed: the best view of it on one node.
type conn struct {
	node   string
	c      *api.Connection
	failed bool // failing(c, Input.Now)
}

// Diagnose walks the layers in order over the evidence and returns the
// first broken one: DNS (when TO is a name), traffic from FROM to TO at
// all, conntrack, L3 MTU, the service's DNAT, L4 backends, the path
// between hops, L7; else Healthy.
func Diagnose(in *Input) Verdict {
	v := diagnose(in)
	v.Layer = v.Class.Layer()
	v.ExitCode = v.Class.ExitCode()
	v.Sources = in.Nodes
	for _, n := range in.Nodes {
		if n.Err != "" {
			v.Evidence = append(v.Evidence, fmt.Sprintf("agent %s: %s (its evidence is missing)", n.Source, n.Err))
		}
	}
	return v
}

func diagnose(in *Input) Verdict {
	win := humanWindow(in.Since)
	if in.Now.IsZero() {
		in.Now = newest(in)
	}
	if in.To.DNSName != "" && len(in.To.Addrs) == 0 {
		return dnsVerdict(in, win)
	}
	conns, views := matching(in)
	if len(conns) == 0 {
		return noTraffic(in, win)
	}
	v := Verdict{Connections: len(conns), Hops: hops(views), paths: pathLines(views)}
	failed := 0
	for _, c := range conns {
		if c.failed {
			failed++
		}
	}
	if cv, ok := conntrackVerdict(in, conns, failed, win); ok {
		return merge(v, cv)
	}
	if mv, ok := mtuVerdict(in, conns, win); ok {
		return merge(v, mv)
	}
	if dv, ok := dnatVerdict(in, conns, win); ok {
		return merge(v, dv)
	}
	if bv, ok := backendVerdict(in, conns, views, win); ok {
		return merge(v, bv)
	}
	if av, ok := appVerdict(in, conns, win); ok {
		return merge(v, av)
	}
	v.Class = Healthy
	v.Summary = fmt.Sprintf("no fault observed: %d connections from %s to %s in the last %s, none failed", len(conns), in.From.Arg, in.To.Arg, win)
	v.Evidence = append(v.Evidence, outcomeLine(conns))
	if be := backendLine(conns); be != "" {
		v.Evidence = append(v.Evidence, be)
	}
	v.Evidence = append(v.Evidence, v.paths...)
	v.Next = "if the application still reports errors, look above L4: its logs and `layerscope observe --pod FROM -o json` while it fails"
	return v
}

func merge(base, v Verdict) Verdict {
	v.Connections, v.Hops = base.Connections, base.Hops
	v.Evidence = append(v.Evidence, base.paths...)
	return v
}

func humanWindow(d time.Duration) string {
	if d <= 0 {
		return "history"
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	return s
}

// inWindow reports whether c had packets within the window: the history
// query selects events by their time, and a connection's final event can
// come after the window started although its packets all came before.
func inWindow(in *Input, c *api.Connection) bool {
	return in.Since <= 0 || c.Last.IsZero() || !c.Last.Before(in.Now.Add(-in.Since))
}

// matching returns one view per connection from FROM to TO on each node:
// the pre-DNAT view when there is one (it names the service and, through
// conntrack, the backend), else the direct view, else the post view; and
// every view of them (the hops of a DNATed connection after the DNAT are
// in its post view, those on the backend's node in that node's view).
func matching(in *Input) (conns, views []conn) {
	rank := map[string]int{api.ViewPre: 0, api.ViewDirect: 1, api.ViewPost: 2}
	var out []conn
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		latest := api.Latest(n.Connections)
		best := map[string]int{}
		for i := range latest {
			c := &latest[i]
			if !fromTo(in, c) || !inWindow(in, c) {
				continue
			}
			views = append(views, conn{node: n.Node, c: c, failed: failing(c, in.Now)})
			if j, ok := best[c.ID]; ok && rank[latest[j].View] <= rank[c.View] {
				continue
			}
			best[c.ID] = i
		}
		idx := make([]int, 0, len(best))
		for _, i := range best {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			out = append(out, conn{node: n.Node, c: &latest[i], failed: failing(&latest[i], in.Now)})
		}
	}
	// The same connections as other nodes saw them after the DNAT (client
	// → backend, without the service): their hops are the rest of the path.
	type key struct{ client, backend, proto string }
	keys := map[key]bool{}
	for _, v := range views {
		keys[key{v.c.Client.Addr, v.c.Backend.Addr, v.c.Protocol}] = true
	}
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		for _, c := range api.Latest(n.Connections) {
			if !fromTo(in, &c) && inWindow(in, &c) && keys[key{c.Client.Addr, c.Backend.Addr, c.Protocol}] {
				views = append(views, conn{node: n.Node, c: &c, failed: failing(&c, in.Now)})
			}
		}
	}
	return dedupeNodes(out), views
}

// dedupeNodes keeps each connection once when several nodes saw it: the
// client's node is the one whose view names the service (pre), or, for a
// direct connection, the first node that reported it.
func dedupeNodes(cs []conn) []conn {
	type key struct{ client, backend, proto string }
	seen := map[key]int{}
	var out []conn
	for _, c := range cs {
		k := key{c.c.Client.Addr, c.c.Backend.Addr, c.c.Protocol}
		if i, ok := seen[k]; ok {
			if out[i].c.View != api.ViewPre && c.c.View == api.ViewPre {
				out[i] = c
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, c)
	}
	return out
}

func fromTo(in *Input, c *api.Connection) bool {
	if !in.From.has(c.Client.IP, c.Client.Port) {
		return false
	}
	if c.Service != nil && in.To.has(c.Service.IP, c.Service.Port) {
		return true
	}
	return in.To.has(c.Backend.IP, c.Backend.Port)
}

func fromOnly(in *Input) (n int, others map[string]int) {
	others = map[string]int{}
	for ni := range in.Nodes {
		for _, c := range api.Latest(in.Nodes[ni].Connections) {
			if in.From.has(c.Client.IP, c.Client.Port) {
				n++
				dst := c.Backend.Addr
				if c.Service != nil {
					dst = c.Service.Addr
				}
				others[dst]++
			}
		}
	}
	return n, others
}

func noTraffic(in *Input, win string) Verdict {
	v := Verdict{Class: NoTraffic}
	n, others := fromOnly(in)
	v.Summary = fmt.Sprintf("no traffic from %s to %s observed in the last %s", in.From.Arg, in.To.Arg, win)
	if n == 0 {
		v.Evidence = append(v.Evidence, fmt.Sprintf("no connection from %s at all on the agents asked", in.From.Arg))
		v.Next = "check that FROM runs and sends (kubectl exec into it and connect by hand), and that the agent of FROM's node was asked (--agent) and captures its veth (`layerscope status`)"
	} else {
		v.Evidence = append(v.Evidence, fmt.Sprintf("%d other connections from %s: %s", n, in.From.Arg, topCounts(others, 5)))
		v.Next = "the application does not connect to TO: check the address or name it is configured with (env, config map) against TO"
	}
	return v
}

func dnsVerdict(in *Input, win string) Verdict {
	var conns []api.Connection
	named := false
	for ni := range in.Nodes {
		for _, c := range api.Latest(in.Nodes[ni].Connections) {
			if c.L7 == nil || c.L7.App != "dns" || !in.From.has(c.Client.IP, c.Client.Port) || c.View == api.ViewPost {
				continue
			}
			conns = append(conns, c)
			named = named || c.L7.Name != ""
			for _, x := range c.L7.Exchanges {
				named = named || x.Name != ""
			}
		}
	}
	// With names, only TO's queries count; the answers for other names are
	// listed apart. Without any (an agent that keeps no names), every
	// answer FROM received counts.
	to := dnsTarget(in.To.DNSName)
	rcodes, others, asked := map[string]int{}, map[string]int{}, map[string]int{}
	var queries, unanswered int
	var last time.Time
	for i := range conns {
		c := &conns[i]
		if !named || to.matches(c.L7.Name, c.L7.NameTruncated, c.Client.Namespace) {
			queries += int(c.L7.Requests)
			unanswered += int(c.L7.Unanswered)
			if named && c.L7.Unanswered > 0 {
				asked[displayName(c.L7.Name, c.L7.NameTruncated)] += 0 // listed, no answer
			}
		}
		for _, x := range c.L7.Exchanges {
			if named && !to.matches(x.Name, x.NameTruncated, c.Client.Namespace) {
				others[x.Rcode]++
				continue
			}
			rcodes[x.Rcode]++
			if named {
				asked[displayName(x.Name, x.NameTruncated)]++
			}
			if x.Time.After(last) {
				last = x.Time
			}
		}
	}
	v := Verdict{}
	what := ""
	if named {
		what = " for " + in.To.Arg
		if len(asked) > 0 {
			what = " for " + strings.Join(slices.Sorted(maps.Keys(asked)), ", ")
		}
	}
	ev := fmt.Sprintf("%d DNS queries from %s%s in the last %s; answers %s; %d unanswered", queries, in.From.Arg, what, win, topCounts(rcodes, 6), unanswered)
	switch {
	case queries == 0 && named:
		v.Class = NoTraffic
		v.Summary = fmt.Sprintf("%s is not an address, and %s sent no DNS query for it (%s) in the last %s", in.To.Arg, in.From.Arg, to.describe(), win)
		v.Next = "check the name FROM is configured with against TO; the evidence lists the answers FROM got for other names"
	case queries == 0:
		v.Class = NoTraffic
		v.Summary = fmt.Sprintf("%s is not an address, and %s sent no DNS query in the last %s", in.To.Arg, in.From.Arg, win)
		v.Next = "check that FROM resolves names through the cluster DNS (its /etc/resolv.conf) and that the agent of FROM's node was asked"
	case rcodes["NXDOMAIN"] > 0:
		v.Class = DNSNXDomain
		v.Summary = fmt.Sprintf("DNS: NXDOMAIN for queries of %s: the name %s does not exist (wrong name or namespace)", in.From.Arg, in.To.Arg)
		v.Next = "kubectl get svc -A | grep the service name; use <service>.<namespace>.svc.cluster.local, and check the namespace FROM runs in against the search path"
	case rcodes["SERVFAIL"] > 0 || unanswered > 0 && rcodes["NOERROR"] == 0:
		v.Class = DNSServFail
		v.Summary = fmt.Sprintf("DNS: the server fails (%s) for queries of %s: the DNS server is broken", topCounts(rcodes, 3), in.From.Arg)
		v.Next = "kubectl -n kube-system logs -l k8s-app=kube-dns; check CoreDNS's upstreams and its Corefile"
	default:
		v.Class = Healthy
		v.Summary = fmt.Sprintf("no fault observed in DNS: %s's queries are answered; diagnose the address %s resolves to", in.From.Arg, in.To.Arg)
		v.Next = "layerscope diagnose FROM <the resolved IP:port>"
	}
	v.Evidence = append(v.Evidence, ev)
	if len(others) > 0 {
		n := 0
		for _, k := range others {
			n += k
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("%d answers for other names, not judged: %s", n, topCounts(others, 6)))
	}
	if !last.IsZero() {
		v.Evidence = append(v.Evidence, "last answer at "+last.Format(time.RFC3339Nano))
	}
	return v
}

// dnsName is TO as a DNS name, lower case, without the final dot; fqdn
// when it was given with one (no search path applies then).
type dnsName struct {
	name string
	fqdn bool
}

func dnsTarget(s string) dnsName {
	n := strings.ToLower(s)
	return dnsName{name: strings.TrimSuffix(n, "."), fqdn: strings.HasSuffix(n, ".")}
}

// clusterSearch are the search suffixes of a pod's resolv.conf after its
// own "<namespace>.svc.cluster.local".
var clusterSearch = []string{"svc.cluster.local", "cluster.local"}

// matches reports whether a queried name (as the API gives it, cut to a
// prefix when truncated) is TO itself or TO expanded the way the
// resolv.conf of a pod in namespace ns does: TO.<ns>.svc.cluster.local,
// TO.svc.cluster.local, TO.cluster.local. When ns is unknown, TO.<any
// label>.svc.cluster.local matches.
func (t dnsName) matches(q string, truncated bool, ns string) bool {
	if q == "" || t.name == "" {
		return false
	}
	q = strings.ToLower(strings.TrimSuffix(q, "."))
	eq := func(c string) bool { return q == c || truncated && strings.HasPrefix(c, q) }
	if eq(t.name) {
		return true
	}
	if t.fqdn {
		return false
	}
	for _, s := range clusterSearch {
		if eq(t.name + "." + s) {
			return true
		}
	}
	if ns != "" {
		return eq(t.name + "." + strings.ToLower(ns) + "." + clusterSearch[0])
	}
	rest, ok := strings.CutPrefix(q, t.name+".")
	if !ok {
		return false
	}
	if truncated {
		return true // TO.… cut before the end: as far as can be told
	}
	label, ok := strings.CutSuffix(rest, "."+clusterSearch[0])
	return ok && label != "" && !strings.Contains(label, ".")
}

// describe lists the names TO stands for, for a summary.
func (t dnsName) describe() string {
	if t.fqdn {
		return t.name
	}
	return t.name + " or " + t.name + ".<namespace>.svc.cluster.local, ." + strings.Join(clusterSearch, ", .")
}

// displayName is a queried name for the evidence, "…" marking a cut one.
func displayName(name string, truncated bool) string {
	if truncated {
		return name + "…"
	}
	return name
}

func conntrackVerdict(in *Input, conns []conn, failed int, win string) (Verdict, bool) {
	var lines []string
	for _, n := range in.Nodes {
		ct := statusCT(n.Status)
		if ct == nil {
			continue
		}
		if ct.Drop+ct.InsertFailed+ct.EarlyDrop == 0 && ct.Fill < 0.95 {
			continue
		}
		lines = append(lines, fmt.Sprintf("node %s: conntrack %d of %d entries (%.0f%%), drop %d, insert_failed %d, early_drop %d",
			n.Node, ct.Entries, ct.Limit, 100*ct.Fill, ct.Drop, ct.InsertFailed, ct.EarlyDrop))
	}
	if len(lines) == 0 || failed == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: Conntrack}
	v.Summary = fmt.Sprintf("conntrack exhaustion: the table is full or dropping, and %d of %d connections from %s to %s failed in the last %s", failed, len(conns), in.From.Arg, in.To.Arg, win)
	v.Evidence = append(lines, outcomeLine(conns))
	v.Next = "conntrack -S (drop, insert_failed per CPU), conntrack -C against sysctl net.netfilter.nf_conntrack_max, and `layerscope status` for who fills the table; raise nf_conntrack_max or shorten the TIME_WAIT timeouts"
	return v, true
}

func statusCT(s *api.Status) *api.ConntrackStatus {
	if s == nil {
		return nil
	}
	return s.Conntrack
}

func mtuVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	var lines []string
	minMTU := uint32(0)
	reports := 0
	for _, c := range conns {
		for _, r := range c.c.PMTU {
			reports += max(r.Count, 1)
			if minMTU == 0 || r.MTU < minMTU {
				minMTU = r.MTU
			}
		}
	}
	for _, n := range in.Nodes {
		if n.Status == nil {
			continue
		}
		for _, r := range n.Status.MTU.Reports {
			if !aboutFrom(in, r.Flow) {
				continue
			}
			if reports == 0 {
				reports += max(r.Count, 1)
			}
			if minMTU == 0 || r.MTU < minMTU {
				minMTU = r.MTU
			}
			lines = append(lines, fmt.Sprintf("node %s: frag-needed MTU %d from %s about %s on %s (%d×, last %s)", n.Node, r.MTU, r.Reporter, r.Flow, r.Interface, r.Count, r.Time.Format(time.RFC3339)))
		}
		for _, m := range n.Status.MTU.Mismatches {
			switch {
			case m.Cleared == nil:
				lines = append(lines, fmt.Sprintf("node %s: interface %s has MTU %d, its path carries %d (%s)", n.Node, m.Interface, m.Actual, m.Expected, m.Reason))
			case in.Since <= 0 || !m.Cleared.Before(in.Now.Add(-in.Since)):
				lines = append(lines, fmt.Sprintf("node %s: interface %s had MTU %d, its path carries %d (%s), from %s until %s", n.Node, m.Interface, m.Actual, m.Expected, m.Reason,
					m.Since.Format(time.RFC3339), m.Cleared.Format(time.RFC3339)))
			}
		}
		for _, o := range n.Status.MTU.Oversize {
			if in.From.has(o.Source, 0) {
				lines = append(lines, fmt.Sprintf("node %s: %s sent a %d-byte %s packet to %s, the path MTU is %d", n.Node, o.Source, o.Size, o.Protocol, o.Dest, o.PathMTU))
			}
		}
	}
	if minMTU == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: MTU}
	v.Summary = fmt.Sprintf("L3 MTU mismatch: packets from %s to %s are too big for the path; frag-needed MTU %d (%d reports in the last %s)", in.From.Arg, in.To.Arg, minMTU, reports, win)
	v.Evidence = lines
	v.Next = fmt.Sprintf("ip link show in FROM's pod and on the node: the pod's MTU must not exceed %d (the overlay's); fix the CNI's MTU setting, and check that ICMP frag-needed is not filtered", minMTU)
	return v, true
}

// aboutFrom reports whether a PMTU report's flow ("proto src:port ->
// dst:port") was sent by FROM.
func aboutFrom(in *Input, flow string) bool {
	f := strings.Fields(flow)
	for _, w := range f {
		if ap, err := netip.ParseAddrPort(w); err == nil {
			return slices.Contains(in.From.Addrs, ap.Addr().Unmap())
		}
		if a, err := netip.ParseAddr(w); err == nil {
			return slices.Contains(in.From.Addrs, a.Unmap())
		}
	}
	return false
}

func dnatVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	var (
		toVIP, dnat, answered int
		svcNS, svcName        string // the Service TO's address belongs to, when the agents know it
	)
	for _, c := range conns {
		if c.c.Service != nil || c.c.NAT != nil && c.c.NAT.DNAT {
			dnat++
			continue
		}
		if in.To.has(c.c.Backend.IP, c.c.Backend.Port) {
			toVIP++
			if c.c.Backend.Service != "" {
				svcNS, svcName = c.c.Backend.Namespace, c.c.Backend.Service
			}
			if c.c.Packets.Server > 0 && c.c.Outcome != "refused" {
				answered++
			}
		}
	}
	// A service address that nobody translates and nobody answers from is
	// a service without endpoints (kube-proxy rejects) or without rules.
	if dnat > 0 || toVIP == 0 || answered > 0 || !(in.To.Service || svcName != "" || serviceSeen(in)) {
		return Verdict{}, false
	}
	failed := 0
	for _, c := range conns {
		if c.failed {
			failed++
		}
	}
	if failed == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: NoDNAT}
	v.Summary = fmt.Sprintf("service: %d connections from %s to %s in the last %s, none DNATed to a backend and none answered: the service has no endpoints, or %s is not a service address", toVIP, in.From.Arg, in.To.Arg, win, in.To.Arg)
	if ready, node, ok := readyEndpoints(in, svcNS, svcName); ok {
		if ready == 0 {
			v.Summary = fmt.Sprintf("service: %s/%s has no ready endpoints (its EndpointSlices are empty): %d connections from %s to %s in the last %s, none DNATed, none answered", svcNS, svcName, toVIP, in.From.Arg, in.To.Arg, win)
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("endpoints of %s/%s: %d ready (Kubernetes metadata of %s)", svcNS, svcName, ready, node))
	}
	v.Evidence = append(v.Evidence, outcomeLine(conns))
	v.Next = "kubectl get endpointslices -l kubernetes.io/service-name=<svc> (empty: check the Service's selector against the pods' labels and their readiness); on the node, kube-proxy's rules for <VIP>: iptables-save | grep <VIP> (iptables mode) or nft list table ip kube-proxy | grep <VIP> (nftables mode)"
	return v, true
}

// readyEndpoints returns the ready endpoint count of the Service
// namespace/name from the first agent whose status lists it.
func readyEndpoints(in *Input, namespace, name string) (ready int, node string, ok bool) {
	if name == "" {
		return 0, "", false
	}
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		if n.Status == nil {
			continue
		}
		for _, e := range n.Status.Endpoints {
			if e.Namespace == namespace && e.Service == name {
				return e.Ready, n.Node, true
			}
		}
	}
	return 0, "", false
}

// serviceSeen reports whether any agent saw a connection to TO's address
// DNATed (from any client, any port): TO is a service address.
func serviceSeen(in *Input) bool {
	for ni := range in.Nodes {
		for i := range in.Nodes[ni].Connections {
			c := &in.Nodes[ni].Connections[i]
			if c.Service == nil {
				continue
			}
			if a, err := netip.ParseAddr(c.Service.IP); err == nil && slices.Contains(in.To.Addrs, a.Unmap()) {
				return true
			}
		}
	}
	return false
}

type backendStat struct {
	addr     string
	attempts int
	outcomes map[string]int
	failed   int
	last     time.Time
}

func backendStats(conns []conn) []*backendStat {
	by := map[string]*backendStat{}
	for _, c := range conns {
		b := by[c.c.Backend.Addr]
		if b == nil {
			b = &backendStat{addr: c.c.Backend.Addr, outcomes: map[string]int{}}
			by[b.addr] = b
		}
		b.attempts++
		b.outcomes[c.c.Outcome]++
		if c.failed && l4Failed(c.c) {
			b.failed++
			if c.c.Last.After(b.last) {
				b.last = c.c.Last
			}
		}
	}
	out := make([]*backendStat, 0, len(by))
	for _, b := range by {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].failed != out[j].failed {
			return out[i].failed > out[j].failed
		}
		return out[i].addr < out[j].addr
	})
	return out
}

// synPatience is how long a SYN may stay unanswered before an active
// connection counts as failing (a SYN-ACK takes a round trip: well under
// a second inside a cluster).
const synPatience = time.Second

// failing reports whether a connection failed, or is failing: its SYN is
// unanswered after a retransmission or after synPatience, although the
// connection is still active (its final event comes only when the flow
// times out).
func failing(c *api.Connection, now time.Time) bool {
	if c.Failed {
		return true
	}
	if c.Outcome != "syn_sent" || c.TCP != nil && c.TCP.SYNACK {
		return false
	}
	return c.TCP != nil && c.TCP.SYNs > 1 || !now.IsZero() && now.Sub(c.Last) > synPatience
}

// newest returns the latest status or event time of the evidence.
func newest(in *Input) time.Time {
	var t time.Time
	for _, n := range in.Nodes {
		if n.Status != nil && n.Status.Time.After(t) {
			t = n.Status.Time
		}
		for i := range n.Connections {
			if n.Connections[i].Time.After(t) {
				t = n.Connections[i].Time
			}
		}
	}
	return t
}

func l4Failed(c *api.Connection) bool {
	switch c.Outcome {
	case "timeout", "refused", "reset", "unreplied", "syn_sent":
		return true
	}
	return false
}

func backendVerdict(in *Input, conns, views []conn, win string) (Verdict, bool) {
	bs := backendStats(conns)
	total, failed := 0, 0
	for _, b := range bs {
		total += b.attempts
		failed += b.failed
	}
	if failed == 0 {
		return Verdict{}, false
	}
	worst := bs[0]
	how := describeFailure(worst.outcomes)
	if how == silent {
		if pv, ok := pathBreak(in, views, worst); ok {
			return pv, true
		}
	}
	v := Verdict{Class: Backend}
	v.Summary = fmt.Sprintf("L4: backend %s %s: %d of its %d connections failed; %d of %d connections from %s to %s failed (%s) in the last %s",
		worst.addr, how, worst.failed, worst.attempts, failed, total, in.From.Arg, in.To.Arg, ratioText(failed, total), win)
	for _, b := range bs {
		v.Evidence = append(v.Evidence, fmt.Sprintf("backend %s: %d connections, %d failed (%s)", b.addr, b.attempts, b.failed, topCounts(b.outcomes, 6)))
	}
	if !worst.last.IsZero() {
		v.Evidence = append(v.Evidence, "last failure at "+worst.last.Format(time.RFC3339Nano))
	}
	if pv, ok := pathEvidence(views, worst.addr); ok {
		v.Evidence = append(v.Evidence, pv)
	}
	v.Next = fmt.Sprintf("kubectl get pods -o wide | grep %s (CrashLoopBackOff? not ready but still an endpoint?); connect to %s directly from another pod; check its readiness probe and logs",
		hostOf(worst.addr), worst.addr)
	if how == silent {
		v.Next = fmt.Sprintf("the backend stays silent: check NetworkPolicies selecting it, that %s is the pod's port, and the path (`layerscope capture --filter 'host %s'` on both nodes)", worst.addr, hostOf(worst.addr))
	}
	return v, true
}

// silent describes a backend whose SYNs go unanswered.
const silent = "does not answer (SYN without SYN-ACK)"

// pathBreak finds where unanswered connections to a backend get lost: the
// backend's node (where an agent saw other connections to its address)
// never saw them, although they left the client's node.
func pathBreak(in *Input, views []conn, b *backendStat) (Verdict, bool) {
	ip := hostOf(b.addr)
	failedOn := map[string]bool{}
	var last api.Hop
	lastNode := ""
	for _, c := range views {
		if c.c.Backend.Addr != b.addr || !c.failed {
			continue
		}
		failedOn[c.node] = true
		for _, h := range c.c.Hops {
			if h.First.After(last.First) || lastNode == "" {
				last, lastNode = h, c.node
			}
		}
	}
	home := ""
	for ni := range in.Nodes {
		n := &in.Nodes[ni]
		if failedOn[n.Node] {
			continue
		}
		for i := range n.Connections {
			c := &n.Connections[i]
			if c.Backend.IP == ip && !failing(c, in.Now) {
				home = n.Node
				break
			}
		}
	}
	if home == "" || lastNode == "" {
		return Verdict{}, false
	}
	v := Verdict{Class: Path}
	v.Summary = fmt.Sprintf("path: %d connections to %s left %s (last seen on %s, %s) and never reached %s, where the agent sees other traffic of %s",
		b.failed, b.addr, lastNode, last.Interface, last.Role, home, ip)
	v.Evidence = append(v.Evidence, fmt.Sprintf("backend %s: %d connections, %d failed (%s)", b.addr, b.attempts, b.failed, topCounts(b.outcomes, 6)))
	if pv, ok := pathEvidence(views, b.addr); ok {
		v.Evidence = append(v.Evidence, pv)
	}
	v.Next = fmt.Sprintf("the hop between %s/%s and %s drops them: check the overlay (VXLAN UDP 4789 allowed between the nodes? `ip -s link show` on both ends), routes to %s's pod CIDR, and capture on both nodes: layerscope capture --filter 'host %s'",
		lastNode, last.Interface, home, home, ip)
	return v, true
}

// pathEvidence says on which hops the failed connections to addr were
// seen and whether a hop with server packets exists.
func pathEvidence(conns []conn, addr string) (string, bool) {
	seen := map[string]int{}
	for _, c := range conns {
		if c.c.Backend.Addr != addr || !c.failed {
			continue
		}
		for _, h := range c.c.Hops {
			seen[c.node+"/"+h.Interface]++
		}
	}
	if len(seen) == 0 {
		return "", false
	}
	return "failed connections seen on " + topCounts(seen, 8), true
}

func describeFailure(outcomes map[string]int) string {
	switch {
	case outcomes["refused"] > 0:
		return "refuses (RST to the SYN)"
	case outcomes["reset"] > 0:
		return "resets established connections"
	case outcomes["timeout"] > 0 || outcomes["syn_sent"] > 0:
		return silent
	case outcomes["unreplied"] > 0:
		return "does not reply"
	}
	return "fails"
}

func ratioText(failed, total int) string {
	if total == 0 || failed == 0 {
		return "none"
	}
	if failed == total {
		return "all"
	}
	n := float64(total) / float64(failed)
	return fmt.Sprintf("about 1 in %.0f", n)
}

func hostOf(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String()
	}
	return addr
}

func appVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	errs, total := 0, 0
	codes := map[string]int{}
	for _, c := range conns {
		if c.c.L7 == nil {
			continue
		}
		total += int(c.c.L7.Responses)
		errs += int(c.c.L7.Errors)
		for _, x := range c.c.L7.Exchanges {
			if x.Failed {
				if x.Status != 0 {
					codes[strconv.Itoa(x.Status)]++
				} else {
					codes[x.Rcode]++
				}
			}
		}
	}
	if errs == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: App}
	v.Summary = fmt.Sprintf("L7: %d of %d responses from %s to %s were errors (%s) in the last %s; L3 and L4 work", errs, total, in.To.Arg, in.From.Arg, topCounts(codes, 4), win)
	v.Evidence = append(v.Evidence, outcomeLine(conns))
	v.Next = "the network delivers: read the server's logs for the failing requests"
	return v, true
}

func outcomeLine(conns []conn) string {
	o := map[string]int{}
	for _, c := range conns {
		o[c.c.Outcome]++
	}
	return fmt.Sprintf("%d connections: %s", len(conns), topCounts(o, 8))
}

func backendLine(conns []conn) string {
	be := map[string]int{}
	dnat := false
	for _, c := range conns {
		be[c.c.Backend.Addr]++
		dnat = dnat || c.c.Service != nil
	}
	if !dnat {
		return ""
	}
	return "DNAT to backends: " + topCounts(be, 8)
}

// pathLines lists, per backend, the hops its connections were seen on in
// the order of their first packet (the agents' clocks are assumed in
// step): "path to 10.244.1.8:8080: node-1/veth-pod-a (pod) → …".
func pathLines(views []conn) []string {
	by := map[string][]conn{}
	for _, c := range views {
		by[c.c.Backend.Addr] = append(by[c.c.Backend.Addr], c)
	}
	backends := make([]string, 0, len(by))
	for b := range by {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	var out []string
	for _, b := range backends {
		if hs := hops(by[b]); len(hs) > 0 {
			out = append(out, fmt.Sprintf("path to %s: %s", b, strings.Join(hs, " → ")))
		}
	}
	return out
}

// hops lists the interfaces the connections were seen on, per node, in the
// order of their first packet.
func hops(conns []conn) []string {
	type hop struct {
		name  string
		first time.Time
	}
	best := map[string]time.Time{}
	for _, c := range conns {
		for _, h := range c.c.Hops {
			k := fmt.Sprintf("%s/%s (%s)", c.node, h.Interface, h.Role)
			if t, ok := best[k]; !ok || h.First.Before(t) {
				best[k] = h.First
			}
		}
	}
	hs := make([]hop, 0, len(best))
	for k, t := range best {
		hs = append(hs, hop{k, t})
	}
	sort.Slice(hs, func(i, j int) bool {
		if !hs[i].first.Equal(hs[j].first) {
			return hs[i].first.Before(hs[j].first)
		}
		return hs[i].name < hs[j].name
	})
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.name
	}
	return out
}

// topCounts prints "a×3, b×1" by count, then name.
func topCounts(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	kvs := make([]kv, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	var b strings.Builder
	for i, e := range kvs {
		if i == n {
			fmt.Fprintf(&b, ", …%d more", len(kvs)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s×%d", e.k, e.v)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
