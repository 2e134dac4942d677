package parser

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
	"github.com/layerscope/layerscope/internal/testns"
)

// The tshark comparison runs one tshark per selected capture with every
// display filter as an io,phs tap, so each file costs one tshark start.
// Files are selected with testdata/tshark-catalog.txt: the result of one
// tshark pass over every capture listing the protocols each file carries
// (regenerate with go test -run TestTsharkCatalog -tshark.catalog). A file
// the catalog does not tag with a protocol must decode to zero packets of
// it on layerscope's side too, so every capture is compared, most of them
// without running tshark.
//
// # Filter choices
//
// tshark filters match any occurrence of a field in a frame: headers quoted
// inside ICMP errors, inner tunnel headers, IP carried in GRE, MPLS, PPP or
// other encapsulations layerscope does not decode. To count the same thing
// on both sides every filter pins the header chain with a regular
// expression on frame.protocols (link layers layerscope decodes, then the
// protocols in order) and reads fields of the first header of a protocol
// with the layer operator (ip.frag_offset#1). Rows other than the fragment
// rows count unfragmented packets only: tshark reassembles fragments and
// dissects the upper layer in the last fragment, layerscope decodes the
// upper-layer header of the first fragment and never reassembles.
var updateCatalog = flag.Bool("tshark.catalog", false, "regenerate testdata/tshark-catalog.txt with one tshark pass over every capture")

const catalogPath = "testdata/tshark-catalog.txt"

// Pieces of the frame.protocols regular expressions.
const (
	vlanRE = `((vlan|ieee8021ad):ethertype:)*`
	// The empty alternative: LINKTYPE_IPV4/IPV6 frames start with ip/ipv6.
	linkRE = `^(eth:ethertype:` + vlanRE + `|sll:(ethertype:)?` + vlanRE + `|null:|loop:|raw:|)`
	// IPv6 and the extension headers other than the fragment header, so a
	// chain with ip6RE is an unfragmented packet. (ipv6.fraghdr#1 would
	// not do: the fragment header is a protocol of its own, and #1 is its
	// first occurrence anywhere, also inside a quoted ICMPv6 payload.)
	ip6RE = `ipv6([:]ipv6[.](hopopts|routing|dstopts))*`
	ipRE  = `(ip|` + ip6RE + `)`
	// unfrag: the first IPv4 header of the frame is not a fragment (IPv6
	// fragments are excluded by ip6RE).
	unfrag = `!(ip.flags.mf#1 == 1 || ip.frag_offset#1 > 0)`
)

// dnsPorts pins DNS rows to the parser's default DNS ports: tshark also
// finds DNS heuristically on other UDP ports (8053, SOME/IP's 30490).
const dnsPorts = ` && (udp.port#1 == 53 || udp.port#1 == 5353 || tcp.port#1 == 53 || tcp.port#1 == 5353)`

// knownDifferences are (file, row) pairs where the two sides count
// differently for a documented reason; every one is a capture that is
// corrupt on purpose (tcpdump's crash and out-of-bounds-read regressions).
// tshark keeps a protocol in frame.protocols with the fields it could read
// from a malformed header; layerscope records the header as a decode error
// (truncated, bad length) and does not count the layer.
var knownDifferences = map[string]string{
	"arp-oobr.pcap|arp":                         "ARP with hardware length 170 or trailing F5 headers; layerscope: truncated",
	"arp-oobr.pcap|arp request":                 "as above",
	"arp-oobr.pcap|arp reply":                   "as above",
	"getname_2_read4_asan.pcap|arp":             "ARP whose addresses overrun the frame; layerscope: truncated",
	"icmp-icmp_print-oobr-1.pcap|icmp":          "ICMP shorter than its 8-byte header; layerscope: truncated",
	"ip6_frag_asan.pcap|ipv6 fragment":          "IPv6 fragment header beyond the payload length; layerscope: bad_length",
	"ip_printroute_asan.pcap|ipv4 fragment":     "IPv4 header whose options overrun the frame; layerscope: truncated",
	"icmpv6-length-zero.pcapng|icmpv6 type 136": "IPv6 payload length 0: tshark dissects no ICMPv6 fields, layerscope takes the captured length (offload captures)",
	"rtp-seg-fault-1.pcapng|dns query":          "malformed DNS on port 53 that tshark partly dissects; layerscope: decode error",
}

