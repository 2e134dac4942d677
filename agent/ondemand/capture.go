package ondemand

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// Defaults of the agent's caps (Limits fields left zero in Caps).
const (
	DefaultMaxDuration   = 5 * time.Minute
	DefaultMaxPackets    = 1_000_000
	DefaultMaxBytes      = 256 << 20
	DefaultMaxConcurrent = 2
	DefaultSnapLen       = 65535
)

// Limits bound one capture. In a request a zero field means "the cap"; in
// the agent's caps a zero field means the package default.
type Limits struct {
	// Duration is how long the capture runs.
	Duration time.Duration
	// Packets is the most packets written.
	Packets int64
	// Bytes is the most bytes of pcap written, file header included.
	Bytes int64
	// SnapLen is the most bytes kept of each frame (64 to 65535).
	SnapLen int
}

// Caps returns l with its zero fields set to the defaults.
func (l Limits) Caps() Limits {
	if l.Duration <= 0 {
		l.Duration = DefaultMaxDuration
	}
	if l.Packets <= 0 {
		l.Packets = DefaultMaxPackets
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultMaxBytes
	}
	if l.SnapLen <= 0 {
		l.SnapLen = DefaultSnapLen
	}
	return l
}

// Within returns the request's limits lowered to the caps: a zero field,
// or one above its cap, becomes the cap. Negative fields are an error
// wrapping ErrLimits.
func (l Limits) Within(caps Limits) (Limits, error) {
	caps = caps.Caps()
	if l.Duration < 0 || l.Packets < 0 || l.Bytes < 0 || l.SnapLen < 0 {
		return l, fmt.Errorf("%w: negative limit", ErrLimits)
	}
	if l.SnapLen != 0 && l.SnapLen < 64 {
		return l, fmt.Errorf("%w: snap length %d below 64", ErrLimits, l.SnapLen)
	}
	pick := func(v, c int64) int64 {
		if v == 0 || v > c {
			return c
		}
		return v
	}
	return Limits{
		Duration: time.Duration(pick(int64(l.Duration), int64(caps.Duration))),
		Packets:  pick(l.Packets, caps.Packets),
		Bytes:    pick(l.Bytes, caps.Bytes),
		SnapLen:  int(pick(int64(l.SnapLen), int64(caps.SnapLen))),
	}, nil
}

// Limiter admits a bounded number of concurrent captures.
type Limiter struct {
	sem      chan struct{}
	rejected atomic.Uint64
}

// NewLimiter admits n captures at once (n < 1 means DefaultMaxConcurrent).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = DefaultMaxConcurrent
	}
	return &Limiter{sem: make(chan struct{}, n)}
}

// Acquire takes a slot without waiting; it returns ErrBusy when none is
// free. The caller calls release once when its capture ends.
func (l *Limiter) Acquire() (release func(), err error) {
	select {
	case l.sem <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-l.sem }) }, nil
	default:
		l.rejected.Add(1)
		return nil, fmt.Errorf("%w (at most %d)", ErrBusy, cap(l.sem))
	}
}

// Rejected returns how many Acquire calls found no free slot.
func (l *Limiter) Rejected() uint64 { return l.rejected.Load() }

// Interface is one interface to capture on.
type Interface struct {
	Name  string
	Index int
}

// Request is one capture.
type Request struct {
	// NetNS is the namespace of the interfaces; nil means the caller's.
	NetNS *nsenter.NS
	// Interfaces are captured together into one file.
	Interfaces []Interface
	// Filter selects the frames; the zero Filter takes every frame.
	Filter Filter
	// Limits must already be within the agent's caps (see Limits.Within).
	Limits Limits
	// RingBytes is the ring memory of each interface, rounded down to
	// whole blocks of 128 KiB and at least MinRingBytes. Zero means
	// MaxRingBytes.
	RingBytes int
	// Ready, when set, is called once every ring is open and the pcap
	// file header is written, before the first packet.
	Ready func()
}

// Stop says why a capture ended.
type Stop string

// Reasons a capture ends.
const (
	StopDuration Stop = "duration" // Limits.Duration elapsed
	StopPackets  Stop = "packets"  // Limits.Packets written
	StopBytes    Stop = "bytes"    // the next packet would exceed Limits.Bytes
	StopCanceled Stop = "canceled" // the context ended (client gone, agent stopping)
	StopWrite    Stop = "write"    // writing to the client failed
)

// Result sums up a capture.
type Result struct {
	Packets int64 // packets written
	Bytes   int64 // pcap bytes written, file header included
	// Dropped counts packets lost before the file: by the kernel (ring
	// full) and by the handoff to the writer.
	Dropped uint64
	Stop    Stop
}

type frame struct {
	buf *[]byte
	ci  gopacket.CaptureInfo
}

// Ring geometry of a capture: many blocks, because on a quiet interface
// the kernel hands over a block per block timeout however few frames it
// holds, and a reader that falls behind by NumBlocks timeouts drops.
const (
	ringBlockSize = 128 << 10
	// MaxRingBytes is the ring memory of one interface when the budget
	// allows it (64 blocks).
	MaxRingBytes = 64 * ringBlockSize
	// MinRingBytes is the least ring memory of one interface (2 blocks).
	MinRingBytes = 2 * ringBlockSize
)

