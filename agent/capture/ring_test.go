package capture

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/flow"
)

// pair is two namespaces joined by a veth: "a0" 10.77.0.1 in a (the ring's
// side) and "b0" 10.77.0.2 in b.
type pair struct {
	a, b  *testNS
	index int
}

func newPair(t testing.TB) pair {
	a, b := newNS(t), newNS(t)
	idx := vethPair(t, a, "a0", "10.77.0.1/24", b, "b0", "10.77.0.2/24")
	return pair{a: a, b: b, index: idx}
}

// collector runs a ring in the background and counts UDP frames by
// destination port and direction.
type collector struct {
	mu     sync.Mutex
	counts map[[2]int]int // {port, direction}
	lens   map[int][2]int // port -> {Length, CaptureLength} of the last frame
	other  int
	ended  bool // BlockEnd of the last frame delivered
	ends   int  // frames delivered with BlockEnd
	done   chan error
	cancel context.CancelFunc
}

func collect(t testing.TB, r *Ring) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{counts: map[[2]int]int{}, lens: map[int][2]int{}, done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- r.Run(ctx, func(frame []byte, m *Meta) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(frame) != m.CaptureLength || m.IfIndex != r.IfIndex() {
				c.other = -1 << 20 // poison: metadata disagrees with the frame
			}
			c.ended = m.BlockEnd
			if m.BlockEnd {
				c.ends++
			}
			if p, ok := udpDstPort(frame); ok {
				c.counts[[2]int{p, int(m.Direction)}]++
				c.lens[p] = [2]int{m.Length, m.CaptureLength}
				return
			}
			c.other++
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func (c *collector) get(port int, d flow.Direction) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[[2]int{port, int(d)}]
}

// waitFor polls cond until it holds or 3 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRingDirectionAndCounts(t *testing.T) {
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	c := collect(t, r)

	const out, in = 37, 23
	sendUDP(t, p.a, "10.77.0.2:7001", out, 100) // leaves a0: out
	sendUDP(t, p.b, "10.77.0.1:7002", in, 100)  // arrives on a0: in
	waitFor(t, "all datagrams", func() bool { return c.get(7001, flow.DirOut) == out && c.get(7002, flow.DirIn) == in })
	time.Sleep(50 * time.Millisecond) // let any extra frame arrive
	require.Equal(t, out, c.get(7001, flow.DirOut))
	require.Equal(t, in, c.get(7002, flow.DirIn))
	require.Zero(t, c.get(7001, flow.DirIn), "outgoing datagrams reported as incoming")
	require.Zero(t, c.get(7002, flow.DirOut), "incoming datagrams reported as outgoing")
	c.mu.Lock()
	require.GreaterOrEqual(t, c.other, 0, "a frame's Meta disagreed with the frame")
	require.Equal(t, [2]int{14 + 20 + 8 + 100, 14 + 20 + 8 + 100}, c.lens[7001])
	// Every frame so far has been delivered: the last one ended its block.
	require.True(t, c.ended, "the last frame delivered did not end its block")
	require.Positive(t, c.ends)
	c.mu.Unlock()

	st, err := r.Stats()
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Packets, uint64(out+in))
	require.Zero(t, st.Drops)
}

func TestRingSnapLen(t *testing.T) {
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, SnapLen: 128, BlockTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	c := collect(t, r)
	sendUDP(t, p.a, "10.77.0.2:7003", 3, 1000)
	waitFor(t, "datagrams", func() bool { return c.get(7003, flow.DirOut) == 3 })
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Equal(t, [2]int{14 + 20 + 8 + 1000, 128}, c.lens[7003])
}

func TestRingFilterFromTcpdump(t *testing.T) {
	text, err := os.ReadFile("testdata/udp-dst-9999.dd") // tcpdump -dd -y EN10MB udp dst port 9999
	require.NoError(t, err)
	prog, err := ParseFilter(string(text))
	require.NoError(t, err)
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, Filter: prog, BlockTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	c := collect(t, r)
	sendUDP(t, p.a, "10.77.0.2:9998", 20, 50)
	sendUDP(t, p.b, "10.77.0.1:9999", 5, 50)
	sendUDP(t, p.a, "10.77.0.2:9999", 10, 300) // the last frame: longer than the snap length
	waitFor(t, "matching datagrams", func() bool { return c.get(9999, flow.DirOut) == 10 && c.get(9999, flow.DirIn) == 5 })
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Equal(t, map[[2]int]int{{9999, int(flow.DirOut)}: 10, {9999, int(flow.DirIn)}: 5}, c.counts, "only udp dst port 9999 may pass")
	require.Zero(t, c.other, "non-UDP frames (ARP, ICMP) passed the filter")
	// tcpdump's "ret #262144" was lowered to the snap length.
	require.Equal(t, DefaultSnapLen, c.lens[9999][1])
}

