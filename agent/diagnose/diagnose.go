package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
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
	// Policy: NetworkPolicies deny the failed connections. It is walked
	// before Backend; it comes last here so that the other exit codes
	// stay what they were.
	Policy
	numClasses
)

var classNames = [numClasses]string{"healthy", "no-traffic", "dns-nxdomain", "dns-servfail", "conntrack", "no-dnat", "mtu", "backend", "path", "app", "policy"}

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
	case Policy:
		return "policy"
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
// all, conntrack, L3 MTU, NetworkPolicies, the service's DNAT, L4
// backends, the path between hops, L7; else Healthy.
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
	// A connection a NetworkPolicy denied is no evidence of a dropping
	// conntrack table.
	failed := 0
	for _, c := range conns {
		if c.failed && (c.c.Policy == nil || c.c.Policy.Verdict != api.PolicyDenied) {
			failed++
		}
	}
	if cv, ok := conntrackVerdict(in, conns, failed, win); ok {
		if note, ok := unexplainedNote(views, ""); ok {
			cv.Evidence = append(cv.Evidence, note)
		}
		return merge(v, cv)
	}
	if mv, ok := mtuVerdict(in, conns, win); ok {
		return merge(v, mv)
	}
	// Before the DNAT: a SYN an enforcer drops in the netfilter hooks
	// leaves no conntrack entry, so its connection looks never DNATed.
	if pv, ok := policyVerdict(in, conns, views, win); ok {
		return merge(v, pv)
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
