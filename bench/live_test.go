package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/agent/pipeline"
	"github.com/layerscope/layerscope/agent/workers"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
	"github.com/layerscope/layerscope/internal/nsenter"
	"github.com/layerscope/layerscope/internal/testns"
)

// The live benchmarks offer Rate packets/s of Ethernet/IPv4/TCP (256
// flows, 100-byte payload) with trafgen on one veth of a namespace pair and
// capture them on the peer: once with the agent's ring + decode + flow
// table, once with tcpdump at the same snap length. b.N is the number of
// packets offered. They report the CPU each spent per packet and the
// kernel's ring drops.
const (
	liveRate    = 300000 // packets/s offered
	liveSnapLen = 256
)

type vethPair struct {
	srcNS, dstNS string
	srcIf, dstIf string
	dstIndex     int
}

func newVethPair(b *testing.B) *vethPair {
	b.Helper()
	for _, tool := range []string{"trafgen", "tcpdump", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not installed (apt install netsniff-ng tcpdump iproute2)", tool)
		}
	}
	p := &vethPair{srcNS: testns.New(b, "lsb-src"), dstNS: testns.New(b, "lsb-dst"), srcIf: "gen0", dstIf: "cap0"}
	src, err := netns.GetFromName(p.srcNS)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := netns.GetFromName(p.dstNS)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	h, err := netlink.NewHandleAt(src)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.srcIf, MTU: 1500, TxQLen: 10000}, PeerName: p.dstIf, PeerNamespace: netlink.NsFd(int(dst))}
	if err := h.LinkAdd(veth); err != nil {
		b.Fatalf("add veth: %v", err)
	}
	if err := h.LinkSetUp(veth); err != nil {
		b.Fatal(err)
	}
	hd, err := netlink.NewHandleAt(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer hd.Close()
	peer, err := hd.LinkByName(p.dstIf)
	if err != nil {
		b.Fatal(err)
	}
	if err := hd.LinkSetUp(peer); err != nil {
		b.Fatal(err)
	}
	p.dstIndex = peer.Attrs().Index
	return p
}

// trafgenConfig writes a trafgen packet config of one Ethernet/IPv4/TCP
// frame whose source port's low byte counts 0-255 (256 flows, round robin)
// and whose sequence number's top byte counts 0-254. The two counters are
// coprime, so from one frame of a flow to its next the sequence number
// moves on by 1<<24 (new data, never a retransmission: in serial number
// arithmetic even the counter's wrap moves forward). A random port with a
// shared counter in bits 8-15 instead made 96-99% of the frames look like
// retransmissions, each touching the flow entry's cold counters.
func trafgenConfig(b *testing.B) string {
	b.Helper()
	return writeTrafgen(b, "frame.cfg", podFrame(b, 8080), map[int]string{
		14 + 20 + 1: "dinc(0, 255)", // low byte of the TCP source port: 256 flows
		14 + 20 + 4: "dinc(0, 254)", // top byte of the sequence number: data moves on
	})
}

// podFrame returns an Ethernet/IPv4/TCP frame from 10.244.0.5:40000 to
// 10.244.1.8:dport with 100 bytes of payload.
func podFrame(b *testing.B, dport uint16) []byte {
	b.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 244, 0, 5}, DstIP: net.IP{10, 244, 1, 8}, Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 502}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(bytes.Repeat([]byte{'x'}, 100))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// writeTrafgen writes a trafgen packet config of frame, with the bytes at
// the offsets of counters replaced by those trafgen functions.
func writeTrafgen(b *testing.B, name string, frame []byte, counters map[int]string) string {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("{ ")
	for i, c := range frame {
		if f, ok := counters[i]; ok {
			sb.WriteString(f + ", ")
			continue
		}
		fmt.Fprintf(&sb, "0x%02x, ", c)
	}
	sb.WriteString("}\n")
	path := filepath.Join(b.TempDir(), name)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// offer sends n frames at liveRate from the source namespace.
func (p *vethPair) offer(b *testing.B, cfg string, n int) {
	b.Helper()
	offer(b, p.srcNS, p.srcIf, cfg, n, liveRate)
}

// offer sends n frames of trafgen config cfg at rate packets/s on device
// dev of namespace ns.
func offer(b *testing.B, ns, dev, cfg string, n, rate int) {
	b.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "trafgen", "--dev", dev, "--conf", cfg,
		"--num", strconv.Itoa(n), "--rate", strconv.Itoa(rate)+"pps", "--cpus", "1", "--no-sock-mem", "-q").CombinedOutput()
	if err != nil {
		b.Errorf("trafgen on %s: %v\n%s", dev, err, out)
	}
}