func TestRingDropsWhenReaderStalls(t *testing.T) {
	p := newPair(t)
	// Two one-page blocks hold about 20 frames.
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockSize: os.Getpagesize(), NumBlocks: 2, BlockTimeout: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	const flood = 2000
	sendUDP(t, p.a, "10.77.0.2:7004", flood, 64) // nobody reads yet
	time.Sleep(20 * time.Millisecond)
	st, err := r.Stats()
	require.NoError(t, err)
	require.Greater(t, st.Drops, uint64(flood/2), "a stalled 8 KiB ring must drop most of a %d-frame flood: %+v", flood, st)
	require.Greater(t, st.QueueFreezes, uint64(0))

	// Drain: every frame the kernel counted is either read or dropped.
	var read uint64
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = r.Run(ctx, func([]byte, *Meta) { read++ })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st2, err := r.Stats()
	require.NoError(t, err)
	require.Equal(t, st2.Packets, read+st2.Drops, "packets = read + dropped: %+v, read %d", st2, read)
	require.GreaterOrEqual(t, st2.Packets, uint64(flood))
}

func TestRingCloseUnblocksRunAndFreesFDs(t *testing.T) {
	p := newPair(t)
	before := countFDs(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter})
	require.NoError(t, err)
	require.Equal(t, before+1, countFDs(t), "a ring holds one descriptor: its socket")
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), func([]byte, *Meta) {}) }()
	time.Sleep(50 * time.Millisecond) // let Run block in poll
	start := time.Now()
	require.NoError(t, r.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(time.Second):
		t.Fatal("Run still blocked 1 s after Close")
	}
	t.Logf("Run returned %v after Close", time.Since(start))
	require.Equal(t, before, countFDs(t))
	require.ErrorIs(t, r.Run(context.Background(), func([]byte, *Meta) {}), ErrClosed)
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err = r.Stats()
	require.NoError(t, err, "Stats after Close returns the final totals")
}

func TestRingContextStopsRunAndResumes(t *testing.T) {
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Run(ctx, func([]byte, *Meta) {}), context.DeadlineExceeded)
	// The ring keeps working after a cancelled Run.
	sendUDP(t, p.a, "10.77.0.2:7005", 4, 10)
	c := collect(t, r)
	waitFor(t, "datagrams after resume", func() bool { return c.get(7005, flow.DirOut) == 4 })
}

func TestRingCloseFromHandler(t *testing.T) {
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockTimeout: time.Millisecond})
	require.NoError(t, err)
	before := countFDs(t)
	sendUDP(t, p.a, "10.77.0.2:7006", 10, 10)
	n := 0
	err = r.Run(context.Background(), func([]byte, *Meta) {
		n++
		r.Close()
	})
	require.ErrorIs(t, err, ErrClosed)
	require.Equal(t, 1, n, "no frame is delivered after Close")
	require.Equal(t, before-1, countFDs(t))
}

func TestOpenErrors(t *testing.T) {
	requireRoot(t)
	before := countFDs(t)
	_, err := Open(1<<30, Config{})
	var oe *OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "bind", oe.Op)
	require.Equal(t, before, countFDs(t), "a failed Open leaks no descriptor")
	_, err = Open(1, Config{BlockSize: 1000})
	require.ErrorIs(t, err, ErrConfig)
	_, err = Open(1, Config{Filter: []bpf.RawInstruction{{Op: 0x28}}})
	require.ErrorIs(t, err, ErrFilter)
}

