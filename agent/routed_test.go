package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/lab"
)

// TestLiveRoutedWiring runs the agent on a node of the routed lab (no
// bridge: /32 routes and proxy ARP): every pod veth is captured as a pod,
// and the connections DNATed on the node are joined to their Service
// backends as on the bridged lab.
func TestLiveRoutedWiring(t *testing.T) {
	l := newLabWired(t, lab.WiringRouted)
	o, err := lab.Open(&lab.Config{Prefix: l.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	if o.Wiring() != lab.WiringRouted {
		t.Errorf("lab.Open sees wiring %q, want routed", o.Wiring())
	}
	o.Close()
	ns, err := l.Namespace(lab.Node1)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := links.List(links.Config{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range ls {
		if ln.Kind == links.KindBridge {
			t.Fatalf("the routed node has a bridge: %s", ln.Name)
		}
	}

	a := startAgent(t, l, lab.Node1)
	roles := map[string]flow.Role{}
	for _, at := range a.workers.Manager().Attached() {
		roles[at.Link.Name] = at.Link.Role
	}
	want := map[string]flow.Role{lab.NodeIface: flow.RoleUplink, lab.VXLANName: flow.RoleOverlay}
	for _, p := range l.Pods() {
		if p.Node == lab.Node1 {
			want[p.HostVeth] = flow.RolePod
		}
	}
	if fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("captured %v, want %v", roles, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect := map[string]float64{}
	var clients []string
	for _, q := range r.Requests {
		if !q.OK() {
			t.Fatalf("request failed on the routed lab: %+v", q)
		}
		if q.NATNode != lab.Node1 {
			continue
		}
		pod, _ := l.Pod(q.DNATBackend)
		expect[q.Target.String()+" "+netip.AddrPortFrom(pod.IP, lab.ServicePort).String()+" closed"]++
		if !slices.Contains(clients, q.Client) {
			clients = append(clients, q.Client)
		}
	}
	if len(expect) < 3 {
		t.Fatalf("the scenario DNATed too little on node-1 to test: %v", expect)
	}
	var got map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = serviceCounts(scrapeAgent(t, a))
		if fmt.Sprint(got) == fmt.Sprint(expect) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(expect) {
		t.Errorf("connections by service, backend, outcome:\n got %v\nwant %v", got, expect)
	}
	t.Logf("clients %v; joined %v", clients, got)
}
