package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/links"
)

// apiConfig is what the tests set of the API.
type apiConfig struct {
	Node               string
	HistorySize        int
	FollowWriteTimeout time.Duration
}

// noLinks names no interface.
type noLinks struct{}

func (noLinks) LinkOf(idx int) (links.Link, bool) { return links.Unknown(idx), false }

// apiOnly is the handlers with just what the connections API reads: a
// history, and no capture, served by an httptest server.
func apiOnly(t *testing.T, cfg apiConfig) (*testAPI, *httptest.Server) {
	t.Helper()
	ring, err := history.New(&history.Config{Size: cfg.HistorySize})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Node: cfg.Node, History: ring, FollowWriteTimeout: cfg.FollowWriteTimeout, Logger: slog.New(slog.DiscardHandler), LinkNames: noLinks{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.RegisterAPI(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testAPI{h, ring}, srv
}

// testAPI names the handlers' parts as the tests read them.
type testAPI struct {
	*Handlers
	ring *history.Ring
}

func tcpRecord(port uint16, o flow.Outcome, syns uint16) flow.Record {
	r := flow.Record{
		Key: flow.Key{Src: netip.MustParseAddr("10.244.0.5"), Dst: netip.MustParseAddr("10.244.1.8"),
			SrcPort: port, DstPort: 8080, Proto: flow.ProtoTCP},
		First: 1e18, Last: 1e18 + 1e9, End: flow.EndIdle, Outcome: o, NumHops: 1,
	}
	r.TCP.Flags = flow.TCPSyn
	r.TCP.SYN = 1e18
	r.TCP.SYNRetransmits = syns
	r.Hops[0] = flow.Hop{IfIndex: 7, Role: flow.RoleOverlay, Dir: flow.DirOut, Packets: [2]uint64{3, 0}}
	return r
}

// dnat is the translation of a connection from 10.244.0.5:port to the
// Service 10.96.0.42:8080 DNATed to 10.244.1.8:8080.
func dnat(port uint16, id uint32) *correlate.Translation {
	c, s, b := netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("10.96.0.42"), netip.MustParseAddr("10.244.1.8")
	return &correlate.Translation{ID: id,
		Original: flow.Key{Src: c, Dst: s, SrcPort: port, DstPort: 8080, Proto: flow.ProtoTCP},
		Reply:    flow.Key{Src: b, Dst: c, SrcPort: 8080, DstPort: port, Proto: flow.ProtoTCP}}
}

func TestConnectionVerdicts(t *testing.T) {
	a, _ := apiOnly(t, apiConfig{Node: "node-1"})
	for _, tt := range []struct {
		name    string
		kind    history.Kind
		rec     flow.Record
		nat     *correlate.Translation
		summary string
		view    string
		failed  bool
	}{
		{"silent backend", history.KindFinal, tcpRecord(40000, flow.OutcomeTimeout, 2), dnat(40000, 9),
			"L3 no reply · L4 SYN×3 no SYN-ACK · DNAT 10.96.0.42:8080→10.244.1.8:8080", api.ViewPost, true},
		{"still waiting", history.KindProgress, tcpRecord(40001, flow.OutcomeSynSent, 0), nil,
			"L3 no reply yet · L4 SYN no SYN-ACK", api.ViewDirect, false},
		{"refused", history.KindFinal, func() flow.Record {
			r := tcpRecord(40002, flow.OutcomeRefused, 0)
			r.Hops[0].Packets[1] = 1
			r.TCP.RSTFrom = 1 << flow.FromServer
			return r
		}(), nil, "L3 ok · L4 SYN → RST", api.ViewDirect, true},
		{"dns nxdomain", history.KindFinal, func() flow.Record {
			r := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.244.0.5"), Dst: netip.MustParseAddr("10.244.0.10"),
				SrcPort: 5353, DstPort: 53, Proto: flow.ProtoUDP}, Outcome: flow.OutcomeReplied, End: flow.EndIdle, NumHops: 1}
			r.Hops[0].Packets = [2]uint64{1, 1}
			r.L7 = flow.AppInfo{App: flow.AppDNS, Requests: 1, Responses: 1, Errors: 1, NumExchanges: 1,
				Exchanges: [flow.MaxExchanges]flow.Exchange{{ID: 7, Code: 3, Latency: time.Millisecond}}}
			return r
		}(), nil, "L3 ok · L4 ok · L7 DNS NXDOMAIN", api.ViewDirect, true},
		{"dns nxdomain with its name", history.KindFinal, dnsRecord("my-servic.default.svc.cluster.local", false, 3),
			nil, "L3 ok · L4 ok · L7 DNS NXDOMAIN my-servic.default.svc.cluster.local", api.ViewDirect, true},
		{"dns answered, truncated name", history.KindFinal, dnsRecord(strings.Repeat("a", 64), true, 0),
			nil, "L3 ok · L4 ok · L7 DNS NOERROR " + strings.Repeat("a", 64) + "…", api.ViewDirect, false},
		{"dns unanswered with its name", history.KindFinal, func() flow.Record {
			r := dnsRecord("my-service.default.svc.cluster.local", false, 0)
			r.L7.Responses, r.L7.NumExchanges, r.L7.Unanswered = 0, 0, 2
			return r
		}(), nil, "L3 ok · L4 ok · L7 DNS 2 unanswered my-service.default.svc.cluster.local", api.ViewDirect, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.rec
			if tt.kind == history.KindProgress {
				rec.End = flow.EndActive
			}
			// The post view of a DNATed connection: the record's key is the
			// translated one.
			a.ring.Add(tt.kind, &rec, tt.nat, time.Now().UnixNano())
			buf, _, _ := a.ring.Read(a.ring.Next()-1, nil)
			c := a.connection(&buf[0])
			if c.Summary != tt.summary {
				t.Errorf("summary %q, want %q", c.Summary, tt.summary)
			}
			if c.View != tt.view || c.Failed != tt.failed || c.Node != "node-1" {
				t.Errorf("view %q failed %v node %q; want %q %v node-1", c.View, c.Failed, c.Node, tt.view, tt.failed)
			}
			if tt.nat != nil {
				if c.Service == nil || c.Service.Addr != "10.96.0.42:8080" || c.Backend.Addr != "10.244.1.8:8080" ||
					c.Client.Addr != "10.244.0.5:40000" || c.ID != "ct:9" {
					t.Errorf("DNAT ends: client %v service %v backend %v id %s", c.Client, c.Service, c.Backend, c.ID)
				}
			} else if !strings.HasPrefix(c.ID, "flow:") {
				t.Errorf("id %q, want a flow hash", c.ID)
			}
		})
	}
}

