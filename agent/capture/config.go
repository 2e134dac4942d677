package capture

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/net/bpf"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// Defaults applied to zero fields of Config.
const (
	DefaultSnapLen      = 256
	DefaultBlockSize    = 128 << 10 // 128 KiB
	DefaultNumBlocks    = 8         // 1 MiB ring
	DefaultBlockTimeout = 50 * time.Millisecond
)

// Config describes one ring. The zero value is a 1 MiB ring with a 256-byte
// snap length, no filter, no fanout, in the caller's network namespace.
//
// Sizing: a block is handed to the reader as a whole, so the ring holds
// NumBlocks-1 blocks of slack while one is read. With the default snap length
// a frame takes about 352 bytes of ring (48-byte header, 34 bytes of address
// and padding, 256 bytes of data, 16-byte alignment), so the default ring
// absorbs about 2,600 frames, ~9 ms of a 300k packets/s stream. Rings on busy
// shared interfaces (uplink, overlay) should be larger; see the attach
// package for the sizes it picks per role.
type Config struct {
	// NetNS is the network namespace the interface lives in; nil means the
	// caller's own.
	NetNS *nsenter.NS

	// SnapLen is the number of bytes kept of each frame; 0 means
	// DefaultSnapLen. Longer frames keep their original length in
	// Meta.Length.
	SnapLen int

	// BlockSize is the size of one ring block in bytes: a multiple of the
	// page size and large enough for one frame. 0 means DefaultBlockSize.
	BlockSize int

	// NumBlocks is the number of blocks; 0 means DefaultNumBlocks.
	NumBlocks int

	// BlockTimeout is how long the kernel waits before handing over a block
	// that is not full (millisecond resolution, at least 1 ms). It bounds the
	// delay between a packet's arrival and its delivery on a quiet
	// interface; it does not affect timestamps. 0 means DefaultBlockTimeout.
	BlockTimeout time.Duration

	// Filter is a classic BPF program run by the kernel on every frame
	// before it enters the ring (see ParseFilter); nil accepts every frame.
	// Constant returns above SnapLen are lowered to SnapLen.
	Filter []bpf.RawInstruction

	// FanoutGroup, when not zero, joins the ring to this PACKET_FANOUT group
	// (per network namespace) so that several rings on the same interface
	// share its packets; FanoutMode is then one of the PACKET_FANOUT_*
	// modes of golang.org/x/sys/unix (0 means PACKET_FANOUT_HASH, which
	// keeps each flow on one ring).
	FanoutGroup uint16
	FanoutMode  int

	// Offload, when set, attaches the in-kernel fast path instead of a
	// classic filter: an eBPF socket filter that counts the frames of
	// established TCP flows that change nothing but their counters in a
	// kernel map (drained with Ring.Offload) and hands the rest to the
	// ring. When eBPF is not allowed or not supported, or Filter is set,
	// the ring captures every frame as without it and OffloadFallback
	// says why.
	Offload *OffloadConfig

	// Promiscuous puts the interface in promiscuous mode while the ring is
	// open (not needed for veth and VXLAN devices, which see every frame
	// they carry).
	Promiscuous bool
}

// ring geometry derived from a Config.
type geometry struct {
	snapLen   int
	blockSize int
	numBlocks int
	frameSize int
	tovMS     int
}

// tpacket3HdrLen is TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) +
// sizeof(struct sockaddr_ll): where a frame's link-layer header can start.
const tpacket3HdrLen = 48 + 20

func (c *Config) geometry() (geometry, error) {
	g := geometry{snapLen: c.SnapLen, blockSize: c.BlockSize, numBlocks: c.NumBlocks}
	if g.snapLen == 0 {
		g.snapLen = DefaultSnapLen
	}
	if g.blockSize == 0 {
		g.blockSize = DefaultBlockSize
	}
	if g.numBlocks == 0 {
		g.numBlocks = DefaultNumBlocks
	}
	tov := c.BlockTimeout
	if tov == 0 {
		tov = DefaultBlockTimeout
	}
	g.tovMS = int(tov / time.Millisecond)
	if g.tovMS < 1 {
		g.tovMS = 1
	}
	page := os.Getpagesize()
	switch {
	case g.snapLen < 64 || g.snapLen > 65535:
		return g, fmt.Errorf("%w: snap length %d not in [64, 65535]", ErrConfig, g.snapLen)
	case g.blockSize < page || g.blockSize%page != 0:
		return g, fmt.Errorf("%w: block size %d is not a multiple of the page size %d", ErrConfig, g.blockSize, page)
	case g.numBlocks < 2:
		return g, fmt.Errorf("%w: %d blocks; need at least 2", ErrConfig, g.numBlocks)
	case c.BlockTimeout < 0:
		return g, fmt.Errorf("%w: negative block timeout", ErrConfig)
	}
	// TPACKET_V3 places frames back to back in a block; the frame size is
	// only checked by the kernel (aligned, large enough for a header).
	g.frameSize = align16(tpacket3HdrLen + 16 + g.snapLen)
	if g.frameSize > g.blockSize-48 {
		return g, fmt.Errorf("%w: block size %d too small for snap length %d", ErrConfig, g.blockSize, g.snapLen)
	}
	return g, nil
}

func align16(n int) int { return (n + 15) &^ 15 }