// machineTimes returns the CPU time all CPUs spent not idle (user, system,
// irq and softirq: the kernel's receive path included) and, of it, in
// softirq context (the receive path: AF_PACKET's copies into rings and
// the socket filters run there, charged to no process), from /proc/stat
// (10 ms ticks).
func machineTimes(b *testing.B) (busy, softirq time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)[1:]
	var all int64
	for i, v := range f {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		all += n
		if i == 6 {
			softirq = time.Duration(n) * 10 * time.Millisecond
		}
	}
	return time.Duration(all) * 10 * time.Millisecond, softirq
}

// reportMachine reports the machine's busy CPU per offered packet.
func reportMachine(b *testing.B, busy time.Duration) {
	b.ReportMetric(float64(busy.Nanoseconds())/float64(b.N), "machine-ns/pkt")
}

// BenchmarkLiveBaseline offers the same traffic with no capture at all: the
// machine's CPU per packet of trafgen and the veth path alone. Subtract it
// from the others' machine-ns/pkt for the capture's own cost.
func BenchmarkLiveBaseline(b *testing.B) {
	p := newVethPair(b)
	cfg := trafgenConfig(b)
	b.ResetTimer()
	r := liveBaseline(b, p, cfg, b.N)
	reportMachine(b, r.machine)
}

// liveBaseline offers n packets with nothing capturing them.
func liveBaseline(b *testing.B, p *vethPair, cfg string, n int) liveResult {
	m0, q0 := machineTimes(b)
	p.offer(b, cfg, n)
	time.Sleep(200 * time.Millisecond)
	m1, q1 := machineTimes(b)
	return liveResult{n: n, machine: m1 - m0, softirq: q1 - q0}
}

func rusageSplit() (user, sys time.Duration) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkLiveAgent captures with the agent's per-ring path: TPACKET_V3
// ring → decode L2–L7 → flow table → per-layer counters ("full"), the same
// with the flow-table updates batched per ring block ("batch",
// pipeline.Worker.SetBatch), and without the flow table ("decode") or with
// a handler that only counts ("ring"), to show where the time goes. The
// reader is a goroutine as in the agent; in the "-locked" modes it is locked
// to an OS thread, whose own CPU time is then reported as reader-ns/pkt
// (the locking costs a thread hand-off at every wake-up: see bench/README.md).
func BenchmarkLiveAgent(b *testing.B) {
	for _, mode := range agentModes {
		b.Run(mode, func(b *testing.B) {
			p := newVethPair(b)
			cfg := trafgenConfig(b)
			b.ResetTimer()
			r := liveAgent(b, p, cfg, mode, b.N)
			b.StopTimer()
			r.report(b)
		})
	}
}

// agentModes are the agent's capture paths the live benchmarks measure:
// "offload" is "full" with the eBPF fast path (capture.Config.Offload:
// the kernel counts the frames of established flows, drained into the
// worker and the table every workers.PublishInterval, as the agent does);
// "offload-bpfstats" the same with the kernel's run-time statistics of
// the filter on (BPF_ENABLE_STATS, two clock reads per run more), to
// report its own time per packet (bpf-ns/pkt), spent in softirq context
// and not in the agent's process.
var agentModes = []string{"ring", "decode", "full", "batch", "offload", "offload-bpfstats", "ring-locked", "decode-locked", "full-locked", "offload-locked"}

// liveResult is one capturer's run of n packets.
type liveResult struct {
	n                  int
	cpu, reader        time.Duration // the capturer's process; its reading thread (agent only)
	softirq            time.Duration // the machine's softirq time (the receive path)
	user, sys          time.Duration // the agent's process
	machine            time.Duration
	drops, seen, polls uint64
	retrans            uint64 // flow-table retransmissions (full, batch)
	counted            uint64 // frames the fast path counted in the kernel (offload)
	bpf                time.Duration
	bpfRuns            uint64 // the filter's run time and runs (offload-bpfstats)
	agent, table       bool
	locked             bool // the reader had its own thread: reader is its CPU time
}

func (r *liveResult) perPkt(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(r.n) }

