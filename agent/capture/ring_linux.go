package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// blockDesc is struct tpacket_block_desc with its tpacket_hdr_v1.
type blockDesc struct {
	version       uint32
	offsetToPriv  uint32
	status        uint32
	numPkts       uint32
	offsetToFirst uint32
	blkLen        uint32
	seqNum        uint64
	tsFirst       [2]uint32
	tsLast        [2]uint32
}

// frameHdr is struct tpacket3_hdr followed, at offset 48, by sockaddr_ll.
type frameHdr struct {
	nextOffset uint32
	sec        uint32
	nsec       uint32
	snaplen    uint32
	len        uint32
	status     uint32
	mac        uint16
	net        uint16
	rxHash     uint32
	vlanTCI    uint32
	vlanTPID   uint16
	_          [10]byte
	// struct sockaddr_ll
	llFamily   uint16
	llProtocol uint16
	llIfIndex  int32
	llHatype   uint16
	llPktType  uint8
	llHalen    uint8
	llAddr     [8]byte
}

var _ [48 - unsafe.Offsetof(frameHdr{}.llFamily)]struct{}
var _ [unsafe.Offsetof(frameHdr{}.llFamily) - 48]struct{}

// Ring is one TPACKET_V3 receive ring bound to one interface. Create it with
// Open, read it with Run, release it with Close.
type Ring struct {
	ifIndex int
	geo     geometry

	// Set at Open, released once by release. file owns fd and registers
	// it with the runtime's network poller; rc waits on it.
	fd   int
	file *os.File
	rc   syscall.RawConn
	mem  []byte
	base unsafe.Pointer

	// Reader state, owned by the goroutine in Run.
	cur       int
	blk       *blockDesc
	pkt       unsafe.Pointer
	left      uint32
	meta      Meta
	scratch   []byte
	ready     func(uintptr) bool // r.blockReady, bound once
	offload   *Offload           // nil: no fast path
	offReason string             // why Config.Offload is not used
	offErr    error
	waited    bool // ready was called again after a wait

	stop   atomic.Uint32 // Close or ctx cancellation asks Run to return
	polls  atomic.Uint64
	sockEr atomic.Uint64

	mu       sync.Mutex // guards below
	running  bool
	closed   bool
	released bool
	totals   Stats // kernel counters accumulated so far
}

// Open creates a ring on the interface with index ifIndex in cfg.NetNS.
func Open(ifIndex int, cfg Config) (*Ring, error) {
	g, err := cfg.geometry()
	if err != nil {
		return nil, err
	}
	prog, err := snapFilter(cfg.Filter, g.snapLen)
	if err != nil {
		return nil, err
	}
	r := &Ring{ifIndex: ifIndex, geo: g, fd: -1}
	// Protocol 0: the socket receives nothing until bind, so no frame of
	// another interface or unfiltered frame reaches it first.
	err = cfg.NetNS.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		r.fd = fd
		return err
	})
	if err != nil {
		r.fd = -1
		return nil, r.fail("socket", err)
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, r.fail("setsockopt PACKET_VERSION", err)
	}
	r.offload, r.offReason, r.offErr = openOffload(r.fd, cfg, g.snapLen)
	if r.offload == nil {
		if err := attachFilter(r.fd, prog); err != nil {
			return nil, r.fail("setsockopt SO_ATTACH_FILTER", err)
		}
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(g.blockSize),
		Block_nr:       uint32(g.numBlocks),
		Frame_size:     uint32(g.frameSize),
		Frame_nr:       uint32(g.blockSize / g.frameSize * g.numBlocks),
		Retire_blk_tov: uint32(g.tovMS),
	}
	if err := unix.SetsockoptTpacketReq3(r.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, r.fail("setsockopt PACKET_RX_RING", err)
	}
	r.mem, err = unix.Mmap(r.fd, 0, g.blockSize*g.numBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.mem = nil
		return nil, r.fail("mmap", err)
	}
	r.base = unsafe.Pointer(&r.mem[0])
	if err := unix.Bind(r.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifIndex}); err != nil {
		return nil, r.fail("bind", err)
	}
	if cfg.Promiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(ifIndex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(r.fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, r.fail("setsockopt PACKET_ADD_MEMBERSHIP", err)
		}
	}
	if cfg.FanoutGroup != 0 {
		mode := cfg.FanoutMode
		if mode == 0 {
			mode = unix.PACKET_FANOUT_HASH
		}
		if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(cfg.FanoutGroup)|mode<<16); err != nil {
			return nil, r.fail("setsockopt PACKET_FANOUT", err)
		}
	}
	// The non-blocking socket goes to the runtime's poller (epoll, edge
	// triggered): the kernel signals it each time it hands a block over.
	r.file = os.NewFile(uintptr(r.fd), "packet")
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		return nil, r.fail("register with poller", err)
	}
	if r.rc, err = r.file.SyscallConn(); err != nil {
		return nil, r.fail("register with poller", err)
	}
	r.scratch = make([]byte, g.snapLen+4)
	r.ready = r.blockReady
	return r, nil
}