// knownDifference returns why file and row may differ, if they may.
// Captures named bigtcp-* hold BIG TCP/GSO packets: IPv4 total length 0
// and IPv6 payload length 0 with a jumbo option. tshark 4.0 stops at such
// an IP header; layerscope, like tcpdump, takes the captured length, since
// AF_PACKET shows offloaded packets that way on a live node.
func knownDifference(file, row string) (string, bool) {
	if strings.HasPrefix(file, "bigtcp-") {
		return "BIG TCP/GSO packet with IP length 0", true
	}
	why, ok := knownDifferences[file+"|"+row]
	return why, ok
}

func chain(re string) string { return `frame.protocols matches "` + linkRE + re + `"` }

// comparison is one row of the agreement table.
type comparison struct {
	name   string
	tag    string // catalog tag selecting the files
	filter string // tshark display filter
	ours   func(s *decoders.Summary) bool
}

func noTunnel(s *decoders.Summary) bool {
	return s.Layers&(decoders.LayerVXLAN|decoders.LayerGeneve) == 0
}

func plain(s *decoders.Summary, l decoders.Layer) bool {
	return noTunnel(s) && !s.Layers.Has(decoders.LayerFragment) && s.Layers.Has(l)
}

func comparisons() []comparison {
	cs := []comparison{
		{"arp", "arp", chain(`arp`), func(s *decoders.Summary) bool { return noTunnel(s) && s.Layers.Has(decoders.LayerARP) }},
		{"arp request", "arp", chain(`arp`) + ` && arp.opcode == 1`, func(s *decoders.Summary) bool {
			return noTunnel(s) && s.Layers.Has(decoders.LayerARP) && s.ARP.Op == decoders.ARPRequest
		}},
		{"arp reply", "arp", chain(`arp`) + ` && arp.opcode == 2`, func(s *decoders.Summary) bool {
			return noTunnel(s) && s.Layers.Has(decoders.LayerARP) && s.ARP.Op == decoders.ARPReply
		}},
		{"ipv4 fragment", "ipfrag", chain(`ip(:|$)`) + ` && (ip.flags.mf#1 == 1 || ip.frag_offset#1 > 0)`, func(s *decoders.Summary) bool {
			if !noTunnel(s) {
				return s.Tunnel.OuterFragment && s.Tunnel.OuterSrc.Is4()
			}
			return s.Layers.Has(decoders.LayerIPv4 | decoders.LayerFragment)
		}},
		{"ipv6 fragment", "ipv6.fraghdr", chain(ip6RE + `:ipv6[.]fraghdr`), func(s *decoders.Summary) bool {
			if !noTunnel(s) {
				return s.Tunnel.OuterFragment && s.Tunnel.OuterSrc.Is6()
			}
			return s.Layers.Has(decoders.LayerIPv6) && s.IP.FragHeader
		}},
		{"icmp", "icmp", chain(`ip:icmp`) + ` && ` + unfrag, func(s *decoders.Summary) bool { return plain(s, decoders.LayerICMPv4) }},
		{"icmpv6", "icmpv6", chain(ip6RE+`:icmpv6`) + ` && ` + unfrag, func(s *decoders.Summary) bool { return plain(s, decoders.LayerICMPv6) }},
		{"icmp frag-needed", "icmp", chain(`ip:icmp`) + ` && ` + unfrag + ` && icmp.type#1 == 3 && icmp.code#1 == 4`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerICMPv4) && s.ICMP.Type == 3 && s.ICMP.Code == 4
		}},
		{"tcp syn", "tcp", chain(ipRE+`:tcp`) + ` && ` + unfrag + ` && tcp.flags.syn#1 == 1`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerTCP) && s.L4.Flags.Has(decoders.TCPSyn)
		}},
		{"tcp syn-ack", "tcp", chain(ipRE+`:tcp`) + ` && ` + unfrag + ` && tcp.flags.syn#1 == 1 && tcp.flags.ack#1 == 1`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerTCP) && s.L4.Flags.Has(decoders.TCPSyn|decoders.TCPAck)
		}},
		{"tcp rst", "tcp", chain(ipRE+`:tcp`) + ` && ` + unfrag + ` && tcp.flags.reset#1 == 1`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerTCP) && s.L4.Flags.Has(decoders.TCPRst)
		}},
		{"dns response", "dns", chain(ipRE+`:(udp|tcp):dns`) + ` && ` + unfrag + dnsPorts + ` && dns.flags.response#1 == 1`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerDNS) && s.DNS.Response
		}},
		{"dns query", "dns", chain(ipRE+`:(udp|tcp):dns`) + ` && ` + unfrag + dnsPorts + ` && dns.flags.response#1 == 0`, func(s *decoders.Summary) bool {
			return plain(s, decoders.LayerDNS) && !s.DNS.Response
		}},
	}
	for _, typ := range []uint8{0, 3, 5, 8, 11} {
		cs = append(cs, comparison{fmt.Sprintf("icmp type %d", typ), "icmp",
			chain(`ip:icmp`) + ` && ` + unfrag + fmt.Sprintf(` && icmp.type#1 == %d`, typ),
			func(s *decoders.Summary) bool { return plain(s, decoders.LayerICMPv4) && s.ICMP.Type == typ }})
	}
	for _, typ := range []uint8{1, 2, 3, 4, 128, 129, 133, 134, 135, 136} {
		cs = append(cs, comparison{fmt.Sprintf("icmpv6 type %d", typ), "icmpv6",
			chain(ip6RE+`:icmpv6`) + ` && ` + unfrag + fmt.Sprintf(` && icmpv6.type#1 == %d`, typ),
			func(s *decoders.Summary) bool { return plain(s, decoders.LayerICMPv6) && s.ICMP.Type == typ }})
	}
	for _, rc := range []uint8{0, 1, 2, 3, 4, 5} {
		cs = append(cs, comparison{fmt.Sprintf("dns rcode %d", rc), "dns",
			chain(ipRE+`:(udp|tcp):dns`) + ` && ` + unfrag + dnsPorts + fmt.Sprintf(` && dns.flags.response#1 == 1 && dns.flags.rcode#1 == %d`, rc),
			func(s *decoders.Summary) bool {
				return plain(s, decoders.LayerDNS) && s.DNS.Response && s.DNS.RCode == rc
			}})
	}
	for _, tun := range []struct {
		name, re string
		kind     decoders.TunnelKind
	}{
		{"vxlan", `vxlan:eth:ethertype:` + vlanRE, decoders.TunnelVXLAN},
		{"geneve", `geneve:(eth:ethertype:` + vlanRE + `)?`, decoders.TunnelGeneve},
	} {
		outer := ipRE + `:udp:`
		cs = append(cs,
			comparison{tun.name, tun.name, chain(outer + tun.name), func(s *decoders.Summary) bool {
				return !noTunnel(s) && s.Tunnel.Kind == tun.kind
			}},
			comparison{tun.name + " inner tcp", tun.name, chain(outer + tun.re + ipRE + `:tcp`), func(s *decoders.Summary) bool {
				return !noTunnel(s) && s.Tunnel.Kind == tun.kind && s.Layers.Has(decoders.LayerTCP)
			}},
			comparison{tun.name + " inner udp", tun.name, chain(outer + tun.re + ipRE + `:udp`), func(s *decoders.Summary) bool {
				return !noTunnel(s) && s.Tunnel.Kind == tun.kind && s.Layers.Has(decoders.LayerUDP)
			}},
		)
	}
	return cs
}