func (r *liveResult) report(b *testing.B) {
	b.ReportMetric(r.perPkt(r.machine), "machine-ns/pkt")
	b.ReportMetric(r.perPkt(r.cpu), "cpu-ns/pkt")
	b.ReportMetric(r.perPkt(r.softirq), "softirq-ns/pkt")
	b.ReportMetric(float64(r.drops), "drops")
	b.ReportMetric(float64(r.seen)/float64(r.n)*100, "%seen")
	if !r.agent {
		return
	}
	b.ReportMetric(r.perPkt(r.user), "user-ns/pkt")
	b.ReportMetric(r.perPkt(r.sys), "sys-ns/pkt")
	if r.locked {
		b.ReportMetric(r.perPkt(r.reader), "reader-ns/pkt")
	}
	b.ReportMetric(float64(r.polls)/float64(r.n), "polls/pkt")
	if r.counted > 0 {
		b.ReportMetric(float64(r.counted)/float64(r.n)*100, "%kernel-counted")
	}
	if r.bpfRuns > 0 {
		b.ReportMetric(float64(r.bpf.Nanoseconds())/float64(r.bpfRuns), "bpf-ns/run")
		b.ReportMetric(r.perPkt(r.bpf), "bpf-ns/pkt")
	}
	if r.table {
		// The table's work depends on what it sees: a retransmission
		// touches the entry's cold counters.
		b.ReportMetric(float64(r.retrans)/float64(r.n), "retrans/pkt")
	}
}

func liveAgent(b *testing.B, p *vethPair, cfg string, mode string, n int) liveResult {
	ns, err := nsenter.Open(p.dstNS)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	var seen atomic.Int64
	locked := strings.HasSuffix(mode, "-locked")
	mode = strings.TrimSuffix(mode, "-locked")
	bpfStats := strings.HasSuffix(mode, "-bpfstats")
	mode = strings.TrimSuffix(mode, "-bpfstats")
	rc := capture.Config{NetNS: ns, SnapLen: liveSnapLen, NumBlocks: 32}
	if mode == "offload" {
		rc.Offload = &capture.OffloadConfig{}
	}
	ring, err := capture.Open(p.dstIndex, rc)
	if err != nil {
		b.Fatal(err)
	}
	defer ring.Close()
	off := ring.Offload()
	if rc.Offload != nil && off == nil {
		reason, err := ring.OffloadFallback()
		b.Fatalf("eBPF fast path not used: %s: %v", reason, err)
	}
	defer off.Close()
	if bpfStats {
		st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatalf("BPF run-time statistics: %v", err)
		}
		defer st.Close()
	}
	table, err := flowtable.New(&flowtable.Config{MaxEntries: 65536})
	if err != nil {
		b.Fatal(err)
	}
	withTable := mode == "full" || mode == "batch" || mode == "offload"
	var tbl pipeline.Table = table
	if !withTable {
		tbl = nil
	}
	w, err := pipeline.NewWorker(parser.Config{}, tbl)
	if err != nil {
		b.Fatal(err)
	}
	w.SetFilterSeq(off != nil)
	var counted atomic.Int64
	batch := mode == "batch"
	if batch {
		w.SetBatch(flowtable.MaxBatch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tidc := make(chan int, 1)
	go func() {
		defer close(done)
		// One thread for the reader, so its CPU time can be read apart
		// from the runtime's and this benchmark's other threads.
		if locked {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		tidc <- unix.Gettid()
		m := pipeline.Meta{Role: flow.RolePod, LinkType: decoders.LinkEthernet, IfIndex: int32(p.dstIndex)}
		handle := func(frame []byte, cm *capture.Meta) {
			if mode != "ring" {
				m.Time, m.Len, m.Dir = cm.Timestamp.UnixNano(), uint32(cm.Length), cm.Direction
				w.Handle(frame, &m)
				if batch && cm.BlockEnd {
					w.Flush()
				}
			}
			seen.Add(1)
		}
		err := readRing(ctx, ring, off, w, p.dstIndex, flow.RolePod, handle, func(n uint64) {
			counted.Add(int64(n))
			seen.Add(int64(n))
		})
		if err != nil {
			b.Errorf("drain: %v", err)
		}
	}()
	tid := <-tidc
	before, _ := ring.Stats()
	rd0 := threadRuntime(b, tid)
	u0, s0 := rusageSplit()
	m0, q0 := machineTimes(b)
	p.offer(b, cfg, n)
	deadline := time.Now().Add(5 * time.Second)
	for seen.Load() < int64(n) && time.Now().Before(deadline) {
		after, _ := ring.Stats()
		if int64(after.Packets-before.Packets) >= int64(n) && seen.Load()+int64(after.Drops-before.Drops) >= int64(n) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	rd := threadRuntime(b, tid) - rd0
	u1, s1 := rusageSplit()
	var bpfRun time.Duration
	var bpfRuns uint64
	if bpfStats {
		if bpfRun, bpfRuns, err = off.ProgramStats(); err != nil {
			b.Errorf("filter statistics: %v", err)
		}
	}
	m1, q1 := machineTimes(b)
	r := liveResult{n: n, agent: true, locked: locked, table: withTable, machine: m1 - m0, softirq: q1 - q0,
		reader: rd, user: u1 - u0, sys: s1 - s0, cpu: u1 - u0 + s1 - s0}
	cancel()
	<-done
	after, _ := ring.Stats()
	r.drops = after.Drops - before.Drops
	r.seen = uint64(seen.Load())
	r.polls = after.Polls - before.Polls
	r.retrans = table.Stats().Retransmits
	r.counted, r.bpf, r.bpfRuns = uint64(counted.Load()), bpfRun, bpfRuns
	if got := seen.Load() + int64(r.drops); got < int64(n) {
		b.Logf("%s: offered %d, captured %d, dropped %d: the rest never reached the ring", mode, n, seen.Load(), r.drops)
	}
	runtime.KeepAlive(w)
	return r
}

// readRing reads r with handle until ctx is done, as the agent's workers
// do: with a fast path (off), the kernel's counts are drained into w (and
// its table) at every workers.PublishInterval, and counted is told how
// many frames each drain brought.
func readRing(ctx context.Context, r *capture.Ring, off *capture.Offload, w *pipeline.Worker, ifIndex int, role flow.Role,
	handle capture.Handler, counted func(uint64)) error {
	if off == nil {
		_ = r.Run(ctx, handle)
		return nil
	}
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, workers.PublishInterval)
		_ = r.Run(rctx, handle)
		cancel()
		err := off.Drain(func(d *capture.Drained) {
			d.IfIndex, d.Role = int32(ifIndex), role
			w.Merge(&d.Counted)
			counted(d.Packets)
		}, func(k *flow.Key) bool { return !w.Tracks(k) })
		if err != nil {
			return err
		}
	}
	return nil
}

// threadRuntime returns the time thread tid of this process has run on a
// CPU (the scheduler's count, in nanoseconds: /proc/self/task/TID/schedstat).
// Without IRQ time accounting it includes the softirq work that
// interrupted the thread.
func threadRuntime(b *testing.B, tid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		b.Fatal(err)
	}
	ns, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	return time.Duration(ns)
}