func TestParseFilter(t *testing.T) {
	dd, err := os.ReadFile("testdata/udp-dst-9999.dd")
	require.NoError(t, err)
	tests := []struct {
		name    string
		text    string
		want    []bpf.RawInstruction
		wantErr bool
	}{
		{name: "dd", text: "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000806 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n",
			want: []bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: 0x15, Jf: 1, K: 0x806}, {Op: 6, K: 0x40000}, {Op: 6}}},
		{name: "ddd", text: "4\n40 0 0 12\n21 0 1 2054\n6 0 0 262144\n6 0 0 0\n",
			want: []bpf.RawInstruction{{Op: 0x28, K: 12}, {Op: 0x15, Jf: 1, K: 0x806}, {Op: 6, K: 0x40000}, {Op: 6}}},
		{name: "comments and blanks", text: "# arp\n\n{ 0x6, 0, 0, 0x00040000 },\n", want: []bpf.RawInstruction{{Op: 6, K: 0x40000}}},
		{name: "tcpdump file", text: string(dd)},
		{name: "empty", text: "", wantErr: true},
		{name: "three fields", text: "{ 0x6, 0, 0 },", wantErr: true},
		{name: "not a number", text: "{ 0x6, 0, 0, zz },", wantErr: true},
		{name: "jt too big", text: "{ 0x6, 0, 300, 0 },", wantErr: true},
		{name: "jump past end", text: "{ 0x15, 0, 1, 0 },\n{ 0x6, 0, 0, 0 },", wantErr: true},
		{name: "ja past end", text: "{ 0x05, 0, 0, 1 },\n{ 0x6, 0, 0, 0 },", wantErr: true},
		{name: "no final return", text: "{ 0x28, 0, 0, 12 },", wantErr: true},
		{name: "count mismatch", text: "3\n6 0 0 0\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilter(tt.text)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrFilter)
				return
			}
			require.NoError(t, err)
			if tt.want != nil {
				require.Equal(t, tt.want, got)
			}
			// Every program must disassemble with x/net/bpf.
			_, ok := bpf.Disassemble(got)
			require.True(t, ok || strings.Contains(tt.name, "tcpdump"), "program does not disassemble")
		})
	}
}

func TestSnapFilter(t *testing.T) {
	got, err := snapFilter(nil, 200)
	require.NoError(t, err)
	require.Equal(t, []bpf.RawInstruction{{Op: bpfRetK, K: 200}}, got)
	in := []bpf.RawInstruction{{Op: 0x15, Jt: 0, Jf: 1, K: 1}, {Op: bpfRetK, K: 0x40000}, {Op: bpfRetK, K: 100}, {Op: bpfRetK}}
	got, err = snapFilter(in, 200)
	require.NoError(t, err)
	require.Equal(t, uint32(200), got[1].K)
	require.Equal(t, uint32(100), got[2].K)
	require.Equal(t, uint32(0), got[3].K)
	require.Equal(t, uint32(0x40000), in[1].K, "the caller's program is not modified")
}

// The kernel here has no 802.1Q module, so the put-back is checked on a
// synthetic ring frame.
func TestInsertVLAN(t *testing.T) {
	frame := make([]byte, 60)
	for i := range frame {
		frame[i] = byte(i)
	}
	tests := []struct {
		name   string
		status uint32
		tpid   uint16
		want   uint16
	}{
		{"802.1Q without TPID", unix.TP_STATUS_VLAN_VALID, 0, 0x8100},
		{"802.1ad", unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, 0x88a8, 0x88a8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Ring{scratch: make([]byte, DefaultSnapLen+4)}
			h := &frameHdr{status: tt.status, vlanTCI: 0x2064, vlanTPID: tt.tpid}
			out := r.insertVLAN(frame, h)
			require.Len(t, out, 64)
			require.Equal(t, frame[:12], out[:12])
			require.Equal(t, []byte{byte(tt.want >> 8), byte(tt.want), 0x20, 0x64}, out[12:16])
			require.Equal(t, frame[12:], out[16:])
			require.True(t, r.meta.VLANValid)
			require.Equal(t, uint16(0x2064), r.meta.VLAN)
			require.Zero(t, testing.AllocsPerRun(100, func() { r.insertVLAN(frame, h) }))
		})
	}
}

func TestRingLinkDownCountsErrorAndResumes(t *testing.T) {
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockTimeout: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	c := collect(t, r)
	sendUDP(t, p.b, "10.77.0.1:7010", 3, 10)
	waitFor(t, "datagrams before link down", func() bool { return c.get(7010, flow.DirIn) == 3 })

	a0 := p.a.Link(t, "a0")
	require.NoError(t, p.a.H.LinkSetDown(a0))
	waitFor(t, "ENETDOWN on the socket", func() bool {
		st, err := r.Stats()
		return err == nil && st.SocketErrors >= 1
	})
	st, err := r.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.SocketErrors, "one link down, one socket error")

	require.NoError(t, p.a.H.LinkSetUp(a0))
	sendUDP(t, p.b, "10.77.0.1:7011", 4, 10)
	waitFor(t, "datagrams after link up", func() bool { return c.get(7011, flow.DirIn) == 4 })
	select {
	case err := <-c.done:
		t.Fatalf("Run returned during the link flap: %v", err)
	default:
	}
}