// TestPolicyLayer: a failed connection the agent explained carries the
// explanation as its policy field and a policy layer (fail when policies
// deny it, ok when they allow it, unknown when they were not synced), and
// the event validates against the schema.
func TestPolicyLayer(t *testing.T) {
	a, _ := apiOnly(t, apiConfig{Node: "node-1"})
	denied := &correlate.Policy{Verdict: correlate.PolicyDenied, Detail: "ingress of default/pod-c denied by default/default-deny",
		Denials: []correlate.PolicyDenial{{Direction: "ingress", Namespace: "default", Pod: "pod-c", Policy: "default-deny",
			Policies: []string{"default-deny"}, Rule: "default/default-deny (no ingress rule)", RuleChange: "no rule allows anything"}}}
	for _, tt := range []struct {
		pol     *correlate.Policy
		layer   api.Layer
		summary string
	}{
		{denied, api.Layer{Layer: "policy", Status: api.StatusFail, Detail: "ingress denied by default/default-deny"},
			"L3 no reply · L4 SYN×2 no SYN-ACK · POLICY ingress denied by default/default-deny"},
		{&correlate.Policy{Verdict: correlate.PolicyUnexplained, AllowedBy: []string{"default/allow spec.ingress[0]"}},
			api.Layer{Layer: "policy", Status: api.StatusOK, Detail: "no NetworkPolicy denies it"}, "L3 no reply · L4 SYN×2 no SYN-ACK"},
		{&correlate.Policy{Verdict: correlate.PolicyUnknown},
			api.Layer{Layer: "policy", Status: api.StatusUnknown, Detail: "NetworkPolicies not synced"}, "L3 no reply · L4 SYN×2 no SYN-ACK"},
	} {
		rec := tcpRecord(40100, flow.OutcomeTimeout, 1)
		a.ring.AddExplained(history.KindFinal, &rec, nil, tt.pol, time.Now().UnixNano())
		buf, _, _ := a.ring.Read(a.ring.Next()-1, nil)
		c := a.connection(&buf[0])
		if c.Policy == nil || c.Policy.Verdict != tt.pol.Verdict || len(c.Layers) != 3 || c.Layers[2] != tt.layer || c.Summary != tt.summary {
			t.Errorf("%s: policy %+v layers %+v summary %q", tt.pol.Verdict, c.Policy, c.Layers, c.Summary)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.ValidateConnection(b); err != nil {
			t.Errorf("%s\n%v", b, err)
		}
	}
	rec := tcpRecord(40101, flow.OutcomeTimeout, 1)
	a.ring.AddExplained(history.KindFinal, &rec, nil, denied, time.Now().UnixNano())
	buf, _, _ := a.ring.Read(a.ring.Next()-1, nil)
	if d := a.connection(&buf[0]).Policy.Denials; len(d) != 1 || d[0].Change != "no rule allows anything" || d[0].Rule != "default/default-deny (no ingress rule)" {
		t.Errorf("denials %+v", d)
	}
	// Without an explanation: no policy layer.
	a.ring.Add(history.KindFinal, &rec, nil, time.Now().UnixNano())
	buf, _, _ = a.ring.Read(a.ring.Next()-1, nil)
	if c := a.connection(&buf[0]); c.Policy != nil || len(c.Layers) != 2 {
		t.Errorf("unexplained record: %+v %+v", c.Policy, c.Layers)
	}
}

// dnsRecord is a DNS flow whose one query for name was answered rcode.
func dnsRecord(name string, truncated bool, rcode uint16) flow.Record {
	r := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.244.0.5"), Dst: netip.MustParseAddr("10.244.0.10"),
		SrcPort: 5354, DstPort: 53, Proto: flow.ProtoUDP}, Outcome: flow.OutcomeReplied, End: flow.EndIdle, NumHops: 1}
	r.Hops[0].Packets = [2]uint64{1, 1}
	r.L7 = flow.AppInfo{App: flow.AppDNS, Requests: 1, Responses: 1, NumExchanges: 1,
		Exchanges: [flow.MaxExchanges]flow.Exchange{{ID: 7, Code: rcode, Latency: time.Millisecond}}}
	if rcode != 0 {
		r.L7.Errors = 1
	}
	r.L7.NameLen, r.L7.NameTruncated = uint8(copy(r.L7.Name[:], name)), truncated
	return r
}