var tcpdumpStats = regexp.MustCompile(`(\d+) packets captured[\s\S]*?(\d+) packets dropped by kernel`)

// BenchmarkLiveTcpdump is the peer: tcpdump -s 256 -B 16384 -w /dev/null on
// the same interface at the same rate.
func BenchmarkLiveTcpdump(b *testing.B) {
	p := newVethPair(b)
	cfg := trafgenConfig(b)
	b.ResetTimer()
	r := liveTcpdump(b, p, cfg, b.N)
	b.StopTimer()
	r.report(b)
}

func liveTcpdump(b *testing.B, p *vethPair, cfg string, n int) liveResult {
	cmd := exec.Command("ip", "netns", "exec", p.dstNS, "tcpdump", "-i", p.dstIf, "-s", strconv.Itoa(liveSnapLen),
		"-B", "16384", "-w", "/dev/null", "-n")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	rd := bufio.NewReader(stderr)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(line, "listening on") {
		b.Fatalf("tcpdump did not start: %q %v", line, err)
	}
	cpu0 := procCPU(b, cmd.Process.Pid)
	m0, q0 := machineTimes(b)
	p.offer(b, cfg, n)
	time.Sleep(200 * time.Millisecond) // let tcpdump drain its ring
	cpu := procCPU(b, cmd.Process.Pid) - cpu0
	m1, q1 := machineTimes(b)
	r := liveResult{n: n, cpu: cpu, machine: m1 - m0, softirq: q1 - q0}
	_ = cmd.Process.Signal(syscall.SIGINT)
	rest := new(bytes.Buffer)
	_, _ = rest.ReadFrom(rd)
	_ = cmd.Wait()
	m := tcpdumpStats.FindStringSubmatch(rest.String())
	if m == nil {
		b.Fatalf("no statistics from tcpdump: %s", rest)
	}
	captured, _ := strconv.Atoi(m[1])
	drops, _ := strconv.Atoi(m[2])
	r.seen, r.drops = uint64(captured), uint64(drops)
	return r
}

// procCPU returns the user+system CPU time of a process (10 ms ticks).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
