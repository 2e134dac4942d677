package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// newLab builds a lab with a unique prefix, removed when the test ends.
func newLab(t *testing.T) *lab.Lab { t.Helper(); return newLabWired(t, lab.WiringBridge) }

// newLabWired is newLab with the given pod wiring.
func newLabWired(t *testing.T, w lab.Wiring) *lab.Lab {
	t.Helper()
	testns.RequireRoot(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.New(ctx, &lab.Config{Prefix: "a" + hex.EncodeToString(b[:]) + "-", Wiring: w})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// startAgent runs an agent observing the lab node and waits until it is
// ready (every interface present at start captured).
func startAgent(t *testing.T, l *lab.Lab, node string) *Agent {
	t.Helper()
	return startAgentConfig(t, Config{NetNS: l.NetNS(node), MetricsAddr: "127.0.0.1:0", Kube: KubeConfig{ServiceBackends: true}})
}

// startAgentConfig runs an agent configured by cfg and waits until it is
// ready.
func startAgentConfig(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a
}

// runAgent runs a until the test ends and waits until it is ready. stop
// ends Run early; wait returns Run's error once it returned.
func runAgent(t *testing.T, a *Agent) (stop context.CancelFunc, wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var runErr error
	go func() { defer close(finished); runErr = a.Run(ctx) }()
	wait = func() error { <-finished; return runErr }
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !a.workers.Started() {
		if time.Now().After(deadline) {
			t.Fatal("agent not ready within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cancel, wait
}

// ifIndex returns the index of a link in a lab namespace.
func ifIndex(t *testing.T, l *lab.Lab, member, name string) int32 {
	t.Helper()
	ns, err := l.Namespace(member)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := links.List(links.Config{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ls {
		if k.Name == name {
			return int32(k.Index)
		}
	}
	t.Fatalf("no link %s in %s", name, member)
	return 0
}

// TestLiveCrossNodeTCPOnEveryHop makes one TCP connection from pod-a to
// pod-c across the VXLAN and checks that the agent of node-1 saw it on the
// pod veth, on vxlan0 and, encapsulated, on eth0, with per-direction packet
// counts equal to the client socket's own TCP_INFO segment counts.
func TestLiveCrossNodeTCPOnEveryHop(t *testing.T) { crossNodeTCPOnEveryHop(t, false) }

// TestLiveCrossNodeTCPOnEveryHopOffload is the same with the eBPF fast path
// (--capture-offload), the request's body sent in 40 small segments so
// that the kernel counts most of the connection's frames on each hop: the
// per-hop packet counts must still equal the client socket's.
func TestLiveCrossNodeTCPOnEveryHopOffload(t *testing.T) { crossNodeTCPOnEveryHop(t, true) }

func crossNodeTCPOnEveryHop(t *testing.T, offload bool) {
	l := newLab(t)
	cfg := Config{NetNS: l.NetNS(lab.Node1), MetricsAddr: "127.0.0.1:0", Kube: KubeConfig{ServiceBackends: true}}
	cfg.Capture.Offload = offload
	a := startAgentConfig(t, cfg)
	podA, _ := l.Pod(lab.PodA)
	podC, _ := l.Pod(lab.PodC)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := l.DialTCP(ctx, lab.PodA, netip.AddrPortFrom(podC.IP, lab.ServicePort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := conn.(*net.TCPConn)
	if !offload {
		if _, err := io.WriteString(tc, "GET /hello HTTP/1.1\r\nHost: pod-c\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	} else {
		const chunks, size = 40, 100
		if _, err := fmt.Fprintf(tc, "POST /hello HTTP/1.1\r\nHost: pod-c\r\nContent-Length: %d\r\n\r\n", chunks*size); err != nil {
			t.Fatal(err)
		}
		for range chunks {
			if _, err := tc.Write(bytes.Repeat([]byte{'x'}, size)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, tc) // until the server's FIN
	time.Sleep(100 * time.Millisecond)
	info := tcpInfo(t, tc)
	if info.Segs_out < 4 || info.Segs_in < 4 {
		t.Fatalf("client socket sent %d and received %d segments: not a whole exchange", info.Segs_out, info.Segs_in)
	}
	t.Logf("client socket: %d segments out, %d in", info.Segs_out, info.Segs_in)
	local := netip.MustParseAddrPort(tc.LocalAddr().String())

	key := flow.Key{Src: podA.IP, Dst: podC.IP, SrcPort: local.Port(), DstPort: lab.ServicePort, Proto: flow.ProtoTCP}
	// Rings hand frames over at the latest after their block timeout:
	// wait until every hop has seen every segment, or give up and report.
	var rec flow.Record
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		rec, ok = a.workers.Table().Lookup(key)
		if ok && complete(&rec, 3, uint64(info.Segs_out+info.Segs_in)) || time.Now().After(deadline) {
			break
		}
	}
	if rec.Key != key {
		t.Errorf("record oriented %v, want client→server %v", rec.Key, key)
	}
	want := map[int32]string{
		ifIndex(t, l, lab.Node1, podA.HostVeth): "pod veth",
		ifIndex(t, l, lab.Node1, lab.VXLANName): "vxlan0",
		ifIndex(t, l, lab.Node1, lab.NodeIface): "eth0",
	}
	if int(rec.NumHops) != len(want) {
		t.Errorf("seen on %d hops, want %d (pod veth, vxlan0, eth0)", rec.NumHops, len(want))
	}
	for _, h := range rec.Hops[:rec.NumHops] {
		name, ok := want[h.IfIndex]
		if !ok {
			t.Errorf("unexpected hop interface %d", h.IfIndex)
			continue
		}
		delete(want, h.IfIndex)
		if h.Packets[flow.FromClient] != uint64(info.Segs_out) || h.Packets[flow.FromServer] != uint64(info.Segs_in) {
			t.Errorf("%s: packets client→server %d, server→client %d; the client socket sent %d and received %d",
				name, h.Packets[flow.FromClient], h.Packets[flow.FromServer], info.Segs_out, info.Segs_in)
		}
		if wantEncap := name == "eth0"; (h.Encap == flow.EncapVXLAN) != wantEncap {
			t.Errorf("%s: encapsulation %v", name, h.Encap)
		}
	}
	for _, name := range want {
		t.Errorf("never seen on %s", name)
	}
	if rtt := rec.TCP.HandshakeRTT(); rtt <= 0 || rtt > time.Second {
		t.Errorf("handshake RTT %v", rtt)
	}
	if rec.Outcome != flow.OutcomeClosed {
		t.Errorf("outcome %v, want closed", rec.Outcome)
	}
	if rec.Tunnel.Encap != flow.EncapVXLAN || rec.Tunnel.VNI != lab.VNI {
		t.Errorf("tunnel %+v, want VXLAN VNI %d", rec.Tunnel, lab.VNI)
	}
	if offload {
		st := a.workers.Offload()
		t.Logf("fast path: %d rings, %d frames counted in the kernel, fallbacks %v", st.Rings, st.Counted, st.Fallbacks)
		if st.Rings == 0 || len(st.Fallbacks) != 0 {
			t.Errorf("fast path on %d rings, fallbacks %v", st.Rings, st.Fallbacks)
		}
		if st.Counted < uint64(info.Segs_out) {
			t.Errorf("the kernel counted %d frames over all hops; want at least the %d the client sent (most of them, on three hops)", st.Counted, info.Segs_out)
		}
	}

	// The handshake histogram and the per-layer counters are exported,
	// and the exposition passes promtool's lint (promlint).
	metrics := scrapeAgent(t, a)
	lint(t, metrics)
	for _, want := range []string{
		`layerscope_l4_tcp_handshake_seconds_count `,
		`layerscope_l2_tunnel_packets_total{tunnel="vxlan"} `,
		`layerscope_capture_packets_total{direction="out",role="uplink"} `,
	} {
		if v := sample(metrics, want); v <= 0 {
			t.Errorf("%s= %v, want > 0", want, v)
		}
	}
}

// complete reports whether r was seen on hops interfaces with total
// packets on each.
func complete(r *flow.Record, hops int, total uint64) bool {
	if int(r.NumHops) < hops {
		return false
	}
	for _, h := range r.Hops[:r.NumHops] {
		if h.Packets[0]+h.Packets[1] < total {
			return false
		}
	}
	return true
}

func tcpInfo(t *testing.T, c *net.TCPConn) *unix.TCPInfo {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return info
}

func scrapeAgent(t *testing.T, a *Agent) string {
	t.Helper()
	time.Sleep(2 * publishInterval) // workers publish every publishInterval
	code, body := get(t, "http://"+a.Addr().String()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// sample returns the value of the line starting with prefix, or -1.
func sample(body, prefix string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			if _, err := fmt.Sscan(strings.TrimPrefix(line, prefix), &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestLiveDNSRcodes checks the agent's DNS responses by rcode against the
// dns scenario's own counts. Each DNS message crosses two captured pod veths
// on node-1 (pod-a's and the DNS pod's); the flow table counts it once.
func TestLiveDNSRcodes(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := l.Traffic(ctx, lab.ScenarioDNS, lab.TrafficOptions{DNSMix: [3]int{4, 3, 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"layerscope_l7_dns_queries_total ": float64(r.Attempted)}
	for rcode, label := range map[string]string{"NOERROR": "noerror", "NXDOMAIN": "nxdomain", "SERVFAIL": "servfail"} {
		want[`layerscope_l7_dns_responses_total{rcode="`+label+`"} `] = float64(r.RCodes[rcode])
	}
	// Counters are published every publishInterval: poll until they
	// settle or a deadline passes.
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; {
		metrics = scrapeAgent(t, a)
		settled := true
		for k, v := range want {
			settled = settled && sample(metrics, k) == v
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	for k, v := range want {
		if got := sample(metrics, k); got != v {
			t.Errorf("%s= %v, want %v (the scenario's rcodes: %v)", k, got, v, r.RCodes)
		}
	}
}

// TestLiveNewVethAttachedWithinASecond creates a pod veth (enslaved to cbr0,
// its peer in a new pod namespace) in node-1 after the agent started, and expects a ring on it within
// one second, and none once it is deleted.
func TestLiveNewVethAttachedWithinASecond(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	h, err := netns.GetFromName(l.NetNS(lab.Node1))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	br, err := nh.LinkByName(lab.BridgeName)
	if err != nil {
		t.Fatal(err)
	}
	pod := testns.Make(t, "lsnew")
	start := time.Now()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vnew0", MasterIndex: br.Attrs().Index}, PeerName: "vnew1",
		PeerNamespace: netlink.NsFd(int(pod.Fd))}
	if err := nh.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	attached := func() bool {
		for _, at := range a.workers.Manager().Attached() {
			if at.Link.Name == "vnew0" {
				return at.Link.Role == flow.RolePod
			}
		}
		return false
	}
	for !attached() {
		if time.Since(start) > time.Second {
			t.Fatalf("vnew0 not captured within 1s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("captured %v after creation", time.Since(start).Round(time.Millisecond))
	if err := nh.LinkDel(veth); err != nil {
		t.Fatal(err)
	}
	for start = time.Now(); attached(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > time.Second {
			t.Fatalf("vnew0 still captured 1s after deletion")
		}
	}
}

// conntrackCount runs `conntrack -C` inside a lab member.
func conntrackCount(t *testing.T, l *lab.Lab, member string) float64 {
	t.Helper()
	out, err := lab.RunInNetNS(context.Background(), l.NetNS(member), nil, "conntrack", "-C")
	if err != nil {
		t.Fatalf("conntrack -C: %v: %s", err, out)
	}
	var n float64
	if _, err := fmt.Sscan(string(out), &n); err != nil {
		t.Fatalf("conntrack -C printed %q", out)
	}
	return n
}

// conntrackDrops sums the drop counters of `conntrack -S` in a lab member.
func conntrackDrops(t *testing.T, l *lab.Lab, member string) float64 {
	t.Helper()
	out, err := lab.RunInNetNS(context.Background(), l.NetNS(member), nil, "conntrack", "-S")
	if err != nil {
		t.Fatalf("conntrack -S: %v: %s", err, out)
	}
	var sum float64
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "drop="); ok {
			var n float64
			fmt.Sscan(v, &n)
			sum += n
		}
	}
	return sum
}

// TestLiveConntrackHealth checks the table health metrics against
// conntrack-tools in node-1: entries after the service scenario, then the
// drop counter after a connection flood with the global limit lowered (the
// lab restores it).
func TestLiveConntrackHealth(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{}); err != nil {
		t.Fatal(err)
	}
	var metrics string
	var entries, want float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		metrics = scrapeAgent(t, a)
		entries, want = sample(metrics, "layerscope_conntrack_entries "), conntrackCount(t, l, lab.Node1)
		if (entries == want && want > 0) || time.Now().After(deadline) {
			break
		}
	}
	if entries != want || want == 0 {
		t.Errorf("layerscope_conntrack_entries = %v, conntrack -C = %v", entries, want)
	}
	limit := sample(metrics, "layerscope_conntrack_entries_limit ")
	if max, err := lab.ReadConntrackMax(); err != nil || limit != float64(max) {
		t.Errorf("entries_limit = %v, nf_conntrack_max = %v (%v)", limit, max, err)
	}
	if fill := sample(metrics, "layerscope_conntrack_fill_ratio "); fill <= 0 || fill != entries/limit {
		t.Errorf("fill ratio %v, want %v/%v", fill, entries, limit)
	}
	if v := sample(metrics, `layerscope_conntrack_flagged_entries{flag="nat"} `); v <= 0 {
		t.Errorf("no NATed entries after service traffic: %v", v)
	}

	// Flood with the limit lowered just above the table's size, scraping
	// the agent meanwhile: the table must be seen full (entries == limit,
	// fill ratio 1). That the ETA falls while the table fills is checked by
	// agent/conntrack's TestTableFull with a fast stats interval.
	limitDuring := int(entries) + 100
	type obs struct{ entries, limit, fill, eta float64 }
	var seen []obs
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(publishInterval)
			resp, err := http.Get("http://" + a.Addr().String() + "/metrics")
			if err != nil {
				continue // reported by the assertions below if it persists
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := string(b)
			o := obs{sample(m, "layerscope_conntrack_entries "), sample(m, "layerscope_conntrack_entries_limit "),
				sample(m, "layerscope_conntrack_fill_ratio "), sample(m, "layerscope_conntrack_exhaustion_eta_seconds ")}
			seen = append(seen, o)
			if o.limit != float64(limitDuring) && len(seen) > 1 && seen[len(seen)-2].limit == float64(limitDuring) {
				return // restored
			}
		}
	}()
	var r *lab.Report
	var err error
	ino := netnsInode(t, l.NetNS(lab.Node1))
	logged := false
	for try := 0; try < 3 && !logged; try++ {
		if try > 0 {
			time.Sleep(5 * time.Second) // the kernel rate-limits its message over 5 s
		}
		r, err = l.Traffic(ctx, lab.ScenarioConntrackFlood, lab.TrafficOptions{ConntrackMax: limitDuring, Count: 400})
		if err != nil {
			t.Fatal(err)
		}
		logged = kernelLogged(t, fmt.Sprintf("table full in netns %d, dropping packet", ino))
	}
	<-done
	if r.Flood == nil || !r.Flood.Restored || r.Flood.Failed == 0 {
		t.Fatalf("flood did not fill the table: %+v", r.Flood)
	}
	if !logged {
		t.Errorf("the kernel never logged \"table full in netns %d, dropping packet\"", ino)
	}
	full := false
	for _, o := range seen {
		full = full || (o.limit == float64(limitDuring) && o.entries == o.limit && o.fill == 1 && o.eta == 0)
	}
	if !full {
		t.Errorf("the agent never reported the table full (entries == limit %d, fill ratio 1, ETA 0): %v", limitDuring, seen)
	}
	drops := conntrackDrops(t, l, lab.Node1)
	var got float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		got = sample(scrapeAgent(t, a), "layerscope_conntrack_stat_drop_total ")
		if got == drops || time.Now().After(deadline) {
			break
		}
	}
	if drops == 0 || got != drops {
		t.Errorf("layerscope_conntrack_stat_drop_total = %v, conntrack -S drops = %v", got, drops)
	}
	// The status's recent counts hold the flood's drops, which all fell
	// in the last minutes (the lab's namespaces are new).
	c, err := api.NewClient(api.ClientConfig{URL: "http://" + a.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.StatusSince(ctx, api.MaxStatusSince)
	if err != nil {
		t.Fatal(err)
	}
	if st.Conntrack == nil || st.Conntrack.Recent == nil || float64(st.Conntrack.Recent.Drop) != drops {
		t.Errorf("status conntrack %+v: want recent drops = conntrack -S drops %v", st.Conntrack, drops)
	}
	if code, body := get(t, "http://"+a.Addr().String()+api.PathStatus+"?since=1h"); code != http.StatusBadRequest || !strings.Contains(body, "since=") {
		t.Errorf("status?since=1h: %d %q; want 400 naming since", code, body)
	}
}

// serviceCounts returns the agent's layerscope_service_connections_total
// samples by "service:port backend outcome".
func serviceCounts(metrics string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, "layerscope_service_connections_total{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		var n float64
		fmt.Sscan(value, &n)
		out[l["service"]+":"+l["port"]+" "+l["backend"]+" "+l["outcome"]] += n
	}
	return out
}

// TestLiveServiceCorrelation checks the per-backend connection counts of
// node-1's agent against the service scenario's ground truth (the backend
// that answered each request whose DNAT happened on node-1: ClusterIP calls
// from pod-a and pod-b, NodePort calls from node-2), then the dead-backend
// scenario: only pod-c fails, and it is named dead.
func TestLiveServiceCorrelation(t *testing.T) {
	testServiceCorrelation(t, newLab(t))
}

// TestLiveServiceCorrelationKubeProxy is TestLiveServiceCorrelation in the
// Kubernetes lab: the DNAT is the real kube-proxy's, in iptables mode and in
// nftables mode (a numgen map, no per-endpoint chains).
func TestLiveServiceCorrelationKubeProxy(t *testing.T) {
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			testServiceCorrelation(t, newKubeLab(t, mode))
		})
	}
}

// newKubeLab builds a lab with the real control plane and kube-proxy in
// the given mode, removed when the test ends.
func newKubeLab(t *testing.T, mode lab.KubeProxyMode) *lab.Lab {
	t.Helper()
	bin := testns.K8sBin(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, err := lab.New(ctx, &lab.Config{Prefix: "k" + hex.EncodeToString(b[:]) + "-", StateDir: t.TempDir(),
		Kubernetes: true, KubeProxyMode: mode, K8sBin: bin})
	if err != nil {
		t.Fatalf("kubernetes lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

func testServiceCorrelation(t *testing.T, l *lab.Lab) {
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	expect := map[string]float64{}
	add := func(r *lab.Report) {
		for _, q := range r.Requests {
			if q.NATNode != lab.Node1 {
				continue
			}
			pod, ok := l.Pod(q.DNATBackend)
			if !ok {
				t.Fatalf("request %+v: no DNAT backend recorded", q)
			}
			outcome := "closed"
			if q.Refused {
				outcome = "refused"
			} else if !q.OK() {
				t.Fatalf("request failed other than refused: %+v", q)
			}
			if q.OK() && q.Backend != q.DNATBackend {
				t.Fatalf("answered by %s, DNATed to %s", q.Backend, q.DNATBackend)
			}
			expect[q.Target.String()+" "+netip.AddrPortFrom(pod.IP, lab.ServicePort).String()+" "+outcome]++
		}
	}
	check := func(stage string) {
		t.Helper()
		// Flows end (and are joined) after the flow table's closed timeout.
		var got map[string]float64
		for deadline := time.Now().Add(20 * time.Second); ; {
			got = serviceCounts(scrapeAgent(t, a))
			if fmt.Sprint(got) == fmt.Sprint(expect) || time.Now().After(deadline) {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(expect) {
			t.Errorf("%s: connections by service, backend, outcome:\n got %v\nwant %v", stage, got, expect)
		}
	}

	r, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add(r)
	if len(expect) < 4 {
		t.Fatalf("the scenario DNATed too little on node-1 to test: %v", expect)
	}
	check("service")

	// 30 calls per client: pod-c gets at least the 3 failures in a row
	// that make it dead, with overwhelming probability.
	r, err = l.Traffic(ctx, lab.ScenarioDeadBackend, lab.TrafficOptions{Count: 30})
	if err != nil {
		t.Fatal(err)
	}
	add(r)
	check("dead-backend")
	metrics := scrapeAgent(t, a)
	podC, _ := l.Pod(lab.PodC)
	for _, p := range l.Backends() {
		be := netip.AddrPortFrom(p.IP, lab.ServicePort).String()
		want := 0.0
		if p.IP == podC.IP {
			want = 1
		}
		key := `layerscope_service_dead_backend{backend="` + be + `",namespace="",port="8080",protocol="tcp",service="10.96.0.42",workload=""} `
		if got := sample(metrics, key); got != want {
			t.Errorf("%s= %v, want %v", key, got, want)
		}
	}
}

// netnsInode returns the inode number of a named network namespace, as the
// kernel prints it.
func netnsInode(t *testing.T, name string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// kernelLogged reports whether the kernel log holds a line containing msg.
func kernelLogged(t *testing.T, msg string) bool {
	t.Helper()
	out, err := exec.Command("dmesg").CombinedOutput()
	if err != nil {
		t.Fatalf("dmesg: %v: %s", err, out)
	}
	return strings.Contains(string(out), msg)
}

// TestLiveMTUMismatch runs the mtu scenario leaving pod-b at MTU 1500 on
// the 1450 overlay: the agent names pod-b's veth, its kernel fragmentation
// counters follow node-1's /proc/net/snmp, and putting the MTU back clears
// the mismatch by the next scrape.
func TestLiveMTUMismatch(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	podB, _ := l.Pod(lab.PodB)
	before, err := l.SNMP(lab.Node1)
	if err != nil {
		t.Fatal(err)
	}
	m0 := scrapeAgent(t, a)
	if v := sample(m0, "layerscope_mtu_mismatches "); v != 0 {
		t.Fatalf("mismatches before the scenario: %v", v)
	}
	r, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{KeepMTU: true})
	if err != nil {
		t.Fatal(err)
	}
	after, err := l.SNMP(lab.Node1)
	if err != nil {
		t.Fatal(err)
	}
	m1 := scrapeAgent(t, a)
	key := `layerscope_mtu_mismatch{actual="1500",expected="1450",interface="` + podB.HostVeth + `",reason="pod_above_overlay"} `
	if v := sample(m1, key); v != 1 {
		t.Errorf("%s= %v, want 1", key, v)
	}
	if v := sample(m1, "layerscope_mtu_mismatches "); v != 1 {
		t.Errorf("mismatches = %v, want 1 (pod-b's veth only)", v)
	}
	for metric, counter := range map[string]string{
		`layerscope_l3_kernel_fragments_created_total{family="ipv4"} `: "Ip.FragCreates",
		`layerscope_l3_kernel_fragmented_total{family="ipv4"} `:        "Ip.FragOKs",
	} {
		got := sample(m1, metric) - sample(m0, metric)
		if want := float64(after[counter] - before[counter]); got != want || want == 0 {
			t.Errorf("%sdelta %v, node-1's %s delta %v", metric, got, counter, want)
		}
	}
	if r.MTU.NoDFSent == 0 {
		t.Fatalf("scenario sent no datagrams without DF: %+v", r.MTU)
	}

	// Back to 1450: cleared at the next scrape.
	for _, member := range []string{lab.Node1, lab.PodB} {
		name := podB.HostVeth
		if member == lab.PodB {
			name = lab.PodIface
		}
		if _, err := lab.RunInNetNS(ctx, l.NetNS(member), nil, "ip", "link", "set", name, "mtu", strconv.Itoa(lab.PodMTU)); err != nil {
			t.Fatal(err)
		}
	}
	m2 := scrapeAgent(t, a)
	if v := sample(m2, "layerscope_mtu_mismatches "); v != 0 {
		t.Errorf("mismatches after restoring the MTU = %v, want 0", v)
	}
	if v := sample(m2, key); v != -1 {
		t.Errorf("%s still exported after restoring the MTU", key)
	}

	// The status remembers it, cleared, with when it was found and fixed.
	code, body := get(t, "http://"+a.Addr().String()+"/api/v1/status")
	var st api.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/api/v1/status: %d %s", code, body)
	}
	if len(st.MTU.Mismatches) != 1 {
		t.Fatalf("status MTU mismatches %+v, want pod-b's, cleared", st.MTU.Mismatches)
	}
	mm := st.MTU.Mismatches[0]
	if mm.Interface != podB.HostVeth || mm.Actual != 1500 || mm.Expected != 1450 || mm.Cleared == nil ||
		mm.Since.IsZero() || mm.Cleared.Before(mm.Since) || time.Since(*mm.Cleared) > time.Minute {
		t.Errorf("status MTU mismatch %+v (cleared %v), want %s 1500 > 1450 found then cleared just now", mm, mm.Cleared, podB.HostVeth)
	}
}

// pmtuReports fetches the agent's PMTU reports.
func pmtuReports(t *testing.T, a *Agent) (out struct {
	Reports  []PMTUReport
	Oversize []OversizeReport
}) {
	t.Helper()
	code, body := get(t, "http://"+a.Addr().String()+"/api/v1/pmtu")
	if code != 200 {
		t.Fatalf("/api/v1/pmtu: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("/api/v1/pmtu: %v: %s", err, body)
	}
	return out
}

// TestLivePMTUAndFragments runs the mtu scenario (pod-b at MTU 1500 on the
// 1450 overlay): DF datagrams to pod-c and through the Service draw
// frag-needed reports with MTU 1450 that the agent attributes to pod-b →
// pod-c and to pod-b → 10.96.0.42:8080; the datagrams without DF are cut
// by node-1, and the fragments the agent sees on the overlay equal node-1's
// FragCreates delta; the DF datagrams are counted as too big for the path.
//
// node-1 drops these datagrams before their conntrack entries are
// confirmed, so conntrack never lists them, and its NAT translates the
// frag-needed back (quoted header and source) before it reaches pod-b's
// veth: the report's flow is the quoted header itself, already the
// client → service tuple.
func TestLivePMTUAndFragments(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	podB, _ := l.Pod(lab.PodB)
	podC, _ := l.Pod(lab.PodC)
	// A first run raises pod-b's MTU and leaves it; the agent follows link
	// MTUs every second.
	if _, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{KeepMTU: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * pathRefresh)
	before, err := l.SNMP(lab.Node1)
	if err != nil {
		t.Fatal(err)
	}
	m0 := scrapeAgent(t, a)
	r, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{KeepMTU: true})
	if err != nil {
		t.Fatal(err)
	}
	after, err := l.SNMP(lab.Node1)
	if err != nil {
		t.Fatal(err)
	}
	m := r.MTU
	if m.DFSent == 0 || len(m.ServiceFragNeeded) == 0 || m.NoDFSent == 0 {
		t.Fatalf("the scenario drew no frag-needed: %+v", m)
	}

	// Fragments on the overlay: every fragment node-1 created left by vxlan0.
	var m1 string
	var frags float64
	want := float64(after["Ip.FragCreates"] - before["Ip.FragCreates"])
	for deadline := time.Now().Add(5 * time.Second); ; {
		m1 = scrapeAgent(t, a)
		frags = 0
		for _, pos := range []string{"first", "non_first"} {
			k := `layerscope_l3_fragments_total{family="ipv4",position="` + pos + `",role="overlay"} `
			frags += sample(m1, k) - max(0, sample(m0, k))
		}
		if frags == want || time.Now().After(deadline) {
			break
		}
	}
	if frags != want || want == 0 {
		t.Errorf("fragments seen on the overlay: %v, node-1 FragCreates delta %v", frags, want)
	}
	// DF datagrams entering from pod-b, too big for the 1450 path.
	k := `layerscope_l3_oversize_total{family="ipv4",role="pod"} `
	if got := sample(m1, k) - sample(m0, k); got < float64(m.DFSent+len(m.ServiceFragNeeded)) {
		t.Errorf("oversize DF from pods: %v, want at least %d", got, m.DFSent+len(m.ServiceFragNeeded))
	}
	if got := sample(m1, `layerscope_l3_pmtu_reports_total{family="ipv4",mtu="1450"} `) - max(0, sample(m0, `layerscope_l3_pmtu_reports_total{family="ipv4",mtu="1450"} `)); got < float64(m.DFSent+len(m.ServiceFragNeeded)) {
		t.Errorf("PMTU reports of MTU 1450: %v, want at least %d", got, m.DFSent+len(m.ServiceFragNeeded))
	}

	// Attribution. The PMTU reports are collected on the agent's path
	// ticker (every second): wait for a collection after the scenario.
	var rep struct {
		Reports  []PMTUReport
		Oversize []OversizeReport
	}
	var byFlow map[string]PMTUReport
	direct := false
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rep = pmtuReports(t, a)
		byFlow = map[string]PMTUReport{}
		for _, p := range rep.Reports {
			byFlow[p.Flow] = p
		}
		direct = false
		for flowKey, p := range byFlow {
			if strings.HasPrefix(flowKey, "udp "+podB.IP.String()+":") && strings.HasSuffix(flowKey, " -> "+netip.AddrPortFrom(podC.IP, lab.MTUTestPort).String()) {
				direct = direct || p.MTU == 1450
			}
		}
		all := direct
		for _, port := range m.ServiceFragNeeded {
			p, ok := byFlow[fmt.Sprintf("udp %s:%d -> %s", podB.IP, port, lab.ServiceAddr)]
			all = all && ok && p.MTU == 1450
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	if !direct {
		t.Errorf("no frag-needed 1450 attributed to pod-b → pod-c:%d: %+v", lab.MTUTestPort, rep.Reports)
	}
	for _, port := range m.ServiceFragNeeded {
		key := fmt.Sprintf("udp %s:%d -> %s", podB.IP, port, lab.ServiceAddr)
		if p, ok := byFlow[key]; !ok || p.MTU != 1450 {
			t.Errorf("no frag-needed 1450 attributed to %s: %+v", key, p)
		}
	}
	oversize := false
	for _, o := range rep.Oversize {
		oversize = oversize || (o.Interface == podB.HostVeth && o.Source == podB.IP.String() && o.Size == 1500 && o.PathMTU == 1450)
	}
	if !oversize {
		t.Errorf("pod-b not named as the sender of packets too big for the path: %+v", rep.Oversize)
	}
}

// TestLivePMTUThroughDNAT lowers pod-c's link on node-2 so that node-2,
// not node-1, refuses pod-b's DF datagrams sent through the Service: the
// frag-needed comes back over the overlay quoting the packet as DNATed
// (pod-b → pod-c:8080), and node-1's agent attributes it through conntrack
// to pod-b → 10.96.0.42:8080.
func TestLivePMTUThroughDNAT(t *testing.T) {
	l := newLab(t)
	a := startAgent(t, l, lab.Node1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	podB, _ := l.Pod(lab.PodB)
	podC, _ := l.Pod(lab.PodC)
	r, err := l.Traffic(ctx, lab.ScenarioMTU, lab.TrafficOptions{Count: 2, RemoteMTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.MTU.RemoteFragNeeded) == 0 {
		t.Fatalf("node-2 refused nothing: %+v", r.MTU)
	}
	time.Sleep(2 * pathRefresh)
	rep := pmtuReports(t, a)
	for _, port := range r.MTU.RemoteFragNeeded {
		quoted := fmt.Sprintf("udp %s:%d -> %s", podB.IP, port, netip.AddrPortFrom(podC.IP, lab.ServicePort))
		original := fmt.Sprintf("udp %s:%d -> %s", podB.IP, port, lab.ServiceAddr)
		found := false
		for _, p := range rep.Reports {
			found = found || (p.Quoted == quoted && p.Flow == original && p.MTU == 1400 && p.Attributed && p.Translated &&
				(p.Interface == lab.VXLANName || p.Interface == lab.NodeIface))
		}
		if !found {
			t.Errorf("no report of MTU 1400 quoting %s and attributed to %s on the overlay: %+v", quoted, original, rep.Reports)
		}
	}
}
