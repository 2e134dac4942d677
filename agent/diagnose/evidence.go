package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

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
