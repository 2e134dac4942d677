package policy

import (
	"sort"
	"sync"
)

// DeniedKey is a series of layerscope_policy_denied_connections_total: the
// policy a denial is reported under (Denial.Blame), its direction and,
// when pod labels are on, the isolated pod.
type DeniedKey struct {
	Namespace, Policy string
	Direction         Direction
	Pod               string // empty unless Denied counts by pod
}

// Denied counts the connections each policy denied, for the metric
// layerscope_policy_denied_connections_total{namespace,policy,direction}
// (and pod, opt-in). Safe for concurrent use; the zero value counts
// without pods.
type Denied struct {
	// ByPod adds the isolated pod's name to the key; set before use.
	ByPod bool

	mu sync.Mutex
	n  map[DeniedKey]uint64
}

// Observe counts an explanation: one connection for each of its denials
// (a flow denied both ways counts under both policies). Other verdicts
// are not counted.
func (d *Denied) Observe(e Explanation) {
	if e.Verdict != VerdictPolicy {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[DeniedKey]uint64{}
	}
	for _, den := range e.Denials {
		b := den.Blame()
		k := DeniedKey{Namespace: b.Namespace, Policy: b.Name, Direction: den.Direction}
		if d.ByPod {
			k.Pod = den.Pod.Name
		}
		d.n[k]++
	}
}

// DeniedCount is one series and its value.
type DeniedCount struct {
	DeniedKey
	Connections uint64
}

// Snapshot returns every series, sorted, for a scrape.
func (d *Denied) Snapshot() []DeniedCount {
	d.mu.Lock()
	out := make([]DeniedCount, 0, len(d.n))
	for k, v := range d.n {
		out = append(out, DeniedCount{k, v})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].DeniedKey, out[j].DeniedKey
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		if a.Direction != b.Direction {
			return a.Direction < b.Direction
		}
		return a.Pod < b.Pod
	})
	return out
}
