package diagnose

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

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
