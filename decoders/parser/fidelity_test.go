package parser

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
	"github.com/layerscope/layerscope/internal/testns"
)

// fidelityRow counts, per frame, one class of the five where decoding
// used to differ from tshark's: layerscope's predicate and the display
// filter tshark counts the same frames with.
type fidelityRow struct {
	name   string
	filter string
	ours   func(s *decoders.Summary) bool
}

// requestLineRE is an HTTP/1.x request line with any RFC 9110 token
// method, for tshark's regular expressions on the TCP payload: tshark's
// own HTTP dissector knows a fixed list of methods.
const requestLineRE = `(?-i)^[-!#$%&'*+.^_` + "`" + `|~0-9A-Za-z]+ [^ \r\n]+ HTTP/1[.][0-9]\r?\n`

func fidelityRows() []fidelityRow {
	return []fidelityRow{
		{"http request", `http.request || tcp.payload matches "` + requestLineRE + `"`, func(s *decoders.Summary) bool {
			return s.Layers.Has(decoders.LayerHTTP) && !s.HTTP.Response
		}},
		{"http response", `http.response || (tcp.analysis.retransmission && tcp.payload matches "^HTTP/1[.][0-9] [0-9]{3}")`, func(s *decoders.Summary) bool {
			return s.Layers.Has(decoders.LayerHTTP) && s.HTTP.Response
		}},
		{"tls client hello", `tls.handshake.type == 1`, func(s *decoders.Summary) bool {
			return s.Layers.Has(decoders.LayerTLS) && s.TLS.HandshakeType == decoders.TLSClientHello
		}},
		{"tls server hello", `tls.handshake.type == 2`, func(s *decoders.Summary) bool {
			return s.Layers.Has(decoders.LayerTLS) && s.TLS.HandshakeType == decoders.TLSServerHello
		}},
		{"vlan tagged", `vlan || ieee8021ad`, func(s *decoders.Summary) bool { return s.VLANTagged() }},
		{"vxlan", `vxlan`, func(s *decoders.Summary) bool { return s.Tunnel.Kind == decoders.TunnelVXLAN && !noTunnel(s) }},
	}
}

// fidelityFiles are the committed captures pcapgo reads (the others are
// the replay's: old pcap versions, a truncated file).
var fidelityFiles = []string{"http-retransmit.pcap", "http-methods.pcap", "tls-hello-records.pcap", "vxlan-vlan.pcap"}

// TestFidelityDecode pins what the decoders find in each capture.
func TestFidelityDecode(t *testing.T) {
	want := map[string]map[string]int{
		"http-retransmit.pcap":   {"http request": 10, "http response": 14},
		"http-methods.pcap":      {"http request": 10, "http response": 10},
		"tls-hello-records.pcap": {"tls client hello": 5, "tls server hello": 3},
		"vxlan-vlan.pcap":        {"vlan tagged": 6, "vxlan": 7},
	}
	rows := fidelityRows()
	for _, name := range fidelityFiles {
		t.Run(name, func(t *testing.T) {
			counts := oursFidelity(t, name, rows)
			for i, r := range rows {
				if counts[i] != want[name][r.name] {
					t.Errorf("%s: %d, want %d", r.name, counts[i], want[name][r.name])
				}
			}
		})
	}
}

// TestFidelityOtherMethods: the methods outside the nine known ones are
// decoded as MethodOther, with their HTTP version.
func TestFidelityOtherMethods(t *testing.T) {
	frames, err := testutil.ReadFile(filepath.Join(fidelityDir(t), "http-methods.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := New(Config{})
	var s decoders.Summary
	var got []string
	for _, f := range frames {
		p.Decode(f.Data, f.Link, &s)
		if s.Layers.Has(decoders.LayerHTTP) && !s.HTTP.Response {
			got = append(got, fmt.Sprintf("%v/1.%d", s.HTTP.Method, s.HTTP.VersionMinor))
		}
	}
	want := "[GET/1.1 other/1.1 other/1.1 other/1.1 other/1.1 other/1.1 other/1.1 other/1.1 other/1.1 PATCH/1.1]"
	if fmt.Sprint(got) != want {
		t.Errorf("methods %v, want %v", got, want)
	}
}

func oursFidelity(t *testing.T, name string, rows []fidelityRow) []int {
	t.Helper()
	frames, err := testutil.ReadFile(filepath.Join(fidelityDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, len(rows))
	var s decoders.Summary
	for _, f := range frames {
		p.Decode(f.Data, f.Link, &s)
		for i, r := range rows {
			if r.ours(&s) {
				counts[i]++
			}
		}
	}
	return counts
}

// TestFidelityTshark: on the captures of the five classes, layerscope and
// tshark count the same frames for every row.
func TestFidelityTshark(t *testing.T) {
	rows := fidelityRows()
	for _, name := range fidelityFiles {
		path := filepath.Join(fidelityDir(t), name)
		ours := oursFidelity(t, name, rows)
		for i, r := range rows {
			theirs := testns.TsharkCount(t, path, r.filter)
			t.Logf("%-24s %-18s layerscope %3d tshark %3d", name, r.name, ours[i], theirs)
			if ours[i] != theirs {
				t.Errorf("%s: %s: layerscope %d, tshark %d (filter %s)", name, r.name, ours[i], theirs, r.filter)
			}
		}
	}
}

// TestOuterVLAN: the outer frame's tags of a tunnelled frame are kept in
// Summary.Tunnel; the inner frame's in Summary.Eth.
func TestOuterVLAN(t *testing.T) {
	frames, err := testutil.ReadFile(filepath.Join(fidelityDir(t), "vxlan-vlan.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		outer      [decoders.MaxVLANs]uint16
		nOuter     uint8
		inner      uint16
		tunnel     bool
		vlanTagged bool
	}{
		{[2]uint16{100}, 1, 0, true, true},
		{[2]uint16{100}, 1, 0, true, true},
		{[2]uint16{}, 0, 0, true, false},
		{[2]uint16{200, 300}, 2, 0, true, true},
		{[2]uint16{}, 0, 42, true, true},
		{[2]uint16{100}, 1, 42, true, true},
		{[2]uint16{}, 0, 0, true, false},
		{[2]uint16{}, 0, 7, false, true},
	}
	if len(frames) != len(want) {
		t.Fatalf("%d frames", len(frames))
	}
	p, _ := New(Config{})
	var s decoders.Summary
	for i, f := range frames {
		p.Decode(f.Data, f.Link, &s)
		w := want[i]
		var inner uint16
		if s.Layers.Has(decoders.LayerVLAN) {
			inner = s.Eth.VLANs[0]
		}
		if tun := !noTunnel(&s); tun != w.tunnel || s.VLANTagged() != w.vlanTagged || inner != w.inner ||
			(tun && (s.Tunnel.OuterVLANs != w.outer || s.Tunnel.OuterNumVLANs != w.nOuter)) {
			t.Errorf("frame %d: tunnel %v outer %v/%d inner %d tagged %v; want %+v", i+1, tun, s.Tunnel.OuterVLANs, s.Tunnel.OuterNumVLANs, inner, s.VLANTagged(), w)
		}
	}
}
