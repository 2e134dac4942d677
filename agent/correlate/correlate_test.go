package correlate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

var (
	client  = netip.MustParseAddr("10.244.0.8")
	vip     = netip.MustParseAddr("10.96.0.42")
	podA    = netip.MustParseAddr("10.244.0.5")
	podC    = netip.MustParseAddr("10.244.1.8")
	node1   = netip.MustParseAddr("10.0.0.10")
	node2   = netip.MustParseAddr("10.0.0.11")
	vxlanIP = netip.MustParseAddr("10.244.0.0")
)

func tcp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) flow.Key {
	return flow.Key{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: flow.ProtoTCP}
}

func TestJoinViews(t *testing.T) {
	clusterIP := Translation{ID: 7, Original: tcp(client, 40000, vip, 8080), Reply: tcp(podC, 8080, client, 40000)}
	// NodePort from node-2 to node-1, DNATed to pod-c and masqueraded to
	// node-1's VXLAN address.
	nodePort := Translation{ID: 8, Original: tcp(node2, 50000, node1, 30080), Reply: tcp(podC, 8080, vxlanIP, 61000)}
	plain := Translation{ID: 9, Original: tcp(client, 1, podA, 80), Reply: tcp(podA, 80, client, 1)}
	for _, tt := range []struct {
		name    string
		tr      Translation
		key     flow.Key
		view    View
		ok      bool
		service string
		backend string
	}{
		{"clusterip before dnat", clusterIP, clusterIP.Original, ViewPre, true, "10.96.0.42:8080", "10.244.1.8:8080"},
		{"clusterip after dnat", clusterIP, tcp(client, 40000, podC, 8080), ViewPost, true, "10.96.0.42:8080", "10.244.1.8:8080"},
		{"clusterip reversed", clusterIP, tcp(podC, 8080, client, 40000), ViewPost, true, "10.96.0.42:8080", "10.244.1.8:8080"},
		{"nodeport before dnat", nodePort, nodePort.Original, ViewPre, true, "10.0.0.10:30080", "10.244.1.8:8080"},
		{"nodeport after dnat and snat", nodePort, tcp(vxlanIP, 61000, podC, 8080), ViewPost, true, "10.0.0.10:30080", "10.244.1.8:8080"},
		{"other flow", clusterIP, tcp(client, 40001, vip, 8080), ViewNone, false, "", ""},
		{"not translated", plain, plain.Original, ViewPre, false, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if v := tt.tr.ViewOf(tt.key); v != tt.view {
				t.Errorf("ViewOf = %v, want %v", v, tt.view)
			}
			rec := flow.Record{Key: tt.key, Outcome: flow.OutcomeClosed, NumHops: 1}
			c, ok := Join(&rec, &tt.tr)
			if ok != tt.ok {
				t.Fatalf("Join ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if c.Service.String() != tt.service || c.Backend.String() != tt.backend || c.ID != tt.tr.ID || c.View != tt.view {
				t.Errorf("Join = %+v", c)
			}
		})
	}
	if !nodePort.SNAT() || clusterIP.SNAT() {
		t.Errorf("SNAT: nodeport %v, clusterip %v", nodePort.SNAT(), clusterIP.SNAT())
	}
}

// conn is connection id to backend, with outcome o, whose last packet was
// at its id's nanosecond: the ids give the connections' order.
func conn(id uint32, backend netip.Addr, o flow.Outcome) *Conn {
	return &Conn{ID: id, Service: netip.AddrPortFrom(vip, 8080), Backend: netip.AddrPortFrom(backend, 8080), Proto: flow.ProtoTCP,
		Outcome: o, Last: int64(id)}
}