// catalogTags are the protocols of frame.protocols the catalog records;
// "ipfrag" is added for files with an IPv4 fragment anywhere.
var catalogTags = map[string]bool{"arp": true, "icmp": true, "icmpv6": true, "tcp": true, "dns": true, "vxlan": true, "geneve": true, "ipv6.fraghdr": true}

// TestTsharkCatalog regenerates the catalog with -tshark.catalog; without
// the flag it checks that the catalog covers the capture directory.
func TestTsharkCatalog(t *testing.T) {
	dir := testutil.PcapDir(t)
	files := testutil.Files(t, dir)
	if !*updateCatalog {
		cat := readCatalog(t)
		if len(cat) < 100 {
			t.Fatalf("catalog lists %d files", len(cat))
		}
		for name := range cat {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("catalog file %s: %v", name, err)
			}
		}
		return
	}
	tshark := testns.Tool{Name: "tshark"}.Path(t)
	lines := make([]string, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, f := range files {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, tshark, "-n", "-r", f, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
				"-e", "frame.protocols", "-e", "ip.flags.mf", "-e", "ip.frag_offset").Output()
			tags := map[string]bool{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				cols := strings.Split(sc.Text(), "\t")
				for _, p := range strings.Split(cols[0], ":") {
					if catalogTags[p] {
						tags[p] = true
					}
				}
				if len(cols) >= 3 {
					for _, v := range strings.Split(cols[1], ",") {
						if v == "1" || v == "True" {
							tags["ipfrag"] = true
						}
					}
					for _, v := range strings.Split(cols[2], ",") {
						if n, err := strconv.Atoi(v); err == nil && n > 0 {
							tags["ipfrag"] = true
						}
					}
				}
			}
			if len(tags) > 0 {
				ts := make([]string, 0, len(tags))
				for k := range tags {
					ts = append(ts, k)
				}
				sort.Strings(ts)
				lines[i] = filepath.Base(f) + "\t" + strings.Join(ts, ",")
			}
		})
	}
	wg.Wait()
	var b strings.Builder
	b.WriteString("# Protocols tshark finds in each capture of testdata/tcpdump-tests (files with none are omitted).\n")
	b.WriteString("# Generated by: go test ./decoders/parser -run TestTsharkCatalog -tshark.catalog\n")
	for _, l := range lines {
		if l != "" {
			b.WriteString(l + "\n")
		}
	}
	if err := os.WriteFile(catalogPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCatalog(t *testing.T) map[string]map[string]bool {
	t.Helper()
	data, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatalf("read catalog (regenerate with -tshark.catalog): %v", err)
	}
	cat := map[string]map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tags, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad catalog line %q", line)
		}
		cat[name] = map[string]bool{}
		for _, tag := range strings.Split(tags, ",") {
			cat[name][tag] = true
		}
	}
	return cat
}

