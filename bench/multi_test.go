package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/internal/testns"
)

// The multi-interface benchmark: a node namespace with multiPods pod veths
// and one overlay link, each fed by its own trafgen from a generator
// namespace. Half of b.N goes to the pods (multiRate/2 packets/s over them,
// 256 flows each, pod i's to destination port 8080+i), half to the overlay
// as VXLAN (VNI 1) carrying pod 0's flows again: each of those is one entry
// with two hops, updated by two rings' workers.
const (
	multiPods = 8
	multiRate = 1000000 // packets/s offered in total
)

// BenchmarkLiveMulti captures all nine interfaces with one ring and one
// worker goroutine each, as the agent does, into one flow table, and reports
// the capturing process's CPU as a share of one core over the offering time
// (cores), per packet, the ring drops, and the packets actually offered per
// second (trafgen may fall short on a busy machine).
//
// Its sub-benchmarks are no capture (baseline), the agent's default path
// (full) and the path with the eBPF fast path on every ring (offload): run
// them alternating with -count.
func BenchmarkLiveMulti(b *testing.B) {
	for _, mode := range []string{"baseline", "full", "offload"} {
		b.Run(mode, func(b *testing.B) { liveMulti(b, mode) })
	}
}

// liveMulti runs one mode: "baseline" offers the traffic with no ring
// open (the machine's and softirq's CPU for trafgen and the veths alone),
// "full" and "offload" capture it.
func liveMulti(b *testing.B, mode string) {
	offload := mode == "offload"
	if b.N < 10000 {
		return
	}
	if _, err := exec.LookPath("trafgen"); err != nil {
		b.Skip("trafgen not installed (apt install netsniff-ng)")
	}
	gen, node := testns.Make(b, "lsm-gen"), testns.Make(b, "lsm-node")
	type link struct {
		gen, cap string
		index    int
		role     flow.Role
		cfg      string
		n, rate  int
	}
	var links []*link
	for i := range multiPods + 1 {
		l := &link{gen: fmt.Sprintf("g%d", i), cap: fmt.Sprintf("pod%d", i), role: flow.RolePod, n: b.N / 2 / multiPods, rate: multiRate / 2 / multiPods}
		frame := podFrame(b, uint16(8080+i))
		counters := map[int]string{14 + 20 + 1: "dinc(0, 255)", 14 + 20 + 4: "dinc(0, 254)"}
		if i == multiPods {
			l.cap, l.role, l.n, l.rate = "ovl0", flow.RoleOverlay, b.N/2, multiRate/2
			frame = vxlanFrame(b, podFrame(b, 8080))
			const in = 14 + 20 + 8 + 8 // the inner frame's offset
			counters = map[int]string{
				in + 14 + 20 + 1: "dinc(0, 255)", // source port: pod 0's 256 flows
				in + 14 + 20 + 4: "dinc(0, 254)", // sequence number
			}
		}
		l.cfg = writeTrafgen(b, l.cap+".cfg", frame, counters)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.gen, MTU: 1500, TxQLen: 10000}, PeerName: l.cap, PeerNamespace: netlink.NsFd(int(node.Fd))}
		if err := gen.H.LinkAdd(veth); err != nil {
			b.Fatalf("add veth: %v", err)
		}
		if err := gen.H.LinkSetUp(veth); err != nil {
			b.Fatal(err)
		}
		peer := node.Link(b, l.cap)
		if err := node.H.LinkSetUp(peer); err != nil {
			b.Fatal(err)
		}
		l.index = peer.Attrs().Index
		links = append(links, l)
	}
	table, err := flowtable.New(&flowtable.Config{MaxEntries: 65536})
	if err != nil {
		b.Fatal(err)
	}
	var seen, counted atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	var rings []*capture.Ring
	for _, l := range links {
		if mode == "baseline" {
			break
		}
		rc := capture.Config{NetNS: node.Enter, SnapLen: liveSnapLen, BlockSize: 128 << 10, NumBlocks: 8} // a pod's ring
		if l.role == flow.RoleOverlay {
			rc.BlockSize, rc.NumBlocks = 256<<10, 32 // the overlay's
		}
		if offload {
			rc.Offload = &capture.OffloadConfig{}
		}
		r, err := capture.Open(l.index, rc)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		off := r.Offload()
		if offload && off == nil {
			reason, err := r.OffloadFallback()
			b.Fatalf("eBPF fast path not used: %s: %v", reason, err)
		}
		defer off.Close()
		rings = append(rings, r)
		w, err := pipeline.NewWorker(parser.Config{}, table)
		if err != nil {
			b.Fatal(err)
		}
		w.SetFilterSeq(offload)
		m := pipeline.Meta{Role: l.role, LinkType: decoders.LinkEthernet, IfIndex: int32(l.index)}
		handle := func(frame []byte, cm *capture.Meta) {
			m.Time, m.Len, m.Dir = cm.Timestamp.UnixNano(), uint32(cm.Length), cm.Direction
			w.Handle(frame, &m)
			seen.Add(1)
		}
		readers.Go(func() {
			_ = readRing(ctx, r, off, w, l.index, l.role, handle, func(n uint64) {
				seen.Add(int64(n))
				counted.Add(int64(n))
			})
		})
	}
	stats := func() (s capture.Stats) {
		for _, r := range rings {
			st, _ := r.Stats()
			s.Packets += st.Packets
			s.Drops += st.Drops
		}
		return s
	}
	before := stats()
	b.ResetTimer()
	u0, s0 := rusageSplit()
	m0, q0 := machineTimes(b)
	t0 := time.Now()
	var gens sync.WaitGroup
	for _, l := range links {
		gens.Go(func() { offer(b, gen.Name, l.gen, l.cfg, l.n, l.rate) })
	}
	gens.Wait()
	wall := time.Since(t0)
	offered := 0
	for _, l := range links {
		offered += l.n
	}
	deadline := time.Now().Add(5 * time.Second)
	for mode != "baseline" && time.Now().Before(deadline) {
		if after := stats(); (offload || int64(after.Packets-before.Packets) >= int64(offered)) && seen.Load()+int64(after.Drops-before.Drops) >= int64(offered) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	u1, s1 := rusageSplit()
	m1, q1 := machineTimes(b)
	machine, softirq := m1-m0, q1-q0
	b.StopTimer()
	cancel()
	readers.Wait()
	after := stats()
	cpu := u1 - u0 + s1 - s0
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(offered), "cpu-ns/pkt")
	b.ReportMetric(float64(machine.Nanoseconds())/float64(offered), "machine-ns/pkt")
	// The receive path's time (veth, AF_PACKET's copies, the filters):
	// in softirq context, charged to no process.
	b.ReportMetric(float64(softirq.Nanoseconds())/float64(offered), "softirq-ns/pkt")
	b.ReportMetric((cpu+softirq).Seconds()/wall.Seconds(), "cores+softirq")
	b.ReportMetric(float64(offered)/wall.Seconds(), "offered-pkt/s")
	b.ReportMetric(float64(after.Drops-before.Drops), "drops")
	b.ReportMetric(float64(seen.Load())/float64(offered)*100, "%seen")
	if offload {
		b.ReportMetric(float64(counted.Load())/float64(offered)*100, "%kernel-counted")
	}
	st := table.Stats()
	b.ReportMetric(float64(st.Entries), "flows")
	b.Logf("%d packets offered in %v on %d interfaces (%.0f packets/s); %d captured, %d dropped; %d flows",
		offered, wall.Round(time.Millisecond), len(links), float64(offered)/wall.Seconds(), seen.Load(), after.Drops-before.Drops, st.Entries)
	hops := map[uint8]int{}
	for _, r := range table.Snapshot(nil) {
		if r.Key.Proto == flow.ProtoTCP {
			hops[r.NumHops]++
		}
	}
	b.Logf("TCP flows by number of hops: %v", hops)
	var perRing []string
	for i, r := range rings {
		st, _ := r.Stats()
		perRing = append(perRing, fmt.Sprintf("%s %d/%d", links[i].cap, st.Drops, st.Packets))
	}
	b.Logf("drops/packets by ring: %v", perRing)
	runtime.KeepAlive(table)
}

// vxlanFrame encapsulates inner in Ethernet/IPv4/UDP to port 4789/VXLAN
// (VNI 1), between two node addresses.
func vxlanFrame(b *testing.B, inner []byte) []byte {
	b.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{172, 18, 0, 2}, DstIP: net.IP{172, 18, 0, 3}}
	udp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
	_ = udp.SetNetworkLayerForChecksum(ip)
	vx := make([]byte, 8)
	vx[0] = 0x08 // VNI present
	binary.BigEndian.PutUint32(vx[4:], 1<<8)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(append(vx, inner...))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
