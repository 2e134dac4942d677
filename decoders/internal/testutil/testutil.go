// Package testutil holds the test helpers of the decoder packages: frames
// built with gopacket's serializers and frames read from capture files.
// Only tests import it.
package testutil

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/layerscope/layerscope/decoders"
)

// Build serializes ls with lengths and checksums fixed up, failing t on
// error.
func Build(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Frame is one captured frame with its link type.
type Frame struct {
	Data []byte
	Link decoders.LinkType
}

// PcapDir returns the directory of tcpdump's test captures,
// testdata/tcpdump-tests under the module root. It fails t when the
// directory is missing.
func PcapDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "testdata", "tcpdump-tests")
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		tb.Fatalf("tcpdump test captures missing at %s: %v", p, err)
	}
	return p
}

// ErrFormat is returned for files that are neither pcap nor pcapng.
var ErrFormat = errors.New("testutil: not a pcap or pcapng file")

// ReadFile reads every frame of a pcap or pcapng file. It returns the frames
// read before an error together with the error (corrupt files are part of
// tcpdump's tests).
func ReadFile(path string) ([]Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	var frames []Frame
	if string(magic) == "\x0a\x0d\x0d\x0a" || strings.HasSuffix(path, ".pcapng") {
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{})
		if err != nil {
			return nil, err
		}
		for {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				return frames, eof(err)
			}
			lt := r.LinkType()
			if intf, err := r.Interface(ci.InterfaceIndex); err == nil {
				lt = intf.LinkType
			}
			frames = append(frames, Frame{Data: data, Link: decoders.LinkType(lt)})
		}
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, err
	}
	lt := decoders.LinkType(r.LinkType())
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return frames, eof(err)
		}
		frames = append(frames, Frame{Data: data, Link: lt})
	}
}

func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Files returns the capture files of dir (pcap and pcapng), sorted.
func Files(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		tb.Fatalf("no capture files in %s", dir)
	}
	return out
}

// Eth returns an Ethernet header with fixed addresses and type t.
func Eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{
		SrcMAC:       []byte{0x02, 0, 0, 0, 0, 1},
		DstMAC:       []byte{0x02, 0, 0, 0, 0, 2},
		EthernetType: t,
	}
}