// tsharkCounts runs tshark once on path with one protocol-hierarchy tap per
// filter (-z io,phs,FILTER: the frames the display filter matches) and
// returns the total frame count and the count per filter. io,stat would
// be the obvious tap but prints no row for captures whose duration is 0.
func tsharkCounts(tshark, path string, filters []string) (int, []int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"-n", "-r", path, "-q", "-z", "io,phs,frame"}
	for _, f := range filters {
		args = append(args, "-z", "io,phs,"+f)
	}
	out, err := exec.CommandContext(ctx, tshark, args...).Output()
	if err != nil {
		return 0, nil, fmt.Errorf("tshark: %w", err)
	}
	byFilter := map[string]int{}
	for _, block := range strings.Split(string(out), "\nFilter: ")[1:] {
		filter, body, _ := strings.Cut(block, "\n")
		n := 0
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, "frame "); ok {
				f := strings.Fields(rest)
				if len(f) == 0 || !strings.HasPrefix(f[0], "frames:") {
					return 0, nil, fmt.Errorf("io,phs line %q", line)
				}
				if n, err = strconv.Atoi(strings.TrimPrefix(f[0], "frames:")); err != nil {
					return 0, nil, fmt.Errorf("io,phs line %q: %w", line, err)
				}
			}
		}
		byFilter[strings.TrimSpace(filter)] = n
	}
	total, ok := byFilter["frame"]
	if !ok {
		return 0, nil, fmt.Errorf("no io,phs output for frame in %q", out)
	}
	counts := make([]int, len(filters))
	for i, f := range filters {
		if counts[i], ok = byFilter[f]; !ok {
			return 0, nil, fmt.Errorf("no io,phs output for filter %s", f)
		}
	}
	return total, counts, nil
}

