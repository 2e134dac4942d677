package policy

import (
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/layerscope/layerscope/agent/correlate"
	flowrec "github.com/layerscope/layerscope/agent/flow"
)

// TestRecords explains flow records of a connection to a Service DNATed
// to prod/backend, denied by a default deny: both views name the backend's
// pod and port, the connection is counted once, and an allowed or
// unsynced one is not counted.
func TestRecords(t *testing.T) {
	ingressOnly := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	s := testStore(t, np("default-deny", "", ingressOnly, nil, nil),
		np("allow-web", "backend", nil, from(nil, networkingv1.NetworkPolicyPeer{PodSelector: app("web")}), nil))
	cli, be := netip.MustParseAddr(prodCliIP), netip.MustParseAddr(backendIP)
	vip := netip.MustParseAddr("10.96.0.42")
	pre := flowrec.Key{Src: cli, Dst: vip, SrcPort: 40000, DstPort: 80, Proto: flowrec.ProtoTCP}
	nat := &correlate.Translation{ID: 7, Original: pre, Reply: flowrec.Key{Src: be, Dst: cli, SrcPort: 8080, DstPort: 40000, Proto: flowrec.ProtoTCP}}
	rec := &flowrec.Record{Key: pre, Outcome: flowrec.OutcomeTimeout, First: 1e9, Last: 4e9}
	rec.TCP.SYNRetransmits = 2

	o := ObservationOf(rec, nat)
	if o.Src != cli || o.Dst != be || o.Port != 8080 || o.Protocol != "TCP" || o.Evidence.Attempts != 3 {
		t.Fatalf("observation %+v", o)
	}
	x := &Records{Store: s, Denied: &Denied{}}
	p := x.Final(rec, nat)
	if p.Verdict != correlate.PolicyDenied || len(p.Denials) != 1 {
		t.Fatalf("%+v", p)
	}
	d := p.Denials[0]
	want := correlate.PolicyDenial{Direction: "ingress", Namespace: "prod", Pod: "backend", Policy: "default-deny",
		Policies: []string{"allow-web", "default-deny"}, Rule: "prod/allow-web spec.ingress[0]", RuleChange: "port matches, no from peer selects the source"}
	if d.Direction != want.Direction || d.Namespace != want.Namespace || d.Pod != want.Pod || d.Policy != want.Policy ||
		len(d.Policies) != 2 || d.Policies[0] != "allow-web" || d.Rule != want.Rule || d.RuleChange != want.RuleChange {
		t.Errorf("denial %+v, want %+v", d, want)
	}
	// The post-DNAT view of the same connection: explained, not counted
	// again.
	post := *rec
	post.Key = nat.Reply.Reverse()
	if q := x.Final(&post, nat); q.Verdict != correlate.PolicyDenied || q.Denials[0].Pod != "backend" {
		t.Errorf("post view: %+v", q)
	}
	// Active explains without counting.
	if q := x.Active(rec, nat); q.Verdict != correlate.PolicyDenied {
		t.Errorf("active: %+v", q)
	}
	if got := x.Denied.Snapshot(); len(got) != 1 || got[0].Connections != 1 || got[0].Policy != "default-deny" || got[0].Direction != Ingress {
		t.Errorf("counts %+v, want one connection under prod/default-deny ingress", got)
	}

	// From web, without conntrack: allowed by allow-web, not counted.
	direct := &flowrec.Record{Key: flowrec.Key{Src: netip.MustParseAddr(webIP), Dst: be, SrcPort: 1, DstPort: 8080, Proto: flowrec.ProtoTCP}, Outcome: flowrec.OutcomeRefused}
	if q := x.Final(direct, nil); q.Verdict != correlate.PolicyUnexplained || len(q.AllowedBy) != 1 || q.AllowedBy[0] != "prod/allow-web spec.ingress[0]" {
		t.Errorf("allowed: %+v", q)
	}
	// Not synced: unknown, not counted.
	u := &Records{Store: NewStore(), Denied: x.Denied}
	if q := u.Final(rec, &correlate.Translation{ID: 8, Original: nat.Original, Reply: nat.Reply}); q.Verdict != correlate.PolicyUnknown {
		t.Errorf("unsynced: %+v", q)
	}
	if got := x.Denied.Snapshot(); len(got) != 1 || got[0].Connections != 1 {
		t.Errorf("counts %+v after allowed and unknown verdicts", got)
	}
}

// TestRecordsServiceWithoutConntrack explains a connection to a Service
// that conntrack does not know (its SYN was dropped before the entry was
// confirmed) against the Service's backends: denied when one denies it,
// naming each denying backend once; allowed when none does.
func TestRecordsServiceWithoutConntrack(t *testing.T) {
	ingressOnly := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	s := testStore(t, np("deny-backend", "backend", ingressOnly, nil, nil))
	vip := netip.MustParseAddrPort("10.96.0.42:80")
	backends := []netip.AddrPort{netip.MustParseAddrPort(backendIP + ":8080"), netip.MustParseAddrPort(webIP + ":8080")}
	asked := 0
	x := &Records{Store: s, Denied: &Denied{}, Backends: func(svc netip.AddrPort, proto uint8, dst []netip.AddrPort) []netip.AddrPort {
		asked++
		if svc != vip || proto != flowrec.ProtoTCP {
			return dst
		}
		return append(dst, backends...)
	}}
	rec := &flowrec.Record{Key: flowrec.Key{Src: netip.MustParseAddr(prodCliIP), Dst: vip.Addr(), SrcPort: 1, DstPort: 80, Proto: flowrec.ProtoTCP}, Outcome: flowrec.OutcomeSynSent}
	p := x.Active(rec, nil)
	if p.Verdict != correlate.PolicyDenied || len(p.Denials) != 1 || p.Denials[0].Pod != "backend" || p.Denials[0].Policy != "deny-backend" {
		t.Fatalf("%+v", p)
	}
	if want := "service 10.96.0.42:80, 1 of 2 backends denied: "; len(p.Detail) < len(want) || p.Detail[:len(want)] != want {
		t.Errorf("detail %q", p.Detail)
	}
	// Known to conntrack: its DNAT target only, the backends not asked.
	nat := &correlate.Translation{ID: 3, Original: rec.Key, Reply: flowrec.Key{Src: netip.MustParseAddr(webIP), Dst: rec.Key.Src, SrcPort: 8080, DstPort: 1, Proto: flowrec.ProtoTCP}}
	if q := x.Final(rec, nat); q.Verdict != correlate.PolicyUnexplained || asked != 1 {
		t.Errorf("with conntrack: %+v, backends asked %d times", q, asked)
	}
	// Not a Service: the address itself.
	other := *rec
	other.Key.Dst = netip.MustParseAddr(backendIP)
	other.Key.DstPort = 8080
	if q := x.Active(&other, nil); q.Verdict != correlate.PolicyDenied || asked != 2 {
		t.Errorf("direct: %+v", q)
	}
}
