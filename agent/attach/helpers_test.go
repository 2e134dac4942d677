package attach

import (
	"encoding/binary"
	"testing"

	"github.com/layerscope/layerscope/internal/testns"
)

// testNS is a network namespace made for one test (see internal/testns).
type testNS = testns.NS

func newNS(t testing.TB) *testNS { return testns.Make(t, "lsatt") }

func sendUDP(t testing.TB, n *testNS, dst string, count, size int) {
	testns.SendUDP(t, n, dst, count, size)
}

func countFDs(t testing.TB) int { return testns.CountFDs(t) }

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