func TestServicesCountOncePerConnectionAndFindDeadBackend(t *testing.T) {
	s := NewServices(ServicesConfig{})
	now := time.Now().UnixNano()
	for i := uint32(0); i < 6; i++ {
		s.Add(conn(i, podA, flow.OutcomeClosed), now)
		if s.Add(conn(i, podA, flow.OutcomeClosed), now) {
			t.Fatal("a connection's second view was counted")
		}
		s.Add(conn(100+i, podC, flow.OutcomeRefused), now)
	}
	got, overflow := s.Snapshot(now)
	if len(got) != 2 || overflow != 0 {
		t.Fatalf("snapshot %+v, overflow %d", got, overflow)
	}
	a, c := got[0], got[1]
	if a.Backend.Addr() != podA || a.Outcomes[flow.OutcomeClosed] != 6 || a.Dead || a.FailureRatio() != 0 {
		t.Errorf("pod-a: %+v", a)
	}
	if c.Backend.Addr() != podC || c.Outcomes[flow.OutcomeRefused] != 6 || !c.Dead || c.FailureRatio() != 1 {
		t.Errorf("pod-c: %+v", c)
	}
	// Once the failures leave the window, its ratio falls to 0 but its
	// counts since start stay; one completed connection revives it.
	later := now + int64(6*time.Minute)
	got, _ = s.Snapshot(later)
	if got[1].Attempts != 0 || got[1].FailureRatio() != 0 || got[1].Outcomes[flow.OutcomeRefused] != 6 {
		t.Errorf("pod-c after the window: %+v", got[1])
	}
	s.Add(conn(200, podC, flow.OutcomeClosed), later)
	if got, _ = s.Snapshot(later); got[1].Dead {
		t.Errorf("pod-c still dead after a completed connection: %+v", got[1])
	}
	// Two failures in a row are not enough.
	s.Add(conn(201, podC, flow.OutcomeTimeout), later)
	s.Add(conn(202, podC, flow.OutcomeRefused), later)
	if got, _ = s.Snapshot(later); got[1].Dead {
		t.Errorf("pod-c dead after two failures: %+v", got[1])
	}
}

// A completed connection's record may reach the tally after the failures
// that followed it (records end at idle expiry, FIN or RST, and a batch is
// handed over in no order): it must not clear them.
func TestServicesDeadInConnectionOrder(t *testing.T) {
	now := time.Now().UnixNano()
	dead := func(s *Services) bool {
		got, _ := s.Snapshot(now)
		return len(got) == 1 && got[0].Dead
	}
	s := NewServices(ServicesConfig{})
	for _, id := range []uint32{10, 11, 12} {
		s.Add(conn(id, podC, flow.OutcomeRefused), now)
	}
	s.Add(conn(5, podC, flow.OutcomeClosed), now) // ended before the failures
	if !dead(s) {
		t.Errorf("an earlier completed connection, counted late, cleared the failures after it")
	}
	s.Add(conn(13, podC, flow.OutcomeClosed), now)
	if dead(s) {
		t.Errorf("dead after a later completed connection")
	}
	s.Add(conn(8, podC, flow.OutcomeTimeout), now) // before the latest success
	s.Add(conn(14, podC, flow.OutcomeRefused), now)
	s.Add(conn(15, podC, flow.OutcomeReset), now)
	if dead(s) {
		t.Errorf("dead with two failures after the latest completed connection")
	}
	s.Add(conn(16, podC, flow.OutcomeRefused), now)
	if !dead(s) {
		t.Errorf("not dead with three failures after the latest completed connection")
	}
	// A completed connection between failures clears only those before it.
	s = NewServices(ServicesConfig{})
	for _, id := range []uint32{20, 21, 23, 24, 25} {
		s.Add(conn(id, podC, flow.OutcomeRefused), now)
	}
	s.Add(conn(22, podC, flow.OutcomeClosed), now)
	if !dead(s) {
		t.Errorf("three failures after the completed connection, not dead")
	}
}

func TestServicesBounded(t *testing.T) {
	s := NewServices(ServicesConfig{MaxSeries: 2})
	now := time.Now().UnixNano()
	for i := 0; i < 5; i++ {
		b := netip.AddrFrom4([4]byte{10, 244, 9, byte(i)})
		s.Add(conn(uint32(i), b, flow.OutcomeClosed), now)
	}
	got, overflow := s.Snapshot(now)
	if len(got) != 2 || overflow != 3 {
		t.Errorf("%d series, overflow %d; want 2, 3", len(got), overflow)
	}
}

type sinkFunc func(e *Enriched)

func (f sinkFunc) Consume(e *Enriched, _ time.Time) { f(e) }

// TestFanoutExplainsFailedOnly: the policy explanation is asked for final
// records with a failed outcome only, and reaches every sink.
func TestFanoutExplainsFailedOnly(t *testing.T) {
	asked := 0
	pol := &Policy{Verdict: PolicyDenied}
	var got []*Policy
	f := &Fanout{
		Policy: func(r *flow.Record, nat *Translation) *Policy { asked++; return pol },
		Sinks:  []Sink{sinkFunc(func(e *Enriched) { got = append(got, e.Policy) })},
	}
	recs := []flow.Record{
		{Key: tcp(podA, 1, podC, 80), End: flow.EndIdle, Outcome: flow.OutcomeTimeout},
		{Key: tcp(podA, 2, podC, 80), End: flow.EndIdle, Outcome: flow.OutcomeClosed},
		{Key: tcp(podA, 3, podC, 80), End: flow.EndActive, Outcome: flow.OutcomeSynSent},
		{Key: tcp(podA, 4, podC, 80), End: flow.EndEvicted, Outcome: flow.OutcomeRefused},
	}
	f.OnRecords(recs)
	if asked != 2 || len(got) != 3 || got[0] != pol || got[1] != nil || got[2] != pol {
		t.Errorf("asked %d times, sinks saw %v; want 2 and [pol nil pol]", asked, got)
	}
}

