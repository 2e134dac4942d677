package links

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/layerscope/layerscope/internal/testns"
)

// testNS is a network namespace made for one test (see internal/testns).
type testNS = testns.NS

func newNS(t testing.TB) *testNS { return testns.Make(t, "lslnk") }

func vethPair(t testing.TB, a *testNS, aName, aCIDR string, b *testNS, bName, bCIDR string) int {
	return testns.VethPair(t, a, aName, aCIDR, b, bName, bCIDR)
}

func addBridge(t testing.TB, n *testNS, name string) netlink.Link {
	t.Helper()
	if err := n.H.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	l := n.Link(t, name)
	if err := n.H.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l
}
