package testns

import (
	"net"
	"os"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// NS is a network namespace made for one test, with the handles tests use
// to build links in it and to run code inside it. It is deleted, and its
// handles closed, when the test ends.
type NS struct {
	Name  string
	H     *netlink.Handle // netlink in the namespace
	Enter *nsenter.NS     // run code (open sockets) inside it
	Fd    netns.NsHandle  // for netlink.NsFd (veth peers)
}

// Make creates a namespace named "<prefix>-<random>" with loopback up.
func Make(t testing.TB, prefix string) *NS {
	t.Helper()
	n := &NS{Name: New(t, prefix)}
	var err error
	if n.Fd, err = netns.GetFromName(n.Name); err != nil {
		t.Fatal(err)
	}
	if n.H, err = netlink.NewHandleAt(n.Fd); err != nil {
		n.Fd.Close()
		t.Fatal(err)
	}
	if n.Enter, err = nsenter.Open(n.Name); err != nil {
		n.H.Close()
		n.Fd.Close()
		t.Fatal(err)
	}
	// Registered after New's cleanup, so it runs before the deletion.
	t.Cleanup(func() {
		n.H.Close()
		n.Enter.Close()
		n.Fd.Close()
	})
	return n
}

// Link returns the link called name in n.
func (n *NS) Link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.H.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s in %s: %v", name, n.Name, err)
	}
	return l
}

// VethPair makes a veth with end aName (address aCIDR) in a and bName
// (bCIDR) in b, both up, and returns the index of aName.
func VethPair(t testing.TB, a *NS, aName, aCIDR string, b *NS, bName, bCIDR string) int {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(int(b.Fd))}
	if err := a.H.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", aName, bName, err)
	}
	setup := func(n *NS, name, cidr string) int {
		l := n.Link(t, name)
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.H.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := n.H.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	idx := setup(a, aName, aCIDR)
	setup(b, bName, bCIDR)
	return idx
}

// SendUDP sends count datagrams of size bytes from inside n to dst
// (host:port), from an unconnected socket so that ICMP port unreachable
// replies do not fail later writes.
func SendUDP(t testing.TB, n *NS, dst string, count, size int) {
	t.Helper()
	err := n.Enter.Do(func() error {
		raddr, err := net.ResolveUDPAddr("udp4", dst)
		if err != nil {
			return err
		}
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

// CountFDs returns the number of open descriptors of this process.
func CountFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// LowerFDLimit makes every new descriptor of the test process fail with
// EMFILE: it lowers RLIMIT_NOFILE to 0. The descriptors already open stay
// usable; none closed meanwhile (a detached ring, a finalizer, another
// goroutine's connection) frees a slot below the limit for a new one. The
// returned function restores the limit; it also runs at cleanup, once.
func LowerFDLimit(t testing.TB) (restore func()) {
	t.Helper()
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	lim := orig
	lim.Cur = 0
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
				t.Errorf("restore RLIMIT_NOFILE: %v", err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}