// TestL7Names checks the DNS names of the API: the connection's, each
// exchange's except one for another name, none for HTTP.
func TestL7Names(t *testing.T) {
	r := dnsRecord("No-Such-Svc.default.svc.cluster.local", false, 3)
	r.L7.Exchanges[1] = flow.Exchange{ID: 8, Code: 0, OtherName: true}
	r.L7.NumExchanges = 2
	l := l7Of(&r.L7)
	if l.Name != "No-Such-Svc.default.svc.cluster.local" || l.NameTruncated || len(l.Exchanges) != 2 ||
		l.Exchanges[0].Name != l.Name || l.Exchanges[0].Rcode != "NXDOMAIN" || l.Exchanges[1].Name != "" {
		t.Errorf("DNS L7 %+v", l)
	}
	r = dnsRecord(strings.Repeat("b", 64), true, 2)
	if l := l7Of(&r.L7); l.Name != strings.Repeat("b", 64) || !l.NameTruncated || !l.Exchanges[0].NameTruncated {
		t.Errorf("truncated DNS L7 %+v", l)
	}
	h := flow.AppInfo{App: flow.AppHTTP, Requests: 1, Responses: 1, NumExchanges: 1, NameLen: 3,
		Exchanges: [flow.MaxExchanges]flow.Exchange{{Code: 200}}}
	copy(h.Name[:], "abc")
	if l := l7Of(&h); l.Name != "" || l.Exchanges[0].Name != "" || l.Exchanges[0].Status != 200 {
		t.Errorf("HTTP L7 %+v", l)
	}
}

