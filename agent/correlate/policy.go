package correlate

// Values of Policy.Verdict.
const (
	// PolicyDenied: NetworkPolicies deny the connection (Denials).
	PolicyDenied = "policy"
	// PolicyUnexplained: the NetworkPolicies allow the connection, or none
	// selects its pods: whatever dropped it was not a NetworkPolicy (the
	// CNI, the node's firewall, routing).
	PolicyUnexplained = "unexplained"
	// PolicyUnknown: the agent had no complete copy of the policies yet.
	PolicyUnknown = "unknown"
)

// Policy is what the Kubernetes NetworkPolicies say of a failed
// connection, evaluated once when it failed. It is immutable once built:
// sinks may keep the pointer.
type Policy struct {
	// Verdict is PolicyDenied, PolicyUnexplained or PolicyUnknown.
	Verdict string
	// Detail is the explanation in one line: the denying policies and the
	// rule to change, or the rules that allow the connection.
	Detail string
	// Denials has one entry per denying direction: egress from the client
	// first, then ingress to the backend.
	Denials []PolicyDenial
	// AllowedBy lists, for PolicyUnexplained, the rules that allow the
	// connection ("namespace/name spec.ingress[0]").
	AllowedBy []string
}

// PolicyDenial is one direction that denies a connection.
type PolicyDenial struct {
	// Direction is "ingress" (the backend's policies) or "egress" (the
	// client's).
	Direction string
	// Namespace and Pod name the isolated pod.
	Namespace, Pod string
	// Policy is the policy the denial is reported under (in Namespace): the
	// first pure default-deny policy selecting Pod, else the first
	// selecting one. Policies lists every policy selecting Pod.
	Policy   string
	Policies []string
	// Rule is the rule that would have to change ("name spec.ingress[0]",
	// or "name (no ingress rule)"), and RuleChange what of it does not
	// match.
	Rule, RuleChange string
}
