package conntrack

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sock is a NETLINK_NETFILTER socket read without allocating: the reads go
// through the runtime poller (so Close unblocks them) into a caller's
// buffer.
type sock struct {
	c  *netlink.Conn
	rc syscall.RawConn

	// read state, reused by readFn so that a read allocates nothing
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func dialSock(netns int, groups uint32) (*sock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns, Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("dial netlink netfilter: %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("netlink raw conn: %w", err)
	}
	s := &sock{c: c, rc: rc}
	s.fn = s.readFn
	return s, nil
}

func (s *sock) close() error { return s.c.Close() }

func (s *sock) readFn(fd uintptr) bool {
	s.n, s.err = unix.Read(int(fd), s.buf)
	return s.err != unix.EAGAIN
}

// read receives one datagram into buf. Errors are the kernel's (ENOBUFS
// reports a receive-queue overrun) or the poller's after Close.
func (s *sock) read(buf []byte) (int, error) {
	s.buf = buf
	if err := s.rc.Read(s.fn); err != nil {
		return 0, err
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.n, nil
}

// setReadBuffer sizes the receive buffer, with SO_RCVBUFFORCE when allowed
// (root, CAP_NET_ADMIN) and SO_RCVBUF (capped at net.core.rmem_max)
// otherwise. It returns the size the kernel reports.
func (s *sock) setReadBuffer(n int) (int, error) {
	var serr error
	cerr := s.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
	if cerr != nil {
		return 0, cerr
	}
	if serr != nil {
		if err := s.c.SetReadBuffer(n); err != nil {
			return 0, fmt.Errorf("set receive buffer: %w", err)
		}
	}
	return s.c.ReadBuffer()
}

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of sk_drops in SO_MEMINFO.
const skMeminfoDrops = 8

// drops returns the socket's drop counter: for a netlink socket, every
// multicast message the kernel could not queue.
func (s *sock) drops() (uint32, error) {
	var mem [16]uint32
	var errno syscall.Errno
	cerr := s.rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
	})
	if cerr != nil {
		return 0, cerr
	}
	if errno != 0 {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %w", errno)
	}
	return mem[skMeminfoDrops], nil
}

// request sends a ctnetlink request with an AF_UNSPEC nfgenmsg and no
// attributes, and returns its sequence number.
func (s *sock) request(msgType uint16, flags netlink.HeaderFlags) (uint32, error) {
	m, err := s.c.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(subsysCTNetlink<<8 | msgType), Flags: netlink.Request | flags},
		Data:   []byte{unix.AF_UNSPEC, 0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("send ctnetlink request %d: %w", msgType, err)
	}
	return m.Header.Sequence, nil
}

// dumpFn receives the header type, flags and payload (nfgenmsg and
// attributes) of one message of a dump. The payload is valid only during
// the call.
type dumpFn func(typ, flags uint16, payload []byte) error

// dump runs a dump request and calls fn for each message until
// NLMSG_DONE, reading into buf.
func (s *sock) dump(msgType uint16, buf []byte, fn dumpFn) error {
	seq, err := s.request(msgType, netlink.Dump)
	if err != nil {
		return err
	}
	for {
		n, err := s.read(buf)
		if err != nil {
			return fmt.Errorf("read ctnetlink dump: %w", err)
		}
		b := buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			typ := binary.NativeEndian.Uint16(b[4:6])
			flags := binary.NativeEndian.Uint16(b[6:8])
			mseq := binary.NativeEndian.Uint32(b[8:12])
			if l < nlmsgHdrLen || l > len(b) {
				return errBadAttrLen
			}
			payload := b[nlmsgHdrLen:l]
			if adv := (l + 3) &^ 3; adv < len(b) {
				b = b[adv:]
			} else {
				b = nil
			}
			if mseq != seq {
				continue // a late answer to an earlier, abandoned request
			}
			switch typ {
			case nlmsgDone:
				return nil
			case nlmsgError:
				if len(payload) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(payload)); e != 0 {
						return fmt.Errorf("%w: %w", ErrNetlink, syscall.Errno(-e))
					}
				}
				return nil
			}
			if err := fn(typ, flags, payload); err != nil {
				return err
			}
		}
	}
}

// parseCPUStats decodes one IPCTNL_MSG_CT_GET_STATS_CPU answer.
func parseCPUStats(payload []byte, s *CPUStats) error {
	if len(payload) < nfgenHdrLen {
		return errShortMsg
	}
	*s = CPUStats{CPU: int(binary.BigEndian.Uint16(payload[2:4]))}
	b := payload[nfgenHdrLen:]
	for len(b) > 0 {
		typ, val, rest, err := nextAttr(b)
		if err != nil {
			return err
		}
		b = rest
		if len(val) < 4 {
			continue
		}
		v := uint64(binary.BigEndian.Uint32(val))
		switch typ {
		case 2:
			s.Found = v
		case 4:
			s.Invalid = v
		case 8:
			s.Insert = v
		case 9:
			s.InsertFailed = v
		case 10:
			s.Drop = v
		case 11:
			s.EarlyDrop = v
		case 12:
			s.Error = v
		case 13:
			s.SearchRestart = v
		case 14:
			s.ClashResolve = v
		case 15:
			s.ChainTooLong = v
		}
	}
	return nil
}
