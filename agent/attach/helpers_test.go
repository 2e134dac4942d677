package attach

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/layerscope/layerscope/internal/nsenter"
)

var nsSeq atomic.Int64

// testNS is a network namespace made for one test and deleted after it.
type testNS struct {
	name string
	h    *netlink.Handle
	ns   *nsenter.NS
	fd   netns.NsHandle
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) to create network namespaces and packet sockets")
	}
}

func newNS(t testing.TB) *testNS {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("lsatt-%d-%d", os.Getpid(), nsSeq.Add(1))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	fd, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("return to original netns: %v", serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	n := &testNS{name: name, fd: fd}
	t.Cleanup(func() {
		if n.h != nil {
			n.h.Close()
		}
		n.ns.Close()
		fd.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	if n.h, err = netlink.NewHandleAt(fd); err != nil {
		t.Fatal(err)
	}
	if n.ns, err = nsenter.Open(name); err != nil {
		t.Fatal(err)
	}
	lo, err := n.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return n
}

// sendUDP sends count datagrams of size bytes from inside n to dst.
func sendUDP(t testing.TB, n *testNS, dst string, count, size int) {
	t.Helper()
	err := n.ns.Do(func() error {
		raddr, err := net.ResolveUDPAddr("udp4", dst)
		if err != nil {
			return err
		}
		// Unconnected: ICMP port unreachable replies do not fail later writes.
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, size)
		for i := 0; i < count; i++ {
			if _, err := c.WriteToUDP(buf, raddr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send UDP to %s: %v", dst, err)
	}
}

// udpDstPort returns the UDP destination port of an Ethernet/IPv4/UDP frame.
func udpDstPort(frame []byte) (int, bool) {
	if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 || frame[14+9] != 17 {
		return 0, false
	}
	ihl := int(frame[14]&0x0f) * 4
	if len(frame) < 14+ihl+4 {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(frame[14+ihl+2:])), true
}

// countFDs returns the number of open descriptors of this process.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func (n *testNS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}
