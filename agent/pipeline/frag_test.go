package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/parser"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// frag is one fragment of a datagram's data: bytes [off, off+n), with MF
// set when more is true.
type frag struct {
	off, n int
	more   bool
}

// split cuts a datagram of size bytes into fragments of at most chunk
// bytes (a multiple of 8), in order.
func split(size, chunk int) []frag {
	var fs []frag
	for off := 0; off < size; off += chunk {
		n := min(chunk, size-off)
		fs = append(fs, frag{off, n, off+n < size})
	}
	return fs
}

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// udpDatagram returns the IP payload of a UDP datagram (header and data)
// of size bytes between src and dst.
func udpDatagram(tb testing.TB, src, dst netip.Addr, size int) []byte {
	tb.Helper()
	udp := &layers.UDP{SrcPort: 5001, DstPort: 5002}
	data := make([]byte, size-8)
	for i := range data {
		data[i] = byte(i)
	}
	var nl gopacket.NetworkLayer = &layers.IPv4{Version: 4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Protocol: layers.IPProtocolUDP}
	if src.Is6() {
		nl = &layers.IPv6{Version: 6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), NextHeader: layers.IPProtocolUDP}
	}
	if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, udp, gopacket.Payload(data))
}

// fragFrames returns the Ethernet frames of the fragments fs of payload
// (the IP payload of one datagram), for IPv4 or IPv6 by the family of src.
func fragFrames(tb testing.TB, src, dst netip.Addr, id uint32, payload []byte, fs []frag) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, f := range fs {
		chunk := gopacket.Payload(payload[f.off : f.off+f.n])
		if src.Is4() {
			eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
			ip := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(id), Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), FragOffset: uint16(f.off / 8)}
			if f.more {
				ip.Flags = layers.IPv4MoreFragments
			}
			out = append(out, serialize(tb, eth, ip, chunk))
			continue
		}
		eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		fh := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(f.off / 8), MoreFragments: f.more, Identification: id}
		out = append(out, serialize(tb, eth, ip, fh, chunk))
	}
	return out
}

