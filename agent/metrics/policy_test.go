package metrics

import (
	"strings"
	"testing"

	"github.com/layerscope/layerscope/agent/policy"
)

// TestPolicyDenied exports one series per policy and direction, with the
// pod label only when asked, and nothing without an evaluation.
func TestPolicyDenied(t *testing.T) {
	e := policy.Explanation{Verdict: policy.VerdictPolicy, Denials: []policy.Denial{
		{Direction: policy.Egress, Pod: policy.Ref{Namespace: "front", Name: "a-1"}, Policies: []policy.Ref{{Namespace: "front", Name: "no-egress"}}},
		{Direction: policy.Ingress, Pod: policy.Ref{Namespace: "shop", Name: "b-1"}, Policies: []policy.Ref{{Namespace: "shop", Name: "allow-x"}, {Namespace: "shop", Name: "deny"}},
			Isolating: []policy.Ref{{Namespace: "shop", Name: "deny"}}},
	}}
	d := &policy.Denied{}
	d.Observe(e)
	d.Observe(e)
	d.Observe(policy.Explanation{Verdict: policy.VerdictUnexplained})
	got := gather(t, Policy(d))
	for _, want := range []string{
		`layerscope_policy_denied_connections_total{direction="egress",namespace="front",policy="no-egress"} 2`,
		`layerscope_policy_denied_connections_total{direction="ingress",namespace="shop",policy="deny"} 2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("exposition lacks %s:\n%s", want, got)
		}
	}
	byPod := &policy.Denied{ByPod: true}
	byPod.Observe(e)
	if got := gather(t, Policy(byPod)); !strings.Contains(got, `layerscope_policy_denied_connections_total{direction="ingress",namespace="shop",pod="b-1",policy="deny"} 1`) {
		t.Errorf("pod label missing:\n%s", got)
	}
	if got := gather(t, Policy(nil)); strings.Contains(got, "layerscope_policy") {
		t.Errorf("series without an evaluation:\n%s", got)
	}
}