// openOffload makes and attaches the fast path when cfg asks for it; nil,
// with the reason and the error, when it cannot be used.
func openOffload(fd int, cfg Config, snapLen int) (*Offload, string, error) {
	if cfg.Offload == nil {
		return nil, "", nil
	}
	if len(cfg.Filter) > 0 {
		return nil, OffloadReasonFilter, errors.New("a capture filter is set: the eBPF filter would replace it")
	}
	o, err := newOffload(cfg.Offload, snapLen)
	if err != nil {
		return nil, offloadReason(err), err
	}
	if err := o.attach(fd); err != nil {
		o.Close()
		return nil, offloadReason(err), fmt.Errorf("setsockopt SO_ATTACH_BPF: %w", err)
	}
	return o, "", nil
}

// Offload returns the ring's fast path, nil when Config.Offload was not
// set or could not be used (see OffloadFallback). It stays usable after
// the ring closes, for the last Drain; its owner closes it.
func (r *Ring) Offload() *Offload { return r.offload }

// OffloadFallback returns why the fast path Config.Offload asked for is
// not used (one of the OffloadReason values) and the error behind it; ""
// when it is used or was not asked for.
func (r *Ring) OffloadFallback() (reason string, err error) { return r.offReason, r.offErr }

func (r *Ring) fail(op string, err error) error {
	r.offload.Close()
	r.release()
	return &OpError{Op: op, IfIndex: r.ifIndex, Err: err}
}

func attachFilter(fd int, prog []bpf.RawInstruction) error {
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// IfIndex returns the index of the interface the ring is bound to.
func (r *Ring) IfIndex() int { return r.ifIndex }

// Run reads frames and calls fn for each until ctx is done (it returns
// ctx.Err() and the ring can be run again) or the ring is closed (it returns
// ErrClosed). It returns ErrBusy if another Run is in progress, and an
// *OpError if waiting fails. fn runs on Run's goroutine; the frame and Meta
// it receives are valid only until it returns. Run makes no system call and
// no allocation while frames are waiting; when the ring is empty its
// goroutine parks in the runtime's network poller, holding no OS thread.
func (r *Ring) Run(ctx context.Context, fn Handler) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.running {
		r.mu.Unlock()
		return ErrBusy
	}
	r.running = true
	r.mu.Unlock()

	var stopAfter func() bool
	if ctx.Done() != nil {
		stopAfter = context.AfterFunc(ctx, r.wake)
	}
	err := r.loop(ctx, fn)
	if stopAfter != nil {
		stopAfter()
	}

	r.mu.Lock()
	r.running = false
	if r.closed {
		err = ErrClosed
		r.release()
	}
	r.mu.Unlock()
	return err
}

// wake asks Run to return and interrupts its wait.
func (r *Ring) wake() {
	r.mu.Lock()
	r.interrupt()
	r.mu.Unlock()
}

// expired is a read deadline in the past: setting it ends a parked wait at
// once with os.ErrDeadlineExceeded.
var expired = time.Unix(1, 0)

// interrupt sets the stop request and expires the read deadline, together
// under r.mu so that stopReason clears both or neither.
func (r *Ring) interrupt() {
	r.stop.Store(1)
	if !r.released {
		r.file.SetReadDeadline(expired)
	}
}

func (r *Ring) loop(ctx context.Context, fn Handler) error {
	for {
		if r.stop.Load() != 0 {
			if err := r.stopReason(ctx); err != nil {
				return err
			}
		}
		if r.left > 0 {
			r.deliver(fn)
			continue
		}
		if r.blk != nil {
			// Give the block back; the kernel may fill it from now on.
			atomic.StoreUint32(&r.blk.status, unix.TP_STATUS_KERNEL)
			r.blk = nil
			if r.cur++; r.cur == r.geo.numBlocks {
				r.cur = 0
			}
		}
		b := (*blockDesc)(unsafe.Add(r.base, r.cur*r.geo.blockSize))
		if atomic.LoadUint32(&b.status)&unix.TP_STATUS_USER == 0 {
			if err := r.wait(); err != nil {
				return err
			}
			continue
		}
		r.blk = b
		r.left = b.numPkts
		r.pkt = unsafe.Add(unsafe.Pointer(b), b.offsetToFirst)
		// The kernel wrote the block from the CPU that received the
		// frames: start pulling its first frames over. deliver keeps
		// two frames ahead.
		prefetchFrame(r.pkt)
		if h := (*frameHdr)(r.pkt); h.nextOffset != 0 {
			prefetchFrame(unsafe.Add(r.pkt, h.nextOffset))
		}
	}
}

// stopReason returns why Run must stop, or nil (and clears the request) if
// the wake-up was stale: a context of an earlier Run.
func (r *Ring) stopReason(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.stop.Store(0)
	r.file.SetReadDeadline(time.Time{})
	return ctx.Err()
}