// RingBytes divides a capture's ring budget among n interfaces: between
// MinRingBytes and MaxRingBytes each, in whole blocks.
func RingBytes(budget int64, n int) int {
	if n < 1 {
		n = 1
	}
	per := budget / int64(n)
	per -= per % ringBlockSize
	return int(min(max(per, MinRingBytes), MaxRingBytes))
}

// The handoff between the rings and the writer: at most queueLen frames
// and queueBytes of copies, so a writer stalled by a slow client holds a
// few MiB, not queueLen snapshots of 64 KiB. Copies of frames up to
// smallFrame bytes come from a pool; larger ones are allocated to size.
const (
	queueLen   = 4096
	queueBytes = 2 << 20
	smallFrame = 2048
)

// framePool recycles the copies of small frames.
type framePool struct {
	pool   sync.Pool
	queued atomic.Int64 // bytes of copies in the queue
}

// get returns a copy of data, or nil when the queue holds queueBytes.
func (p *framePool) get(data []byte) *[]byte {
	if p.queued.Add(int64(len(data))) > queueBytes {
		p.queued.Add(-int64(len(data)))
		return nil
	}
	var bp *[]byte
	if len(data) <= smallFrame {
		if v, ok := p.pool.Get().(*[]byte); ok {
			bp = v
		} else {
			b := make([]byte, 0, smallFrame)
			bp = &b
		}
		*bp = append((*bp)[:0], data...)
	} else {
		b := append([]byte(nil), data...)
		bp = &b
	}
	return bp
}

// put gives back a copy get returned once it left the queue.
func (p *framePool) put(bp *[]byte) {
	p.queued.Add(-int64(len(*bp)))
	if cap(*bp) == smallFrame {
		p.pool.Put(bp)
	}
}

// pcap record header and file header sizes.
const (
	recordHeaderLen = 16
	fileHeaderLen   = 24
)

// Run captures into w as a pcap file (nanosecond timestamps, link type
// Ethernet) until a limit is reached or ctx ends, and returns what it did.
// flush, when not nil, is called whenever the writer has caught up with the
// rings, so that a streaming client sees packets as they come. An error is
// returned only when the capture could not start (a ring failed to open);
// then nothing was written.
func Run(ctx context.Context, w io.Writer, flush func(), req *Request) (Result, error) {
	var res Result
	lim := req.Limits
	if len(req.Interfaces) == 0 {
		return res, ErrNoInterface
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Duration)
	defer cancel()
	rings := make([]*capture.Ring, 0, len(req.Interfaces))
	closeAll := func() {
		for _, r := range rings {
			r.Close()
		}
	}
	blocks := MaxRingBytes / ringBlockSize
	if req.RingBytes > 0 {
		blocks = max(req.RingBytes, MinRingBytes) / ringBlockSize
	}
	for _, ifc := range req.Interfaces {
		r, err := capture.Open(ifc.Index, capture.Config{
			NetNS:     req.NetNS,
			SnapLen:   lim.SnapLen,
			BlockSize: ringBlockSize,
			NumBlocks: blocks,
			Filter:    req.Filter.Program,
		})
		if err != nil {
			closeAll()
			return res, fmt.Errorf("capture on %s: %w", ifc.Name, err)
		}
		rings = append(rings, r)
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(uint32(lim.SnapLen), layers.LinkTypeEthernet); err != nil {
		closeAll()
		res.Stop = StopWrite
		return res, nil
	}
	res.Bytes = fileHeaderLen
	if flush != nil {
		flush()
	}
	if req.Ready != nil {
		req.Ready()
	}

	var pool framePool
	queue := make(chan frame, queueLen)
	var handoffDrops atomic.Uint64
	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Go(func() {
			_ = r.Run(ctx, func(data []byte, m *capture.Meta) {
				bp := pool.get(data)
				if bp == nil {
					handoffDrops.Add(1)
					return
				}
				f := frame{buf: bp, ci: gopacket.CaptureInfo{Timestamp: m.Timestamp, CaptureLength: len(data), Length: m.Length, InterfaceIndex: m.IfIndex}}
				select {
				case queue <- f:
				default:
					pool.put(bp)
					handoffDrops.Add(1)
				}
			})
		})
	}
	res.Stop = write(ctx, pw, flush, queue, &pool, lim, &res)
	cancel()
	closeAll()
	wg.Wait()
	for _, r := range rings {
		if st, err := r.Stats(); err == nil {
			res.Dropped += st.Drops
		}
	}
	res.Dropped += handoffDrops.Load()
	return res, nil
}

// write is the writer loop: it owns pw and res until it returns.
func write(ctx context.Context, pw *pcapgo.Writer, flush func(), queue chan frame, pool *framePool, lim Limits, res *Result) Stop {
	for {
		var f frame
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return StopDuration
			}
			return StopCanceled
		case f = <-queue:
		}
		size := int64(recordHeaderLen + f.ci.CaptureLength)
		if res.Bytes+size > lim.Bytes {
			pool.put(f.buf)
			return StopBytes
		}
		err := pw.WritePacket(f.ci, *f.buf)
		pool.put(f.buf)
		if err != nil {
			return StopWrite
		}
		res.Packets++
		res.Bytes += size
		if res.Packets >= lim.Packets {
			if flush != nil {
				flush()
			}
			return StopPackets
		}
		if len(queue) == 0 && flush != nil {
			flush()
		}
	}
}