// TestJoinClientAborted: a reset counts against the backend unless the
// client alone sent it after the backend answered, with the sides taken
// from the conntrack entry even when the flow table guessed them wrong
// (a flow picked up mid-stream, reversed).
func TestJoinClientAborted(t *testing.T) {
	// A host-network client masqueraded with a remapped source port, seen
	// only after DNAT and SNAT on the node's uplink.
	tr := Translation{ID: 3, Original: tcp(node2, 47480, vip, 443), Reply: tcp(podC, 6443, node2, 35816)}
	post := tr.Reply.Reverse()
	const fromClient, fromServer = 1 << flow.FromClient, 1 << flow.FromServer
	for _, tt := range []struct {
		name    string
		key     flow.Key
		outcome flow.Outcome
		rst     uint8     // record's RSTFrom, in the record's sides
		packets [2]uint64 // record's hop packets, in the record's sides
		aborted bool
		replied bool // conntrack saw a reply
	}{
		{"client reset after the server's data", post, flow.OutcomeReset, fromClient, [2]uint64{4, 4}, true, false},
		{"reversed record: the client reset", tr.Reply, flow.OutcomeReset, fromServer, [2]uint64{4, 4}, true, false},
		{"server reset", post, flow.OutcomeReset, fromServer, [2]uint64{4, 4}, false, false},
		{"reversed record: the server reset", tr.Reply, flow.OutcomeReset, fromClient, [2]uint64{4, 4}, false, false},
		{"both reset", post, flow.OutcomeReset, fromClient | fromServer, [2]uint64{4, 4}, false, false},
		{"client reset, server silent", post, flow.OutcomeReset, fromClient, [2]uint64{3, 0}, false, false},
		{"reversed record: client reset, server silent", tr.Reply, flow.OutcomeReset, fromServer, [2]uint64{0, 3}, false, false},
		{"refused", post, flow.OutcomeRefused, fromServer, [2]uint64{1, 1}, false, false},
		{"closed", post, flow.OutcomeClosed, 0, [2]uint64{5, 5}, false, false},
		// Picked up at its end: the client's RST is all the capture saw.
		{"only the client's reset, conntrack saw a reply", post, flow.OutcomeReset, fromClient, [2]uint64{1, 0}, true, true},
		{"only the client's reset, conntrack saw no reply", post, flow.OutcomeReset, fromClient, [2]uint64{1, 0}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := tr
			tr.Replied = tt.replied
			rec := flow.Record{Key: tt.key, Outcome: tt.outcome, NumHops: 1}
			rec.TCP.RSTFrom = tt.rst
			rec.Hops[0].Packets = tt.packets
			c, ok := Join(&rec, &tr)
			if !ok {
				t.Fatal("not joined")
			}
			if c.ClientAborted != tt.aborted {
				t.Errorf("ClientAborted = %v, want %v", c.ClientAborted, tt.aborted)
			}
			if want := tt.outcome.Failed() && !tt.aborted; c.Failed() != want {
				t.Errorf("Failed = %v, want %v", c.Failed(), want)
			}
			if c.Client != netip.AddrPortFrom(node2, 47480) || c.Backend != netip.AddrPortFrom(podC, 6443) {
				t.Errorf("client %v backend %v", c.Client, c.Backend)
			}
		})
	}
}

// TestServicesClientAbortsAreNotFailures: connections their clients reset
// after the backend answered neither make it dead nor count in its failure
// ratio, and they clear a streak of failures before them, as a completed
// connection does; their outcome is still counted as a reset.
func TestServicesClientAbortsAreNotFailures(t *testing.T) {
	now := time.Now().UnixNano()
	s := NewServices(ServicesConfig{})
	s.Add(conn(1, podC, flow.OutcomeRefused), now)
	s.Add(conn(2, podC, flow.OutcomeTimeout), now)
	for id := uint32(3); id < 8; id++ {
		c := conn(id, podC, flow.OutcomeReset)
		c.ClientAborted = true
		s.Add(c, now)
	}
	s.Add(conn(8, podC, flow.OutcomeReset), now) // the server's reset
	got, _ := s.Snapshot(now)
	if len(got) != 1 {
		t.Fatalf("snapshot %+v", got)
	}
	b := got[0]
	if b.Dead || b.Failed != 3 || b.Attempts != 8 || b.Outcomes[flow.OutcomeReset] != 6 {
		t.Errorf("backend %+v: want alive, 3 failed of 8, 6 resets", b)
	}
}