func (r *Ring) deliver(fn Handler) {
	p := r.pkt
	h := (*frameHdr)(p)
	frame := unsafe.Slice((*byte)(unsafe.Add(p, h.mac)), h.snaplen)
	m := &r.meta
	m.Timestamp = time.Unix(int64(h.sec), int64(h.nsec))
	m.Length = int(h.len)
	m.IfIndex = int(h.llIfIndex)
	m.PktType = h.llPktType
	m.Direction = direction(h.llPktType)
	m.VLANValid = false
	m.VLAN = 0
	if h.status&unix.TP_STATUS_VLAN_VALID != 0 && len(frame) >= 12 {
		frame = r.insertVLAN(frame, h)
		m.Length += 4
	}
	m.CaptureLength = len(frame)
	m.BlockEnd = r.left == 1
	if h.nextOffset != 0 {
		// Two frames ahead (frames of a stream have similar lengths),
		// so the lines arrive while this frame and the next are handled.
		prefetchFrame(unsafe.Add(p, 2*h.nextOffset))
	}
	fn(frame, m)
	r.left--
	if h.nextOffset != 0 {
		r.pkt = unsafe.Add(p, h.nextOffset)
	}
}

// insertVLAN puts the tag the kernel stripped back after the MAC addresses,
// in the ring's scratch buffer.
func (r *Ring) insertVLAN(frame []byte, h *frameHdr) []byte {
	tpid := uint16(unix.ETH_P_8021Q)
	if h.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && h.vlanTPID != 0 {
		tpid = h.vlanTPID
	}
	tci := uint16(h.vlanTCI)
	r.meta.VLANValid = true
	r.meta.VLAN = tci
	out := r.scratch[:len(frame)+4]
	copy(out, frame[:12])
	out[12], out[13], out[14], out[15] = byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci)
	copy(out[16:], frame[12:])
	return out
}

// wait parks Run's goroutine in the runtime's poller until the current block
// is handed over, the socket reports an error, or Close or the context
// expires the read deadline (the caller then finds r.stop set).
func (r *Ring) wait() error {
	r.waited = false
	err := r.rc.Read(r.ready)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	// Any other error is the poller reporting an event that was only an
	// error (EPOLLERR alone: internal/poll's ErrNotPollable), which it
	// repeats on every wait until the socket's next event. Take the error
	// and wait once in poll(2), briefly, so that a stop request is still
	// seen.
	r.socketError()
	fds := [1]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 20)
	switch {
	case err != nil && !errors.Is(err, unix.EINTR):
		return &OpError{Op: "poll", IfIndex: r.ifIndex, Err: err}
	case n > 0 && fds[0].Revents&unix.POLLNVAL != 0:
		return &OpError{Op: "poll", IfIndex: r.ifIndex, Err: unix.EBADF}
	}
	return nil
}

// blockReady is the poller's readiness check: the current block belongs to
// user space. A wake-up that finds it still the kernel's came from
// something else, an error such as ENETDOWN among them: the socket's
// pending error is read (and cleared) then.
func (r *Ring) blockReady(uintptr) bool {
	b := (*blockDesc)(unsafe.Add(r.base, r.cur*r.geo.blockSize))
	if atomic.LoadUint32(&b.status)&unix.TP_STATUS_USER != 0 || r.stop.Load() != 0 {
		return true
	}
	if r.waited {
		r.socketError()
	}
	r.waited = true
	r.polls.Add(1)
	return false
}

// socketError reads and clears the socket's pending error and counts it.
// ENETDOWN comes when the link goes down; the kernel hooks the socket up
// again when the link comes up.
func (r *Ring) socketError() {
	if e, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		r.sockEr.Add(1)
	}
}

// Stats returns the ring's running totals. After Close it returns the
// totals as of the close.
func (r *Ring) Stats() (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if !r.released {
		err = r.readKernelStats()
	}
	s := r.totals
	s.Polls = r.polls.Load()
	s.SocketErrors = r.sockEr.Load()
	return s, err
}

// readKernelStats adds the kernel's counters (cleared by the read) to the
// totals. r.mu must be held.
func (r *Ring) readKernelStats() error {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return &OpError{Op: "getsockopt PACKET_STATISTICS", IfIndex: r.ifIndex, Err: err}
	}
	r.totals.Packets += uint64(st.Packets)
	r.totals.Drops += uint64(st.Drops)
	r.totals.QueueFreezes += uint64(st.Freeze_q_cnt)
	return nil
}

// Close stops the ring: a Run in progress returns ErrClosed promptly and
// releases the ring's memory and descriptors on its way out; without one,
// Close releases them itself. Close does not wait for Run and may be called
// from the handler. It is idempotent.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if !r.running {
		r.stop.Store(1)
		r.release()
		return nil
	}
	r.interrupt()
	return nil
}

// release frees everything once. r.mu must be held (or r unshared).
func (r *Ring) release() {
	if r.released {
		return
	}
	r.released = true
	if r.fd >= 0 && r.mem != nil {
		r.readKernelStats()
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem, r.base, r.blk, r.pkt = nil, nil, nil, nil
	}
	switch {
	case r.file != nil:
		r.file.Close()
		r.file, r.rc = nil, nil
	case r.fd >= 0:
		unix.Close(r.fd)
	}
	r.fd = -1
}