func plainWorker(tb testing.TB) *Worker {
	tb.Helper()
	w, err := NewWorker(parser.Config{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

func published(w *Worker) *Counters {
	w.Publish()
	c := new(Counters)
	w.AddTo(c)
	return c
}

var (
	v4a, v4b = netip.MustParseAddr("10.244.0.8"), netip.MustParseAddr("10.244.1.8")
	v6a, v6b = netip.MustParseAddr("fd00::8"), netip.MustParseAddr("fd00:1::8")
)

func TestFragmentTracker(t *testing.T) {
	const sec = int64(time.Second)
	type step struct {
		frag int   // index into the datagram's fragments
		at   int64 // packet time offset
	}
	seq := func(at int64, idx ...int) []step {
		var s []step
		for _, i := range idx {
			s = append(s, step{i, at})
		}
		return s
	}
	three := split(3000, 1480) // 0-1480, 1480-2960, 2960-3000
	tests := []struct {
		name     string
		src, dst netip.Addr
		frags    []frag
		steps    []step
		// expected after the steps (and a Publish at the last step's time)
		completed, incomplete, dups, pending uint64
		first, nonFirst                      uint64
	}{
		{name: "v4 in order", src: v4a, dst: v4b, frags: three, steps: seq(0, 0, 1, 2), completed: 1, first: 1, nonFirst: 2},
		{name: "v4 out of order", src: v4a, dst: v4b, frags: three, steps: seq(0, 2, 0, 1), completed: 1, first: 1, nonFirst: 2},
		{name: "v4 reverse", src: v4a, dst: v4b, frags: three, steps: seq(0, 2, 1, 0), completed: 1, first: 1, nonFirst: 2},
		{name: "v4 duplicates", src: v4a, dst: v4b, frags: three, steps: seq(0, 0, 0, 1, 1, 2), completed: 1, dups: 2, first: 2, nonFirst: 3},
		{name: "v4 overlapping", src: v4a, dst: v4b, frags: []frag{{0, 1000, true}, {800, 800, true}, {1600, 400, false}, {400, 400, true}}, steps: seq(0, 0, 3, 2, 1), completed: 1, dups: 1, first: 1, nonFirst: 3},
		// A copy arriving after the datagram completed starts a datagram
		// of its own that never completes, as in the kernel's queue.
		{name: "v4 late duplicate", src: v4a, dst: v4b, frags: three, steps: seq(0, 0, 1, 2, 1), completed: 1, pending: 1, first: 1, nonFirst: 3},
		{name: "v4 missing middle, within timeout", src: v4a, dst: v4b, frags: three, steps: []step{{0, 0}, {2, 0}, {0, 29 * sec}}, pending: 1, dups: 1, first: 2, nonFirst: 1},
		{name: "v4 missing middle, timed out", src: v4a, dst: v4b, frags: three, steps: []step{{0, 0}, {2, 0}, {0, 31 * sec}}, incomplete: 1, pending: 1, first: 2, nonFirst: 1},
		{name: "v4 middle after timeout", src: v4a, dst: v4b, frags: three, steps: []step{{0, 0}, {2, 1 * sec}, {1, 31 * sec}}, incomplete: 1, pending: 1, first: 1, nonFirst: 2},
		{name: "v4 last fragment only", src: v4a, dst: v4b, frags: three, steps: seq(0, 2), pending: 1, nonFirst: 1},
		{name: "v6 in order", src: v6a, dst: v6b, frags: split(3000, 1448), steps: seq(0, 0, 1, 2), completed: 1, first: 1, nonFirst: 2},
		{name: "v6 out of order", src: v6a, dst: v6b, frags: split(3000, 1448), steps: seq(0, 1, 2, 0), completed: 1, first: 1, nonFirst: 2},
		{name: "v6 missing middle", src: v6a, dst: v6b, frags: split(3000, 1448), steps: []step{{0, 0}, {2, 0}, {2, 40 * sec}}, incomplete: 1, pending: 1, dups: 0, first: 1, nonFirst: 2},
		{name: "v6 atomic fragment", src: v6a, dst: v6b, frags: []frag{{0, 100, false}}, steps: seq(0, 0), completed: 1, first: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := 0
			for _, f := range tt.frags {
				size = max(size, f.off+f.n)
			}
			payload := udpDatagram(t, tt.src, tt.dst, size)
			frames := fragFrames(t, tt.src, tt.dst, 0x1234, payload, tt.frags)
			w := plainWorker(t)
			base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
			for _, st := range tt.steps {
				m := Meta{Time: base + st.at, Len: uint32(len(frames[st.frag])), Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
				w.Handle(frames[st.frag], &m)
			}
			c := published(w)
			fam := 0
			if tt.src.Is6() {
				fam = 1
			}
			got := [...]uint64{c.FragCompleted[fam], c.FragIncomplete[fam], c.FragDuplicates[fam], c.FragPending[fam], c.Fragments()[fam][0], c.Fragments()[fam][1], c.FragEvicted[fam]}
			want := [...]uint64{tt.completed, tt.incomplete, tt.dups, tt.pending, tt.first, tt.nonFirst, 0}
			if got != want {
				t.Errorf("completed, incomplete, duplicates, pending, first, non-first, evicted = %v, want %v", got, want)
			}
			if c.FragRole[flow.RolePod][fam] != c.Fragments()[fam] {
				t.Errorf("pod-role fragments %v, all %v", c.FragRole[flow.RolePod][fam], c.Fragments()[fam])
			}
			if other := c.FragCompleted[1-fam] + c.FragIncomplete[1-fam] + c.FragPending[1-fam]; other != 0 {
				t.Errorf("%d datagrams counted in the other family", other)
			}
		})
	}
}

// TestFragmentInterleaved sends the fragments of many datagrams between the
// same hosts interleaved, with IPv4 and IPv6 sharing identification
// values: each completes on its own.
func TestFragmentInterleaved(t *testing.T) {
	w := plainWorker(t)
	var all [][][]byte
	for id := range uint32(50) {
		src, dst := v4a, v4b
		if id%2 == 1 {
			src, dst = v6a, v6b
		}
		fs := split(4000, 1480)
		all = append(all, fragFrames(t, src, dst, id/2, udpDatagram(t, src, dst, 4000), fs))
	}
	m := Meta{Time: time.Now().UnixNano(), Role: flow.RoleOverlay, Dir: flow.DirOut, LinkType: decoders.LinkEthernet}
	for i := range 3 {
		for d := len(all) - 1; d >= 0; d-- {
			m.Time += 1000
			w.Handle(all[d][(i+d)%3], &m)
		}
	}
	c := published(w)
	if c.FragCompleted != [2]uint64{25, 25} || c.FragPending != [2]uint64{} || c.FragDuplicates != [2]uint64{} {
		t.Errorf("completed %v pending %v duplicates %v; want 25 each, no pending, no duplicates", c.FragCompleted, c.FragPending, c.FragDuplicates)
	}
	if c.FragRole[flow.RoleOverlay][0] != [2]uint64{25, 50} {
		t.Errorf("overlay IPv4 fragments %v, want first 25, non-first 50", c.FragRole[flow.RoleOverlay][0])
	}
}

// TestFragmentIdleExpiry checks that Publish times datagrams out by packet
// time moved on by wall time while the source is idle, and that
// FlushFragments empties the tracker.
func TestFragmentIdleExpiry(t *testing.T) {
	w := plainWorker(t)
	w.SetFragConfig(FragConfig{Timeout: 50 * time.Millisecond})
	frames := fragFrames(t, v4a, v4b, 7, udpDatagram(t, v4a, v4b, 3000), split(3000, 1480))
	m := Meta{Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), LinkType: decoders.LinkEthernet}
	w.Handle(frames[0], &m)
	if c := published(w); c.FragPending[0] != 1 || c.FragIncomplete[0] != 0 {
		t.Fatalf("pending %d incomplete %d right after the fragment, want 1 and 0", c.FragPending[0], c.FragIncomplete[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for published(w).FragIncomplete[0] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle worker never timed its datagram out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := published(w); c.FragPending[0] != 0 || c.FragIncomplete[0] != 1 {
		t.Errorf("pending %d incomplete %d after the timeout, want 0 and 1", c.FragPending[0], c.FragIncomplete[0])
	}

	w.Handle(frames[1], &m)
	w.Handle(frames[0], &m)
	w.FlushFragments()
	if c := published(w); c.FragPending[0] != 0 || c.FragIncomplete[0] != 2 {
		t.Errorf("after FlushFragments: pending %d incomplete %d, want 0 and 2", c.FragPending[0], c.FragIncomplete[0])
	}
}

// floodFrame returns a first fragment whose IPv4 identification (bytes
// 18:20 of the frame) the flood rewrites.
func floodFrame(tb testing.TB) []byte {
	return fragFrames(tb, v4a, v4b, 0, udpDatagram(tb, v4a, v4b, 3000), split(3000, 1480))[0]
}

func TestFragmentFloodStaysBounded(t *testing.T) {
	const n = 100_000
	w := plainWorker(t)
	frame := floodFrame(t)
	m := Meta{Time: time.Now().UnixNano(), Len: uint32(len(frame)), Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	rng := rand.New(rand.NewPCG(1, 2))
	// Random identifications (and sources, since a 16-bit ID space is
	// smaller than the flood).
	flood := func() {
		binary.BigEndian.PutUint16(frame[18:20], uint16(rng.Uint32()))
		frame[29] = byte(rng.Uint32())
		m.Time += 1000
		w.Handle(frame, &m)
	}
	for range n {
		flood()
	}
	c := published(w)
	tracked := c.FragCompleted[0] + c.FragIncomplete[0] + c.FragEvicted[0] + c.FragPending[0]
	if c.FragPending[0] != DefaultMaxDatagrams || w.frags.n != DefaultMaxDatagrams || len(w.frags.entries) != DefaultMaxDatagrams {
		t.Errorf("pending %d, tracked %d in %d entries; want the bound %d", c.FragPending[0], w.frags.n, len(w.frags.entries), DefaultMaxDatagrams)
	}
	if c.FragEvicted[0] < n-DefaultMaxDatagrams-n/100 || c.FragDuplicates[0]+tracked != n {
		t.Errorf("evicted %d, duplicates %d, datagrams %d of %d fragments", c.FragEvicted[0], c.FragDuplicates[0], tracked, n)
	}
	checkTracker(t, &w.frags)
	if allocs := testing.AllocsPerRun(10_000, flood); allocs != 0 {
		t.Errorf("%.2f allocations per fragment of the flood", allocs)
	}
	// Once the flood stops, every datagram times out: none leaks.
	m.Time += int64(DefaultReassemblyTimeout) + 1
	w.Handle(tcpFrame(t, 1, "A", nil), &m)
	if c := published(w); c.FragPending[0] != 0 || c.FragIncomplete[0] != DefaultMaxDatagrams {
		t.Errorf("after the timeout: pending %d incomplete %d, want 0 and %d", c.FragPending[0], c.FragIncomplete[0], DefaultMaxDatagrams)
	}
}

// checkTracker verifies the tracker's index against its age list.
func checkTracker(t *testing.T, tr *fragTracker) {
	t.Helper()
	n, prevFirst := 0, int64(-1<<63)
	for i := tr.head; i >= 0 && n <= tr.n; i = tr.entries[i].next {
		e := &tr.entries[i]
		if got := tr.lookup(e.hash, &e.key); got != i {
			t.Fatalf("entry %d found at %d", i, got)
		}
		if e.first < prevFirst {
			t.Fatalf("age list out of order at entry %d", i)
		}
		prevFirst = e.first
		n++
	}
	used := 0
	for _, s := range tr.slots {
		if s >= 0 {
			used++
		}
	}
	if n != tr.n || used != tr.n || tr.pending[0]+tr.pending[1] != tr.n {
		t.Fatalf("age list %d, slots %d, pending %v, n %d", n, used, tr.pending, tr.n)
	}
}

// TestFragmentTrackerIndex drives a small tracker with random fragments of
// a few datagrams and checks that every tracked datagram stays reachable
// through the index while entries are added, completed, evicted and timed
// out.
func TestFragmentTrackerIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tr := fragTracker{cfg: FragConfig{MaxDatagrams: 16, Timeout: time.Second}}
	var c Counters
	ip := decoders.IP{Family: 4, Proto: 17, HeaderLen: 20, Src: v4a, Dst: v4b}
	now := int64(0)
	for i := range 200_000 {
		ip.ID = rng.Uint32N(40)
		k := rng.IntN(4)
		ip.FragOffset = uint16(k * 8)
		ip.TotalLen = 28
		ip.MF = k < 3
		now += int64(rng.IntN(int(time.Millisecond)))
		if rng.IntN(500) == 0 {
			now += int64(2 * time.Second)
		}
		tr.add(&ip, 0, now, &c)
		if i%97 == 0 {
			checkTracker(t, &tr)
		}
	}
	checkTracker(t, &tr)
	if c.FragCompleted[0] == 0 || c.FragEvicted[0] == 0 || c.FragIncomplete[0] == 0 {
		t.Errorf("completed %d evicted %d incomplete %d: every path should have been taken", c.FragCompleted[0], c.FragEvicted[0], c.FragIncomplete[0])
	}
}

func TestFragSpans(t *testing.T) {
	tests := []struct {
		name  string
		add   [][2]uint32
		spans []fragSpan
		dups  int
	}{
		{"adjacent merge", [][2]uint32{{0, 8}, {8, 16}}, []fragSpan{{0, 16}}, 0},
		{"gap kept", [][2]uint32{{0, 8}, {16, 24}}, []fragSpan{{0, 8}, {16, 24}}, 0},
		{"fill gap", [][2]uint32{{0, 8}, {16, 24}, {8, 16}}, []fragSpan{{0, 24}}, 0},
		{"inside is duplicate", [][2]uint32{{0, 24}, {8, 16}}, []fragSpan{{0, 24}}, 1},
		{"bridge three", [][2]uint32{{0, 8}, {16, 24}, {32, 40}, {4, 36}}, []fragSpan{{0, 40}}, 0},
		{"before first", [][2]uint32{{16, 24}, {0, 8}}, []fragSpan{{0, 8}, {16, 24}}, 0},
		{"empty ignored", [][2]uint32{{8, 8}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e fragEntry
			dups := 0
			for _, a := range tt.add {
				if e.cover(a[0], a[1]) {
					dups++
				}
			}
			if got := e.spans[:e.nspans]; fmt.Sprint(got) != fmt.Sprint(tt.spans) || dups != tt.dups {
				t.Errorf("spans %v dups %d, want %v %d", got, dups, tt.spans, tt.dups)
			}
		})
	}
	var e fragEntry
	for i := range uint32(maxFragSpans + 1) {
		e.cover(i*16, i*16+8)
	}
	if !e.overflow || e.nspans != maxFragSpans {
		t.Errorf("after %d disjoint ranges: overflow %v, %d spans", maxFragSpans+1, e.overflow, e.nspans)
	}
}

// fragCaptures are the captures of tcpdump's tests with IPv4 fragments or
// IPv6 fragment headers, from the tshark catalog.
func fragCaptures(tb testing.TB) []string {
	tb.Helper()
	out, err := exec.Command("grep", "-E", "ipfrag|ipv6.fraghdr", "../../decoders/parser/testdata/tshark-catalog.txt").Output()
	if err != nil {
		tb.Fatalf("reading the tshark catalog: %v", err)
	}
	var names []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// fragReplayExceptions are captures, corrupt on purpose, whose fragments
// the decoders reject (see decoders/parser's knownDifferences).
var fragReplayExceptions = map[string]string{
	"ip6_frag_asan.pcap":      "IPv6 fragment header beyond the payload length: a decode error",
	"ip_printroute_asan.pcap": "IPv4 header whose options overrun the frame: a decode error",
}

// Frames whose first IP header is a fragment, as tshark sees them (the
// header chain is pinned as in decoders/parser's tshark comparison, so that
// headers quoted in ICMP errors do not count).
const (
	tsharkLink     = `^(eth:ethertype:((vlan|ieee8021ad):ethertype:)*|sll:(ethertype:)?((vlan|ieee8021ad):ethertype:)*|null:|loop:|raw:|)`
	tsharkFragment = `(frame.protocols matches "` + tsharkLink + `ip(:|$)" && (ip.flags.mf#1 == 1 || ip.frag_offset#1 > 0)) || ` +
		`frame.protocols matches "` + tsharkLink + `ipv6(:ipv6[.](hopopts|routing|dstopts))*:ipv6[.]fraghdr"`
)

// tsharkDatagrams reads the fragments of the first frames of path with
// tshark and returns the number of fragments, of datagrams and of IPv4
// datagrams tshark reassembled. A datagram is a distinct (family,
// identification, source, destination[, protocol]); one seen again more
// than timeout after its first fragment (by a clock that never goes back)
// is a new datagram, as the host's reassembly queue timed out.
func tsharkDatagrams(tb testing.TB, path string, frames uint64, timeout time.Duration) (nfrags, ndatagrams, nreassembled int) {
	tb.Helper()
	// -2: two passes, so that ip.reassembled_in is set.
	out, err := exec.Command("tshark", "-2", "-r", path, "-Y", tsharkFragment,
		"-T", "fields", "-E", "occurrence=f",
		"-e", "frame.number", "-e", "frame.time_epoch",
		"-e", "ip.id", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "ip.reassembled_in",
		"-e", "ipv6.fraghdr.ident", "-e", "ipv6.src", "-e", "ipv6.dst").Output()
	if err != nil {
		tb.Fatalf("tshark: %v", err)
	}
	open, reassembled := map[string]time.Time{}, map[string]bool{}
	var clock time.Time
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		var num uint64
		var sec, nsec int64
		fmt.Sscan(f[0], &num)
		if num > frames {
			break
		}
		fmt.Sscanf(f[1], "%d.%d", &sec, &nsec)
		if t := time.Unix(sec, nsec); t.After(clock) {
			clock = t
		}
		key := "v4 " + strings.Join(f[2:6], " ")
		if f[2] == "" {
			key = "v6 " + strings.Join(f[7:10], " ")
		}
		nfrags++
		if first, ok := open[key]; !ok || clock.Sub(first) > timeout {
			open[key] = clock
			ndatagrams++
		}
		if f[6] != "" {
			reassembled[key] = true
		}
	}
	return nfrags, ndatagrams, len(reassembled)
}

// TestReplayFragmentsAgreeWithTshark replays every capture with fragments
// and compares the worker's fragments and the tracker's datagrams with
// tshark's.
func TestReplayFragmentsAgreeWithTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is needed to check the fragment replays (apt-get install tshark)")
	}
	files := fragCaptures(t)
	if len(files) < 20 {
		t.Fatalf("only %d fragment captures in the catalog", len(files))
	}
	var totalFrags, totalDatagrams uint64
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(pcapDir, name)
			fs, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			w := plainWorker(t)
			st, err := Replay(context.Background(), fs, w)
			if err != nil {
				t.Fatal(err)
			}
			var c Counters
			w.AddTo(&c)
			// A malformed record ends a replay: compare the frames before it.
			frags, datagrams, reassembled := tsharkDatagrams(t, path, st.Frames, DefaultReassemblyTimeout)
			gotFrags := c.Fragments()[0][0] + c.Fragments()[0][1] + c.Fragments()[1][0] + c.Fragments()[1][1]
			gotDatagrams := sum2(c.FragCompleted) + sum2(c.FragIncomplete) + sum2(c.FragPending) + sum2(c.FragEvicted)
			if why, ok := fragReplayExceptions[name]; ok {
				t.Logf("tshark: %d fragments, %d datagrams; layerscope: %d, %d (%s)", frags, datagrams, gotFrags, gotDatagrams, why)
				return
			}
			if gotFrags != uint64(frags) || gotDatagrams != uint64(datagrams) || c.FragCompleted[0] != uint64(reassembled) {
				t.Errorf("fragments %d, datagrams %d, IPv4 completed %d; tshark: %d, %d, reassembled %d",
					gotFrags, gotDatagrams, c.FragCompleted[0], frags, datagrams, reassembled)
			}
			totalFrags += gotFrags
			totalDatagrams += gotDatagrams
		})
	}
	t.Logf("%d captures: %d fragments of %d datagrams agree with tshark", len(files), totalFrags, totalDatagrams)
	if totalFrags < 200 {
		t.Errorf("only %d fragments compared", totalFrags)
	}
}

