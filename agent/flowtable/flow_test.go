package flowtable

import (
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// handshake is a full client/server exchange at interface 1: SYN, SYN-ACK
// 300 µs later, ACK 50 µs after that, 100 bytes each way, FINs.
var handshake = []step{
	{at: 0, flags: syn, seq: 1000},
	{at: 300 * us, srv: true, flags: synack, seq: 5000},
	{at: 350 * us, flags: ack, seq: 1001},
	{at: 400 * us, flags: psh, seq: 1001, payload: 100},
	{at: 700 * us, srv: true, flags: psh, seq: 5001, payload: 100},
	{at: 800 * us, flags: finack, seq: 1101},
	{at: 900 * us, srv: true, flags: finack, seq: 5101},
	{at: 950 * us, flags: ack, seq: 1102},
}

func TestFlowRecords(t *testing.T) {
	tests := []struct {
		name  string
		key   flow.Key
		steps []step
		check func(t *testing.T, r *flow.Record, s Stats)
	}{
		{
			name: "three-way handshake and close",
			key:  tcpKey(40000), steps: handshake,
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.Key != tcpKey(40000) {
					t.Errorf("key %v, want client → server %v", r.Key, tcpKey(40000))
				}
				if r.Outcome != flow.OutcomeClosed {
					t.Errorf("outcome %v, want closed", r.Outcome)
				}
				if got := r.TCP.ServerRTT(); got != 300*us {
					t.Errorf("server RTT %v, want 300µs", got)
				}
				if got := r.TCP.ClientRTT(); got != 50*us {
					t.Errorf("client RTT %v, want 50µs", got)
				}
				if got := r.TCP.HandshakeRTT(); got != 350*us {
					t.Errorf("handshake RTT %v, want 350µs", got)
				}
				if r.TCP.ISN != 1000 || r.TCP.HandshakeIfIndex != 1 {
					t.Errorf("ISN %d at if %d, want 1000 at 1", r.TCP.ISN, r.TCP.HandshakeIfIndex)
				}
				h := r.Hops[0]
				if r.NumHops != 1 || h.Packets != [2]uint64{5, 3} || h.Bytes != [2]uint64{5*60 + 100, 3*60 + 100} {
					t.Errorf("hops %d, packets %v, bytes %v", r.NumHops, h.Packets, h.Bytes)
				}
				if r.TCP.FINFrom != 3 || r.TCP.RSTFrom != 0 || r.TCP.Retransmits != [2]uint32{} {
					t.Errorf("FIN %b RST %b retrans %v", r.TCP.FINFrom, r.TCP.RSTFrom, r.TCP.Retransmits)
				}
				if r.First != base || r.Last != base+int64(950*us) {
					t.Errorf("first/last %d/%d", r.First-base, r.Last-base)
				}
				if s.Handshakes != 1 || s.HandshakeRTT.Counts[4] != 1 {
					t.Errorf("handshakes %d, buckets %v, want one in (250µs, 500µs]", s.Handshakes, s.HandshakeRTT.Counts)
				}
				if d := s.HandshakeRTT.Sum - 350e-6; d > 1e-12 || d < -1e-12 {
					t.Errorf("histogram sum %g, want 350e-6", s.HandshakeRTT.Sum)
				}
			},
		},
		{
			name: "picked up at the SYN-ACK: the receiver is the client",
			key:  tcpKey(40001),
			steps: []step{
				{at: 0, srv: true, flags: synack, seq: 5000},
				{at: 50 * us, flags: ack, seq: 1001},
			},
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.Key != tcpKey(40001) || r.Outcome != flow.OutcomeEstablished {
					t.Errorf("key %v outcome %v", r.Key, r.Outcome)
				}
				if r.TCP.HandshakeRTT() != 0 || s.Handshakes != 0 {
					t.Errorf("handshake timed without a SYN")
				}
			},
		},
		{
			name: "mid-stream from the server port: the receiver is the client",
			key:  tcpKey(45000),
			steps: []step{
				{at: 0, srv: true, flags: psh, seq: 7, payload: 10},
				{at: 10 * us, flags: ack, seq: 9},
			},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if r.Key != tcpKey(45000) || r.Outcome != flow.OutcomeUnknown {
					t.Errorf("key %v outcome %v", r.Key, r.Outcome)
				}
			},
		},
		{
			name: "retransmissions counted once across hops, keep-alive not",
			key:  tcpKey(40002),
			steps: append(append([]step{}, handshake[:3]...),
				step{at: 400 * us, flags: psh, seq: 1001, payload: 100},
				step{at: 410 * us, ifIndex: 2, flags: psh, seq: 1001, payload: 100},
				step{at: 600 * us, flags: psh, seq: 1001, payload: 100},
				step{at: 610 * us, ifIndex: 2, flags: psh, seq: 1001, payload: 100},
				step{at: 700 * us, flags: psh, seq: 1050, payload: 100}, // partial overlap
				step{at: 800 * us, flags: ack, seq: 1149, payload: 1},   // keep-alive
				step{at: 900 * us, flags: psh, seq: 1150, payload: 100}, // new data
				step{at: 950 * us, srv: true, flags: synack, seq: 5000}, // repeated SYN-ACK
			),
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if got := r.Hops[0].Retransmits; got != [2]uint32{2, 1} {
					t.Errorf("hop 1 retransmits %v, want [2 1]", got)
				}
				if got := r.Hops[1].Retransmits; got != [2]uint32{1, 0} {
					t.Errorf("hop 2 retransmits %v, want [1 0]", got)
				}
				if r.TCP.Retransmits != [2]uint32{2, 1} || s.Retransmits != 3 {
					t.Errorf("flow retransmits %v, table %d; want [2 1], 3", r.TCP.Retransmits, s.Retransmits)
				}
			},
		},
		{
			name: "SYN retransmitted then refused by RST",
			key:  tcpKey(40003),
			steps: []step{
				{at: 0, flags: syn, seq: 77},
				{at: 10 * us, ifIndex: 2, flags: syn, seq: 77},
				{at: time.Second, flags: syn, seq: 77},
				{at: time.Second + 10*us, ifIndex: 2, flags: syn, seq: 77},
				{at: time.Second + 90*us, ifIndex: 2, srv: true, flags: rstack},
				{at: time.Second + 100*us, srv: true, flags: rstack},
			},
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.Outcome != flow.OutcomeRefused || r.TCP.RSTFrom != 1<<flow.FromServer {
					t.Errorf("outcome %v RST from %b, want refused by the server", r.Outcome, r.TCP.RSTFrom)
				}
				if r.TCP.SYNRetransmits != 1 || s.Retransmits != 1 {
					t.Errorf("SYN retransmits %d, table %d; want 1, 1", r.TCP.SYNRetransmits, s.Retransmits)
				}
				if s.Outcomes[flow.OutcomeRefused] != 1 {
					t.Errorf("outcome counters %v", s.Outcomes)
				}
			},
		},
		{
			name:  "SYN without answer times out",
			key:   tcpKey(40004),
			steps: []step{{at: 0, flags: syn, seq: 1}, {at: time.Second, flags: syn, seq: 1}},
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.Outcome != flow.OutcomeTimeout || r.End != flow.EndFlushed || !r.Outcome.Failed() {
					t.Errorf("outcome %v end %v", r.Outcome, r.End)
				}
			},
		},
		{
			name: "reset after the handshake, zero window",
			key:  tcpKey(40005),
			steps: append(append([]step{}, handshake[:4]...),
				step{at: 500 * us, srv: true, flags: ack, seq: 5001, zeroWin: true},
				step{at: 600 * us, srv: true, flags: ack, seq: 5001, zeroWin: true},
				step{at: 700 * us, flags: rstack, seq: 1101},
			),
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if r.Outcome != flow.OutcomeReset || r.TCP.RSTFrom != 1<<flow.FromClient {
					t.Errorf("outcome %v RST from %b", r.Outcome, r.TCP.RSTFrom)
				}
				if r.TCP.ZeroWindows != [2]uint32{0, 2} {
					t.Errorf("zero windows %v, want [0 2]", r.TCP.ZeroWindows)
				}
			},
		},
		{
			name:  "RST after FINs from both sides is a close",
			key:   tcpKey(40006),
			steps: append(append([]step{}, handshake...), step{at: ms, flags: rstack, seq: 1102}),
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.Outcome != flow.OutcomeClosed || r.TCP.RSTFrom != 1<<flow.FromClient || s.Outcomes[flow.OutcomeClosed] != 1 {
					t.Errorf("outcome %v RST from %b", r.Outcome, r.TCP.RSTFrom)
				}
			},
		},
		{
			name: "DNS matched by ID at the first interface only",
			key:  udpKey(40100, 53),
			steps: []step{
				{at: 0, app: flow.AppDNS, dnsID: 1},
				{at: 5 * us, ifIndex: 2, app: flow.AppDNS, dnsID: 1},
				{at: 1 * ms, app: flow.AppDNS, dnsID: 2},
				{at: 1*ms + 5*us, ifIndex: 2, app: flow.AppDNS, dnsID: 2},
				{at: 2*ms + 995*us, ifIndex: 2, srv: true, app: flow.AppDNS, resp: true, dnsID: 2, rcode: 3},
				{at: 3 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 2, rcode: 3},
				{at: 4 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 1},
				{at: 5 * ms, app: flow.AppDNS, dnsID: 9},
			},
			check: func(t *testing.T, r *flow.Record, s Stats) {
				l := r.L7
				if l.App != flow.AppDNS || l.IfIndex != 1 || l.Requests != 3 || l.Responses != 2 || l.Errors != 1 || l.Unanswered != 1 {
					t.Errorf("L7 %+v", l)
				}
				want := []flow.Exchange{
					{Start: base + int64(ms), Latency: 2 * ms, ID: 2, Code: 3},
					{Start: base, Latency: 4 * ms, ID: 1, Code: 0},
				}
				if int(l.NumExchanges) != len(want) || l.Exchanges[0] != want[0] || l.Exchanges[1] != want[1] {
					t.Errorf("exchanges %+v, want %+v", l.Exchanges[:l.NumExchanges], want)
				}
				if r.Outcome != flow.OutcomeReplied || r.Key != udpKey(40100, 53) {
					t.Errorf("outcome %v key %v", r.Outcome, r.Key)
				}
				if s.DNSLatency.Count != 2 || s.DNSLatency.Counts[7] != 1 || s.DNSLatency.Counts[6] != 1 {
					t.Errorf("DNS histogram %+v, want one in (1ms,2.5ms] and one in (2.5ms,5ms]", s.DNSLatency)
				}
			},
		},
		{
			name: "DNS picked up at the response: the receiver is the client",
			key:  udpKey(40101, 53),
			steps: []step{
				{at: 0, srv: true, app: flow.AppDNS, resp: true, dnsID: 4},
			},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if r.Key != udpKey(40101, 53) || r.L7.Responses != 1 || r.L7.NumExchanges != 0 {
					t.Errorf("key %v L7 %+v", r.Key, r.L7)
				}
			},
		},
		{
			name: "DNS question name of the flow, exchanges for another name flagged",
			key:  udpKey(40102, 53),
			steps: []step{
				{at: 0, app: flow.AppDNS, dnsID: 1, name: "My-Service.default.svc.cluster.local"},
				{at: 10 * us, app: flow.AppDNS, dnsID: 2, name: "my-service.DEFAULT.svc.cluster.local"},
				{at: 20 * us, app: flow.AppDNS, dnsID: 3, name: "my-service-.default.svc.cluster.local"},
				{at: 30 * us, app: flow.AppDNS, dnsID: 4, name: "my-servicE.default.svc.cluster.local"},
				{at: 1 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 1, name: "My-Service.default.svc.cluster.local"},
				{at: 2 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 2, name: "my-service.DEFAULT.svc.cluster.local"},
				{at: 3 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 3, rcode: 3, name: "my-service-.default.svc.cluster.local"},
				// a response without its question (FORMERR) keeps the query's attribution
				{at: 4 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 4, rcode: 1},
			},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				l := r.L7
				if name, trunc := l.DNSName(); name != "My-Service.default.svc.cluster.local" || trunc {
					t.Errorf("name %q truncated %v, want the first query's", name, trunc)
				}
				if l.NumExchanges != 4 {
					t.Fatalf("exchanges %+v", l.Exchanges[:l.NumExchanges])
				}
				for i, want := range []bool{false, false, true, false} {
					if x := l.Exchanges[i]; x.OtherName != want {
						t.Errorf("exchange %d (ID %d): OtherName %v, want %v", i, x.ID, x.OtherName, want)
					}
				}
			},
		},
		{
			name: "DNS long name kept as a prefix, flagged truncated",
			key:  udpKey(40103, 53),
			steps: []step{
				{at: 0, app: flow.AppDNS, dnsID: 1, name: strings.Repeat("a", 60) + ".very-long-namespace.svc.cluster.local"},
				{at: 10 * us, app: flow.AppDNS, dnsID: 2, name: strings.Repeat("a", 60) + ".very-other-namespace"},
				{at: 20 * us, app: flow.AppDNS, dnsID: 3, name: strings.Repeat("a", 60) + ".ve"},
				{at: 1 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 1, rcode: 3},
				{at: 2 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 2, rcode: 3},
				{at: 3 * ms, srv: true, app: flow.AppDNS, resp: true, dnsID: 3, rcode: 3},
			},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				l := r.L7
				name, trunc := l.DNSName()
				if want := strings.Repeat("a", 60) + ".ver"; name != want || !trunc || l.NameLen != flow.MaxDNSName {
					t.Errorf("name %q (%d bytes) truncated %v, want %q truncated", name, l.NameLen, trunc, want)
				}
				// Same kept prefix: the same name as far as the record can
				// tell; a shorter, whole name is another.
				for i, want := range []bool{false, false, true} {
					if x := l.Exchanges[i]; x.OtherName != want {
						t.Errorf("exchange %d: OtherName %v, want %v", i, x.OtherName, want)
					}
				}
			},
		},
		{
			name: "DNS name from the response when the query was not seen",
			key:  udpKey(40104, 53),
			steps: []step{
				{at: 0, srv: true, app: flow.AppDNS, resp: true, dnsID: 4, rcode: 3, name: "no-such-svc.default.svc.cluster.local"},
			},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if name, _ := r.L7.DNSName(); name != "no-such-svc.default.svc.cluster.local" || r.L7.NumExchanges != 0 {
					t.Errorf("L7 name %q, %d exchanges", name, r.L7.NumExchanges)
				}
			},
		},
		{
			name: "HTTP and plain packets never take a DNS name",
			key:  tcpKey(40201),
			steps: append(append([]step{}, handshake[:3]...),
				// stale name bytes with a length, as a buggy caller could leave them
				step{at: 1 * ms, flags: psh, seq: 1001, payload: 80, app: flow.AppHTTP, name: "stale.example"},
				step{at: 11 * ms, srv: true, flags: psh, seq: 5001, payload: 200, app: flow.AppHTTP, resp: true, status: 200, name: "stale.example"},
				step{at: 12 * ms, flags: ack, seq: 1081, name: "stale.example"},
			),
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if r.L7.App != flow.AppHTTP || r.L7.NameLen != 0 || r.L7.Name != [flow.MaxDNSName]byte{} || r.L7.Exchanges[0].OtherName {
					t.Errorf("HTTP flow L7 %+v", r.L7)
				}
			},
		},
		{
			name: "HTTP pipelined requests matched in order",
			key:  tcpKey(40200),
			steps: append(append([]step{}, handshake[:3]...),
				step{at: 1 * ms, flags: psh, seq: 1001, payload: 80, app: flow.AppHTTP},
				step{at: 2 * ms, flags: psh, seq: 1081, payload: 80, app: flow.AppHTTP},
				step{at: 11 * ms, srv: true, flags: psh, seq: 5001, payload: 200, app: flow.AppHTTP, resp: true, status: 200},
				step{at: 52 * ms, srv: true, flags: psh, seq: 5201, payload: 200, app: flow.AppHTTP, resp: true, status: 503},
			),
			check: func(t *testing.T, r *flow.Record, s Stats) {
				l := r.L7
				if l.App != flow.AppHTTP || l.Requests != 2 || l.Responses != 2 || l.Errors != 1 || l.Unanswered != 0 {
					t.Errorf("L7 %+v", l)
				}
				if l.NumExchanges != 2 || l.Exchanges[0].Latency != 10*ms || l.Exchanges[0].Code != 200 ||
					l.Exchanges[1].Latency != 50*ms || l.Exchanges[1].Code != 503 {
					t.Errorf("exchanges %+v", l.Exchanges[:l.NumExchanges])
				}
				if s.HTTPLatency.Count != 2 || s.HTTPLatency.Counts[8] != 1 || s.HTTPLatency.Counts[10] != 1 {
					t.Errorf("HTTP histogram %+v", s.HTTPLatency)
				}
			},
		},
		{
			name: "hops in order of first sight, encapsulation, overflow",
			key:  tcpKey(40300),
			steps: []step{
				{at: 0, ifIndex: 7, dir: flow.DirIn, flags: syn, seq: 1},
				{at: 5 * us, ifIndex: 3, dir: flow.DirOut, flags: syn, seq: 1},
				{at: 9 * us, ifIndex: 2, dir: flow.DirOut, flags: syn, seq: 1, len: 110, tunnel: flow.Tunnel{Encap: flow.EncapVXLAN, VNI: 1, OuterSrc: node1, OuterDst: node2}},
				{at: 20 * us, ifIndex: 2, dir: flow.DirIn, srv: true, flags: synack, seq: 9, len: 110, tunnel: flow.Tunnel{Encap: flow.EncapVXLAN, VNI: 1, OuterSrc: node2, OuterDst: node1}},
				{at: 25 * us, ifIndex: 11, flags: synack, srv: true, seq: 9},
				{at: 26 * us, ifIndex: 12, flags: synack, srv: true, seq: 9},
				{at: 27 * us, ifIndex: 12, flags: synack, srv: true, seq: 9},
			},
			check: func(t *testing.T, r *flow.Record, s Stats) {
				if r.NumHops != 4 || r.HopOverflow != 2 || s.HopOverflows != 2 {
					t.Fatalf("hops %d overflow %d/%d, want 4, 2", r.NumHops, r.HopOverflow, s.HopOverflows)
				}
				for i, want := range []int32{7, 3, 2, 11} {
					if r.Hops[i].IfIndex != want {
						t.Errorf("hop %d is if %d, want %d", i, r.Hops[i].IfIndex, want)
					}
				}
				h := r.Hops[2]
				if h.Encap != flow.EncapVXLAN || h.Dir != flow.DirOut || h.Packets != [2]uint64{1, 1} || h.Bytes != [2]uint64{110, 110} {
					t.Errorf("tunnel hop %+v", h)
				}
				if r.Tunnel.VNI != 1 || r.Tunnel.OuterSrc != node1 || r.Tunnel.OuterDst != node2 {
					t.Errorf("tunnel %+v", r.Tunnel)
				}
				if r.Hops[0].Dir != flow.DirIn || r.Hops[3].Dir != flow.DirUnknown || r.Hops[1].First != base+int64(5*us) {
					t.Errorf("hop 0 %+v, hop 3 %+v", r.Hops[0], r.Hops[3])
				}
				if r.TCP.HandshakeIfIndex != 7 || r.TCP.SYNACK != 0 {
					t.Errorf("handshake at %d, SYN-ACK %d: it must be timed at the SYN's first interface", r.TCP.HandshakeIfIndex, r.TCP.SYNACK)
				}
			},
		},
		{
			name:  "UDP without reply",
			key:   udpKey(40400, 9999),
			steps: []step{{at: 0}, {at: ms}},
			check: func(t *testing.T, r *flow.Record, _ Stats) {
				if r.Outcome != flow.OutcomeUnreplied || r.Hops[0].Packets != [2]uint64{2, 0} {
					t.Errorf("outcome %v packets %v", r.Outcome, r.Hops[0].Packets)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, c := newTable(t, Config{MaxEntries: 64})
			feed(t, tab, tt.key, tt.steps)
			if n := tab.Len(); n != 1 {
				t.Fatalf("%d flows, want 1 (both directions map to one flow)", n)
			}
			live, ok := tab.Lookup(tt.key.Reverse())
			if !ok || live.End != flow.EndActive || live.Key != tt.key {
				t.Fatalf("lookup by the reverse key: %v %v %v", ok, live.End, live.Key)
			}
			if n := tab.Flush(); n != 1 {
				t.Fatalf("flush emitted %d records, want 1", n)
			}
			recs := c.take()
			if len(recs) != 1 || recs[0].End != flow.EndFlushed || tab.Len() != 0 {
				t.Fatalf("records %d, end %v, left %d", len(recs), recs[0].End, tab.Len())
			}
			tt.check(t, &recs[0], tab.Stats())
		})
	}
}
