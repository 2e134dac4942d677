package pipeline

import (
	"strconv"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/decoders"
)

// Sizes of the counter arrays. Values beyond a size are counted in its last
// slot ("other").
const (
	NumDirs       = 3  // flow.DirUnknown, DirIn, DirOut
	NumICMPCodes  = 16 // codes 0..14 kept, 15 = 15 or above
	NumTCPFlags   = 9  // FIN SYN RST PSH ACK URG ECE CWR NS
	NumTLSVer     = 6  // ssl3, 1.0, 1.1, 1.2, 1.3, other
	NumErrLayers  = 8  // decoders.OSILayer values
	NumErrReasons = 16 // decoders.Reason values
	NumTunnels    = 3  // none, vxlan, geneve
)

// Counters are the per-layer packet counts of one worker, or of many summed.
// It is a plain value: a worker owns one and writes it without atomics; it
// publishes a copy (see Worker.Publish) that readers sum at scrape time.
type Counters struct {
	Frames         uint64                         // frames handled
	Packets        [flow.NumRoles][NumDirs]uint64 // by interface role and direction
	Bytes          [flow.NumRoles][NumDirs]uint64 // wire bytes, by role and direction
	VLANTagged     uint64                         // frames with at least one 802.1Q/802.1ad tag (outer or inner frame)
	ARP            [3]uint64                      // other, request, reply
	IP             [2]uint64                      // IPv4, IPv6 packets (main view)
	ICMP           [2][256][NumICMPCodes]uint64   // [v4, v6][type][code]
	FragNeeded     [2]uint64                      // ICMPv4 3/4, ICMPv6 packet too big
	TCP, UDP       uint64                         // transport packets
	TCPFlags       [NumTCPFlags]uint64            // packets with each flag bit set
	Tunnel         [NumTunnels]uint64             // encapsulated frames by tunnel kind
	TunnelBytes    [NumTunnels]uint64             // their wire bytes
	TLSClientHello uint64
	TLSServerHello [NumTLSVer]uint64 // by negotiated version
	DecodeErrors   [NumErrLayers][NumErrReasons]uint64

	// Fragments and reassembly as seen at this observation point (see
	// FragConfig), by family.
	FragRole       [flow.NumRoles][2][2]uint64 // fragments by interface role, [IPv4, IPv6], [first, non-first]
	FragCompleted  [2]uint64                   // datagrams whose fragments all arrived
	FragIncomplete [2]uint64                   // datagrams not complete within the reassembly timeout
	FragEvicted    [2]uint64                   // datagrams dropped from a full tracker, neither complete nor timed out
	FragDuplicates [2]uint64                   // fragments that brought no byte not already seen
	FragPending    [2]uint64                   // gauge: datagrams tracked at the last Publish

	// PMTU signals and path checks (see PathConfig), by family.
	PMTUByMTU       [2]MTUCounts             // frag-needed / packet-too-big by reported MTU
	Oversize        [flow.NumRoles][2]uint64 // packets entering that are too big for their path: will be dropped
	OversizeOffload [flow.NumRoles][2]uint64 // offload aggregates longer than the path MTU (segment size unknown)
	MSSOverPath     [flow.NumRoles][2]uint64 // SYNs entering whose MSS exceeds what the path MTU allows
}

// Fragments returns the fragments of every role, by family ([IPv4, IPv6])
// and position ([first, non-first]).
func (c *Counters) Fragments() (f [2][2]uint64) {
	for r := range c.FragRole {
		for fam := range f {
			for pos := range f[fam] {
				f[fam][pos] += c.FragRole[r][fam][pos]
			}
		}
	}
	return f
}

// Add adds o to c.
func (c *Counters) Add(o *Counters) {
	c.Frames += o.Frames
	addMatrix(&c.Packets, &o.Packets)
	addMatrix(&c.Bytes, &o.Bytes)
	c.VLANTagged += o.VLANTagged
	addSlice(c.ARP[:], o.ARP[:])
	addSlice(c.IP[:], o.IP[:])
	for f := range c.ICMP {
		for t := range c.ICMP[f] {
			addSlice(c.ICMP[f][t][:], o.ICMP[f][t][:])
		}
	}
	addSlice(c.FragNeeded[:], o.FragNeeded[:])
	c.TCP += o.TCP
	c.UDP += o.UDP
	addSlice(c.TCPFlags[:], o.TCPFlags[:])
	addSlice(c.Tunnel[:], o.Tunnel[:])
	addSlice(c.TunnelBytes[:], o.TunnelBytes[:])
	c.TLSClientHello += o.TLSClientHello
	addSlice(c.TLSServerHello[:], o.TLSServerHello[:])
	for l := range c.DecodeErrors {
		addSlice(c.DecodeErrors[l][:], o.DecodeErrors[l][:])
	}
	for r := range c.FragRole {
		for f := range c.FragRole[r] {
			addSlice(c.FragRole[r][f][:], o.FragRole[r][f][:])
		}
	}
	addSlice(c.FragCompleted[:], o.FragCompleted[:])
	addSlice(c.FragIncomplete[:], o.FragIncomplete[:])
	addSlice(c.FragEvicted[:], o.FragEvicted[:])
	addSlice(c.FragDuplicates[:], o.FragDuplicates[:])
	addSlice(c.FragPending[:], o.FragPending[:])
	for f := range c.PMTUByMTU {
		c.PMTUByMTU[f].Add(&o.PMTUByMTU[f])
	}
	for r := range c.Oversize {
		addSlice(c.Oversize[r][:], o.Oversize[r][:])
		addSlice(c.OversizeOffload[r][:], o.OversizeOffload[r][:])
		addSlice(c.MSSOverPath[r][:], o.MSSOverPath[r][:])
	}
}

func addSlice(dst, src []uint64) {
	for i := range dst {
		dst[i] += src[i]
	}
}

func addMatrix(dst, src *[flow.NumRoles][NumDirs]uint64) {
	for r := range dst {
		addSlice(dst[r][:], src[r][:])
	}
}

// Label values of the counter arrays, in index order.
var (
	ARPOps        = [3]string{"other", "request", "reply"}
	Families      = [2]string{"ipv4", "ipv6"}
	FragPositions = [2]string{"first", "non_first"}
	TCPFlagNames  = [NumTCPFlags]string(flow.TCPFlagNames)
	TLSVersions   = [NumTLSVer]string{"ssl3", "1.0", "1.1", "1.2", "1.3", "other"}
	TunnelKinds   = [NumTunnels]string{"none", "vxlan", "geneve"}
)

// ICMPCodeLabel returns the label value of ICMP code slot i.
func ICMPCodeLabel(i int) string {
	if i == NumICMPCodes-1 {
		return "15+"
	}
	return strconv.Itoa(i)
}

// ErrLayerLabel and ErrReasonLabel return the label values of the decode
// error slots.
func ErrLayerLabel(l int) string  { return decoders.OSILayer(l).String() }
func ErrReasonLabel(r int) string { return decoders.Reason(r).String() }

func tlsVersionSlot(v uint16) int {
	switch v {
	case 0x0300:
		return 0
	case 0x0301:
		return 1
	case 0x0302:
		return 2
	case 0x0303:
		return 3
	case 0x0304:
		return 4
	}
	return 5
}