func sum2(a [2]uint64) uint64 { return a[0] + a[1] }

// BenchmarkHandleFragmentReplay replays the fragment-heavy afs.pcap (200
// fragments of 51 datagrams among 601 frames) through a worker with the
// fragment tracker.
func BenchmarkHandleFragmentReplay(b *testing.B) {
	frames, metas := loadFrames(b, "afs.pcap")
	w, _ := newWorker(b)
	b.ReportAllocs()
	i := 0
	t := time.Now().UnixNano()
	for b.Loop() {
		m := metas[i]
		t += 1000
		m.Time = t
		w.Handle(frames[i], &m)
		if i++; i == len(frames) {
			i = 0
		}
	}
}

// BenchmarkHandleFragmentFlood handles first fragments with random
// identifications against a full tracker: every one evicts the oldest.
func BenchmarkHandleFragmentFlood(b *testing.B) {
	w, _ := newWorker(b)
	frame := floodFrame(b)
	m := Meta{Time: time.Now().UnixNano(), Len: uint32(len(frame)), Role: flow.RolePod, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint16(frame[18:20], uint16(rng.Uint32()))
		frame[29] = byte(rng.Uint32())
		m.Time += 1000
		w.Handle(frame, &m)
	}
}

// TestFragmentOuterTunnel fragments the outer IPv4 packet of a VXLAN frame:
// the first fragment decodes as the tunnel (inner packet in the main view),
// the second as a plain fragment; together they are one complete datagram.
func TestFragmentOuterTunnel(t *testing.T) {
	outerSrc, outerDst := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	inner := udpFrame(t, v4a, v4b, false, 1500) // the pod's 1500-byte packet in an inner Ethernet frame
	udp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
	if err := udp.SetNetworkLayerForChecksum(&layers.IPv4{SrcIP: outerSrc.AsSlice(), DstIP: outerDst.AsSlice(), Protocol: layers.IPProtocolUDP}); err != nil {
		t.Fatal(err)
	}
	payload := serialize(t, udp, &layers.VXLAN{ValidIDFlag: true, VNI: 1}, gopacket.Payload(inner))
	for _, tc := range []struct {
		name  string
		order []int
		vlan  bool
	}{{"in order", []int{0, 1}, false}, {"reverse", []int{1, 0}, false}, {"vlan tagged", []int{0, 1}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			frames := fragFrames(t, outerSrc, outerDst, 0x4242, payload, split(len(payload), 1480))
			if tc.vlan {
				for i, f := range frames {
					tagged := append(bytes.Clone(f[:12]), 0x81, 0x00, 0x00, 0x05)
					frames[i] = append(tagged, f[12:]...)
				}
			}
			w := plainWorker(t)
			m := Meta{Time: 1, Role: flow.RoleUplink, Dir: flow.DirIn, LinkType: decoders.LinkEthernet}
			for _, i := range tc.order {
				w.Handle(frames[i], &m)
			}
			c := published(w)
			if c.Tunnel[1] != 1 || c.FragCompleted[0] != 1 || c.FragPending[0] != 0 || c.FragRole[flow.RoleUplink][0] != [2]uint64{1, 1} {
				t.Errorf("vxlan %d, completed %d, pending %d, uplink fragments %v; want 1, 1, 0, [1 1]", c.Tunnel[1], c.FragCompleted[0], c.FragPending[0], c.FragRole[flow.RoleUplink][0])
			}
		})
	}
}
