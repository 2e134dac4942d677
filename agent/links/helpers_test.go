package links

import (
	"fmt"
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
	name := fmt.Sprintf("lslnk-%d-%d", os.Getpid(), nsSeq.Add(1))
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

// vethPair makes a veth with end aName (address aCIDR) in a and bName
// (bCIDR) in b, both up, and returns the index of aName.
func vethPair(t testing.TB, a *testNS, aName, aCIDR string, b *testNS, bName, bCIDR string) int {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(int(b.fd))}
	if err := a.h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", aName, bName, err)
	}
	setup := func(n *testNS, name, cidr string) int {
		l, err := n.h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.h.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := n.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	idx := setup(a, aName, aCIDR)
	setup(b, bName, bCIDR)
	return idx
}

func (n *testNS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (n *testNS) addBridge(t testing.TB, name string) netlink.Link {
	t.Helper()
	if err := n.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	l := n.link(t, name)
	if err := n.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l
}
