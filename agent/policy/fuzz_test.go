package policy

import (
	"encoding/json"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// FuzzSetPolicy feeds arbitrary NetworkPolicy specs (as JSON) to a store:
// nothing panics, and a policy is either kept or counted invalid.
func FuzzSetPolicy(f *testing.F) {
	for _, seed := range []string{
		`{"podSelector":{},"policyTypes":["Ingress"]}`,
		`{"podSelector":{"matchLabels":{"app":"backend"}},"ingress":[{}]}`,
		`{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"b"}},"podSelector":{"matchLabels":{"app":"client"}}}],"ports":[{"port":"http"},{"protocol":"UDP","port":53},{"port":8000,"endPort":8100}]}]}`,
		`{"podSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["client"]}]},"egress":[{"to":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.1.0/24"]}}]}]}`,
		`{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"fd00::/8","except":["fd00:1::/32"]}}],"ports":[{"port":0,"endPort":-1}]}]}`,
		`{"podSelector":{"matchExpressions":[{"key":"app","operator":"Exists","values":["x"]}]},"ingress":[{"from":[{}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	flows := []Flow{
		flow(prodCliIP, backendIP, 8080), flow(devCliIP, backendIP, 53), flow(externalIP, backendIP, 8050),
		flow(backendIP, prodCliIP, 80), flow("fd00::5", backendIP, 80),
	}
	s := testStore(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec networkingv1.NetworkPolicySpec
		if json.Unmarshal(b, &spec) != nil {
			return
		}
		p := np("fuzz", "", nil, nil, nil)
		p.Spec = spec
		before := s.Stats()
		err := s.SetPolicy(p)
		after := s.Stats()
		if (err != nil) != (after.Invalid == 1 && after.Policies == 0) {
			t.Fatalf("error %v, stats %+v (before %+v)", err, after, before)
		}
		for _, fl := range flows {
			e := s.Explain(Observation{Flow: fl})
			allowed, _ := s.Allowed(fl)
			if allowed != (e.Verdict == VerdictUnexplained) {
				t.Fatalf("%s: Allowed %v, Explain %s", fl, allowed, e)
			}
			_ = e.String()
		}
		s.DeletePolicy("prod", "fuzz")
	})
}
