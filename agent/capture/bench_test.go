package capture

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/flow"
)

// flood sends a 64-byte Ethernet/IPv4/UDP frame from inside n out of
// ifName as fast as one goroutine can, without allocating, until the
// returned stop function is called. The frame's destination MAC belongs to
// nobody, so the receiving side drops it at once after capture.
func flood(tb testing.TB, n *testNS, ifName string) (stop func() uint64) {
	tb.Helper()
	var fd int
	err := n.Enter.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		tb.Fatalf("flood socket: %v", err)
	}
	frame := []byte{
		0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, // Ethernet
		0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1, // IPv4
		0x30, 0x39, 0x1e, 0x61, 0, 30, 0, 0, // UDP 12345 -> 7777
	}
	frame = append(frame, make([]byte, 22)...)
	var quit atomic.Bool
	var sent atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var k uint64
		for !quit.Load() {
			if _, err := unix.Write(fd, frame); err == nil {
				k++
			}
		}
		sent.Store(k)
	}()
	return func() uint64 {
		quit.Store(true)
		<-done
		unix.Close(fd)
		return sent.Load()
	}
}

// threadCPU returns the CPU time (user + system) of the calling OS thread.
func threadCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRingReadLive measures the per-frame cost of Ring.Run (with the
// direction read for each frame) on a ring fed by a local flood: ns/op is
// wall time per frame read (bounded by the flood rate), cpu-ns/frame the
// reader thread's CPU per frame.
func BenchmarkRingReadLive(b *testing.B) {
	p := newPair(b)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockSize: 64 << 10, NumBlocks: 256, BlockTimeout: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	stop := flood(b, p.b, "b0")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n, flooded, wrong int
	b.ReportAllocs()
	cpu0 := threadCPU(b)
	b.ResetTimer()
	err = r.Run(ctx, func(frame []byte, m *Meta) {
		n++
		if port, ok := udpDstPort(frame); ok && port == 7777 {
			flooded++
			if m.Direction != flow.DirIn {
				wrong++
			}
		}
		if n == b.N {
			cancel()
		}
	})
	b.StopTimer()
	cpu := threadCPU(b) - cpu0
	st, _ := r.Stats()
	stop()
	if err != context.Canceled {
		b.Fatalf("Run: %v", err)
	}
	if wrong != 0 || flooded < n*9/10 {
		b.Fatalf("%d of %d flood frames reported outgoing; %d other frames", wrong, flooded, n-flooded)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/frame")
	b.ReportMetric(float64(st.Polls)/float64(n), "polls/frame")
	b.ReportMetric(float64(st.Drops)/float64(st.Packets), "drop-ratio")
}

// BenchmarkGopacketReadLive is the same measurement with gopacket's afpacket
// TPacket (ZeroCopyReadPacketData, TPACKET_V3), which cannot tell the
// direction of a frame. It is kept to compare the two readers.
func BenchmarkGopacketReadLive(b *testing.B) {
	p := newPair(b)
	var tp *afpacket.TPacket
	err := p.a.Enter.Do(func() (err error) {
		tp, err = afpacket.NewTPacket(afpacket.OptInterface("a0"), afpacket.TPacketVersion3,
			afpacket.OptFrameSize(512), afpacket.OptBlockSize(64<<10), afpacket.OptNumBlocks(256),
			afpacket.OptBlockTimeout(10*time.Millisecond))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Close()
	stop := flood(b, p.b, "b0")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := tp.ZeroCopyReadPacketData(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := threadCPU(b) - cpu0
	stop()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
}

// sender writes frames out of an interface from inside a namespace.
type sender struct {
	fd    int
	frame []byte
}

func newSender(tb testing.TB, n *testNS, ifName string) *sender {
	tb.Helper()
	s := &sender{frame: make([]byte, 64)}
	copy(s.frame, []byte{0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00,
		0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1,
		0x30, 0x39, 0x1e, 0x61, 0, 30, 0, 0})
	err := n.Enter.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		tb.Fatalf("sender: %v", err)
	}
	tb.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *sender) send(tb testing.TB, n int) {
	for i := 0; i < n; i++ {
		if _, err := unix.Write(s.fd, s.frame); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRingRead is the reader's own cost per frame (direction and
// metadata included), reading frames that wait in the ring.
func BenchmarkRingRead(b *testing.B) {
	var ctx context.Context
	var cancel context.CancelFunc
	var n, want int
	fn := func(frame []byte, m *Meta) {
		if n++; n == want {
			cancel()
		}
	}
	p := newPair(b)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, BlockSize: 64 << 10, NumBlocks: 256, BlockTimeout: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s := newSender(b, p.b, "b0")
	const chunk = 50000
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= chunk {
		b.StopTimer()
		c := min(left, chunk)
		st0, _ := r.Stats()
		s.send(b, c)
		time.Sleep(25 * time.Millisecond) // the last block retires after 10 ms
		st1, _ := r.Stats()
		// The veth backlog may drop some of a burst: read what arrived.
		c = int((st1.Packets - st1.Drops) - (st0.Packets - st0.Drops))
		left += chunk - c
		ctx, cancel = context.WithCancel(context.Background())
		n, want = 0, c
		b.StartTimer()
		err := r.Run(ctx, fn)
		cancel()
		if err != context.Canceled {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if st, _ := r.Stats(); st.Drops != 0 {
		b.Fatalf("%d drops", st.Drops)
	}
}

// BenchmarkGopacketRead is BenchmarkRingRead with gopacket's
// ZeroCopyReadPacketData (no direction).
func BenchmarkGopacketRead(b *testing.B) {
	p := newPair(b)
	var tp *afpacket.TPacket
	err := p.a.Enter.Do(func() (err error) {
		tp, err = afpacket.NewTPacket(afpacket.OptInterface("a0"), afpacket.TPacketVersion3,
			afpacket.OptFrameSize(512), afpacket.OptBlockSize(64<<10), afpacket.OptNumBlocks(256),
			afpacket.OptBlockTimeout(10*time.Millisecond))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Close()
	s := newSender(b, p.b, "b0")
	const chunk = 50000
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= chunk {
		b.StopTimer()
		c := min(left, chunk)
		_, st0, _ := tp.SocketStats()
		s.send(b, c)
		time.Sleep(25 * time.Millisecond) // the last block retires after 10 ms
		_, st1, _ := tp.SocketStats()
		c = int(st1.Packets()-st1.Drops()) - int(st0.Packets()-st0.Drops())
		left += chunk - c
		b.StartTimer()
		for i := 0; i < c; i++ {
			if _, _, err := tp.ZeroCopyReadPacketData(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
