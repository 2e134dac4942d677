package parser

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/layerscope/layerscope/decoders"
	"github.com/layerscope/layerscope/decoders/internal/testutil"
)

// checkInvariants verifies what must hold for any decoded frame.
func checkInvariants(data []byte, s *decoders.Summary) error {
	l, r := s.ErrInfo()
	if (r == decoders.ReasonNone) != (l == decoders.OSINone) || (r == decoders.ReasonNone) != (s.Err() == nil) {
		return fmt.Errorf("error fields inconsistent: layer %v reason %v err %v", l, r, s.Err())
	}
	if err := s.Err(); err != nil && !errors.Is(err, r.Err()) {
		return fmt.Errorf("Err %v does not unwrap to %v", err, r.Err())
	}
	if s.Layers.Has(decoders.LayerIPv4) && s.Layers.Has(decoders.LayerIPv6) {
		return fmt.Errorf("both IPv4 and IPv6 in the main view")
	}
	if s.Layers.Has(decoders.LayerIPv4) && (s.IP.Family != 4 || !s.IP.Src.Is4() || !s.IP.Dst.Is4()) {
		return fmt.Errorf("IPv4 layer with family %d src %v", s.IP.Family, s.IP.Src)
	}
	if s.Layers.Has(decoders.LayerIPv6) && (s.IP.Family != 6 || !s.IP.Src.Is6()) {
		return fmt.Errorf("IPv6 layer with family %d src %v", s.IP.Family, s.IP.Src)
	}
	if s.Layers&(decoders.LayerTCP|decoders.LayerUDP|decoders.LayerICMPv4|decoders.LayerICMPv6) != 0 &&
		s.Layers&(decoders.LayerIPv4|decoders.LayerIPv6) == 0 {
		return fmt.Errorf("transport without network layer: %b", s.Layers)
	}
	if s.Layers.Has(decoders.LayerTCP) && s.Layers.Has(decoders.LayerUDP) {
		return fmt.Errorf("both TCP and UDP")
	}
	if s.Layers.Has(decoders.LayerIPv4) && int(s.IP.HeaderLen) > len(data) {
		return fmt.Errorf("IPv4 header length %d beyond the %d-byte frame", s.IP.HeaderLen, len(data))
	}
	if s.Layers.Has(decoders.LayerTCP) && (s.L4.HeaderLen < 20 || int(s.L4.HeaderLen) > len(data)) {
		return fmt.Errorf("TCP header length %d, frame %d", s.L4.HeaderLen, len(data))
	}
	if s.Layers.Has(decoders.LayerTLS) && (int(s.TLS.SNILen) > decoders.MaxSNI || int(s.TLS.SNILen) > len(data) || int(s.TLS.ALPNLen) > decoders.MaxALPN) {
		return fmt.Errorf("TLS lengths SNI %d ALPN %d", s.TLS.SNILen, s.TLS.ALPNLen)
	}
	if s.Layers.Has(decoders.LayerDNS) && int(s.DNS.QNameLen) > decoders.MaxQName {
		return fmt.Errorf("qname length %d", s.DNS.QNameLen)
	}
	if s.Layers&(decoders.LayerVXLAN|decoders.LayerGeneve) != 0 && (s.Tunnel.Kind == decoders.TunnelNone || s.Tunnel.Depth == 0 || s.Tunnel.VNI > 0xffffff) {
		return fmt.Errorf("tunnel layer with kind %v depth %d vni %d", s.Tunnel.Kind, s.Tunnel.Depth, s.Tunnel.VNI)
	}
	return nil
}

// decodeFile decodes every frame of a capture file, turning a panic into an
// error and a decode that runs past timeout into a failure.
func decodeFile(t *testing.T, p *Parser, path string) (frames, unsupported int, readErr error) {
	t.Helper()
	fs, readErr := testutil.ReadFile(path)
	done := make(chan error, 1)
	go func() {
		var s decoders.Summary
		i := 0
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic on frame %d: %v\n%s", i+1, r, debug.Stack())
			}
		}()
		for i = range fs {
			p.Decode(fs[i].Data, fs[i].Link, &s)
			if _, r := s.ErrInfo(); r == decoders.ReasonUnsupportedLinkType {
				unsupported++
			}
			if err := checkInvariants(fs[i].Data, &s); err != nil {
				done <- fmt.Errorf("frame %d: %w", i+1, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: decoding hangs", filepath.Base(path))
	}
	return len(fs), unsupported, readErr
}

// TestAllCaptures is the peer oracle's first half: every frame of every
// capture of tcpdump's test suite (including the ones that once crashed
// tcpdump) decodes without a panic or hang and with consistent fields.
// Files the pcap reader rejects are counted, not failed: some are corrupt on
// purpose.
func TestAllCaptures(t *testing.T) {
	dir := testutil.PcapDir(t)
	files := testutil.Files(t, dir)
	if len(files) < 800 {
		t.Fatalf("found %d capture files in %s, want the ~830 of tcpdump's tests", len(files), dir)
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var frames, readErrs, unsupported int
	for _, f := range files {
		n, u, rerr := decodeFile(t, p, f)
		frames += n
		unsupported += u
		if rerr != nil {
			readErrs++
		}
	}
	t.Logf("%d files, %d frames decoded (%d of an unsupported link type), %d files with read errors", len(files), frames, unsupported, readErrs)
	if frames < 5000 {
		t.Errorf("only %d frames decoded", frames)
	}
}

// pcapDirIfPresent returns the tcpdump capture directory for seeding fuzz
// targets; seeds are optional, so a missing directory only means fewer.
func pcapDirIfPresent() (string, bool) {
	p := filepath.Join("..", "..", "testdata", "tcpdump-tests")
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return p, true
	}
	return "", false
}