// TestTsharkAgreement is the peer oracle's second half: per capture and per
// comparison row, layerscope's count equals tshark's.
func TestTsharkAgreement(t *testing.T) {
	tshark := testns.Tool{Name: "tshark"}.Path(t)
	dir := testutil.PcapDir(t)
	cat := readCatalog(t)
	cs := comparisons()
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		files, equal, known int
		ours, theirs        int
	}
	table := make([]result, len(cs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	skipped, readerDiff := 0, 0
	for _, path := range testutil.Files(t, dir) {
		name := filepath.Base(path)
		frames, rerr := testutil.ReadFile(path)
		if rerr != nil {
			// The pcap reader stopped early (corrupt on purpose, or a
			// format variant it does not read): counts would differ by
			// the frames it could not read.
			skipped++
			continue
		}
		ours := make([]int, len(cs))
		var s decoders.Summary
		for _, f := range frames {
			p.Decode(f.Data, f.Link, &s)
			for i, c := range cs {
				if c.ours(&s) {
					ours[i]++
				}
			}
		}
		tags := cat[name]
		var filters []string
		var idx []int
		for i, c := range cs {
			if tags[c.tag] {
				filters = append(filters, c.filter)
				idx = append(idx, i)
			} else if why, ok := knownDifference(name, c.name); ours[i] != 0 && ok {
				t.Logf("%s: %s: layerscope %d, tshark none: known difference: %s", name, c.name, ours[i], why)
			} else if ours[i] != 0 {
				t.Errorf("%s: %s: layerscope counts %d, tshark finds no %s in the file", name, c.name, ours[i], c.tag)
			}
		}
		if len(filters) == 0 {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			total, counts, err := tsharkCounts(tshark, path, filters)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if total != len(frames) {
				// The two file readers disagree (a corrupt record
				// header): per-file counts are not comparable.
				t.Logf("%s: tshark reads %d frames, the pcap reader %d: not compared", name, total, len(frames))
				readerDiff++
				return
			}
			for j, i := range idx {
				r := &table[i]
				r.files++
				r.ours += ours[i]
				r.theirs += counts[j]
				if ours[i] == counts[j] {
					r.equal++
				} else if why, ok := knownDifference(name, cs[i].name); ok {
					r.known++
					t.Logf("%s: %s: layerscope %d, tshark %d: known difference: %s", name, cs[i].name, ours[i], counts[j], why)
				} else {
					t.Errorf("%s: %s: layerscope %d, tshark %d (filter %s)", name, cs[i].name, ours[i], counts[j], cs[i].filter)
				}
			}
		})
	}
	wg.Wait()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-18s %6s %6s %6s %8s %8s\n", "comparison", "files", "equal", "known", "ours", "tshark")
	for i, c := range cs {
		r := table[i]
		fmt.Fprintf(&b, "%-18s %6d %6d %6d %8d %8d\n", c.name, r.files, r.equal, r.known, r.ours, r.theirs)
		if r.files == 0 {
			t.Errorf("%s: no capture compared", c.name)
		}
	}
	t.Logf("%s(not compared: %d files the pcap reader could not read whole, %d files whose frame count differs between the readers)", b.String(), skipped, readerDiff)
	if readerDiff > 3 {
		t.Errorf("%d files read differently by tshark and pcapgo", readerDiff)
	}
}