func TestConnectionsQuery(t *testing.T) {
	a, srv := apiOnly(t, apiConfig{})
	base := time.Now().Add(-20 * time.Second).UnixNano()
	for i := range 10 {
		o := flow.OutcomeClosed
		if i%3 == 0 {
			o = flow.OutcomeRefused
		}
		r := tcpRecord(uint16(41000+i), o, 0)
		r.Key.Dst, r.Key.SrcPort = netip.MustParseAddr("10.96.0.42"), uint16(41000+i) // pre view
		a.ring.Add(history.KindProgress, &r, dnat(uint16(41000+i), uint32(100+i)), base+int64(2*i)*int64(time.Second))
		a.ring.Add(history.KindFinal, &r, dnat(uint16(41000+i), uint32(100+i)), base+int64(2*i+1)*int64(time.Second))
	}
	c, err := api.NewClient(api.ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		q    api.Query
		want int
	}{
		{"all", api.Query{}, 20},
		{"latest", api.Query{Latest: true}, 10},
		{"refused", api.Query{Outcomes: []string{"refused"}, State: api.StateFinal}, 4},
		{"failed l4", api.Query{Layer: "l4", Latest: true}, 4},
		{"since 5s", api.Query{Since: 5500 * time.Millisecond}, 5},
		{"limit", api.Query{Limit: 3}, 3},
		{"service address", api.Query{Service: "10.96.0.42:8080", View: api.ViewPre}, 20},
		{"other service", api.Query{Service: "10.96.0.43"}, 0},
		{"port", api.Query{Port: 8080, Protocol: "tcp"}, 20},
		{"ip", api.Query{IP: "10.244.0.5"}, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Connections(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("%d connections, want %d", len(got), tt.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatalf("not oldest first: seq %d after %d", got[i].Seq, got[i-1].Seq)
				}
			}
		})
	}
	resp, err := http.Get(srv.URL + api.PathConnections + "?outcome=bogus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "outcome=") {
		t.Errorf("bad parameter: %d %q, want 400 naming outcome=", resp.StatusCode, body)
	}
}

func TestFollowStreamsAndFilters(t *testing.T) {
	a, srv := apiOnly(t, apiConfig{})
	c, _ := api.NewClient(api.ClientConfig{URL: srv.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan api.Connection, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Follow(ctx, api.Query{Outcomes: []string{"refused"}}, func(cn *api.Connection) error {
			got <- *cn
			return nil
		})
	}()
	for a.ring.Stats().Subscribers == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed, refused := tcpRecord(42000, flow.OutcomeClosed, 0), tcpRecord(42001, flow.OutcomeRefused, 0)
	a.ring.Add(history.KindFinal, &closed, nil, time.Now().UnixNano())
	start := time.Now()
	a.ring.Add(history.KindFinal, &refused, nil, time.Now().UnixNano())
	select {
	case cn := <-got:
		if cn.Client.Port != 42001 || cn.Outcome != "refused" {
			t.Errorf("streamed %+v, want the refused connection only", cn)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("streamed after %v", d)
		}
	case <-ctx.Done():
		t.Fatal("nothing streamed")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Follow: %v", err)
	}
}

// TestSlowFollowerNeverBlocks: a follower that stops reading does not slow
// the history down; the events it misses and its disconnection are
// counted.
func TestSlowFollowerNeverBlocks(t *testing.T) {
	// An Add that waited for the stuck follower would wait for its write
	// timeout; the bound below is a third of it, so a loaded host's
	// scheduling delays cannot be taken for blocking.
	const writeTimeout = 3 * time.Second
	a, srv := apiOnly(t, apiConfig{HistorySize: 64, FollowWriteTimeout: writeTimeout})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(conn, "GET "+api.PathConnections+"?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("follow answer %q: %v", line, err)
	}
	for a.ring.Stats().Subscribers == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The follower reads nothing from now on.
	rec := tcpRecord(43000, flow.OutcomeClosed, 0)
	start := time.Now()
	var slowest time.Duration
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; a.dropped.Load() == 0; i++ {
		t0 := time.Now()
		a.ring.Add(history.KindFinal, &rec, nil, t0.UnixNano())
		slowest = max(slowest, time.Since(t0))
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // let the follower's goroutine run
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower not dropped after %d events (%+v)", i, a.ring.Stats())
		}
	}
	st := a.ring.Stats()
	t.Logf("dropped after %v, %d events added, slowest Add %v, follower lost %d", time.Since(start), st.Added[history.KindFinal], slowest, st.FollowerLost)
	if slowest > writeTimeout/3 {
		t.Errorf("an Add took %v while a follower was stuck (write timeout %v)", slowest, writeTimeout)
	}
	if st.FollowerLost == 0 {
		t.Errorf("no lost events counted for the stuck follower")
	}
	for time.Now().Before(deadline) && a.ring.Stats().Subscribers != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.ring.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers left after the drop", n)
	}
}
