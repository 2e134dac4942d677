package pipeline

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/internal/testns"
)

// fidelityDir holds the captures built by decoders/parser's
// TestFidelityCaptures.
const fidelityDir = "../../testdata/fidelity"

// replayFile replays one capture through a worker and a flow table, flushed.
func replayFile(t *testing.T, name string) (ReplayStats, *Counters, flowtable.Stats) {
	t.Helper()
	w, table := newWorker(t)
	fs, err := OpenFile(filepath.Join(fidelityDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	st, err := Replay(context.Background(), fs, w)
	if err != nil {
		t.Fatal(err)
	}
	table.Flush()
	var c Counters
	w.AddTo(&c)
	return st, &c, table.Stats()
}

// tsharkLens returns the frames tshark reads from path and the sum of
// their original lengths, and tshark's error output.
func tsharkLens(t *testing.T, path string) (frames, bytes int, stderr string) {
	t.Helper()
	cmd := exec.Command(testns.Tool{Name: "tshark"}.Path(t), "-r", path, "-T", "fields", "-e", "frame.len")
	var errb strings.Builder
	cmd.Stderr = &errb
	out, _ := cmd.Output() // a cut file exits non-zero after printing its frames
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("tshark frame.len %q", f)
		}
		frames++
		bytes += n
	}
	return frames, bytes, errb.String()
}

// TestReplayHTTPRetransmitsAgreeWithTshark: requests and responses carried
// again by retransmitted segments count once, as tshark dissects them once,
// also across a sequence number wrap.
func TestReplayHTTPRetransmitsAgreeWithTshark(t *testing.T) {
	st, c, fst := replayFile(t, "http-retransmit.pcap")
	if st.LastErr != nil {
		t.Fatal(st.LastErr)
	}
	if fst.Retransmits == 0 {
		t.Error("no retransmission seen")
	}
	path := filepath.Join(fidelityDir, "http-retransmit.pcap")
	for _, r := range []struct {
		name   string
		ours   uint64
		filter string
	}{
		{"requests", fst.Requests[flow.AppHTTP], "http.request"},
		{"responses 2xx", fst.Responses[flow.AppHTTP][2], "http.response.code >= 200 && http.response.code < 300"},
		{"responses 5xx", fst.Responses[flow.AppHTTP][5], "http.response.code >= 500 && http.response.code < 600"},
		{"frames", c.Frames, ""},
	} {
		theirs := testns.TsharkCount(t, path, r.filter)
		t.Logf("%-14s layerscope %3d tshark %3d", r.name, r.ours, theirs)
		if r.ours != uint64(theirs) || theirs == 0 {
			t.Errorf("%s: layerscope %d, tshark %d (%s)", r.name, r.ours, theirs, r.filter)
		}
	}
}

// TestReplayVLANTaggedTunnel: a VXLAN frame whose outer frame is tagged
// counts as VLAN-tagged, as tshark finds the tag.
func TestReplayVLANTaggedTunnel(t *testing.T) {
	_, c, _ := replayFile(t, "vxlan-vlan.pcap")
	theirs := testns.TsharkCount(t, filepath.Join(fidelityDir, "vxlan-vlan.pcap"), "vlan || ieee8021ad")
	if c.VLANTagged != uint64(theirs) || c.Tunnel[flow.EncapVXLAN] != 7 {
		t.Errorf("VLAN-tagged %d (tshark %d), vxlan %d", c.VLANTagged, theirs, c.Tunnel[flow.EncapVXLAN])
	}
}

// TestReplayOldPcapVersions: pcap files of versions 2.1 and 2.2, whose
// record headers hold the original length before the captured one, replay
// like tshark reads them: same frames, same original lengths, and the same
// decode as the 2.4 file they were made from.
func TestReplayOldPcapVersions(t *testing.T) {
	_, ref, refStats := replayFile(t, "http-retransmit.pcap")
	for _, name := range []string{"pcap-v2.1.pcap", "pcap-v2.2.pcap"} {
		t.Run(name, func(t *testing.T) {
			st, c, fst := replayFile(t, name)
			if st.LastErr != nil {
				t.Fatal(st.LastErr)
			}
			frames, bytes, _ := tsharkLens(t, filepath.Join(fidelityDir, name))
			var ours uint64
			for _, b := range c.Bytes {
				for _, n := range b {
					ours += n
				}
			}
			if c.Frames != uint64(frames) || ours != uint64(bytes) {
				t.Errorf("layerscope %d frames %d bytes, tshark %d frames %d bytes", c.Frames, ours, frames, bytes)
			}
			if c.Frames != ref.Frames || c.TCP != ref.TCP || fst.Requests != refStats.Requests || fst.Responses != refStats.Responses {
				t.Errorf("frames %d tcp %d requests %v; the 2.4 file: %d, %d, %v", c.Frames, c.TCP, fst.Requests, ref.Frames, ref.TCP, refStats.Requests)
			}
		})
	}
}

// TestReplayTruncatedLastRecord: a file whose last record header has no
// data replays up to it and reports ErrTruncatedRecord; tshark reads the
// same frames and reports the file cut short.
func TestReplayTruncatedLastRecord(t *testing.T) {
	st, c, _ := replayFile(t, "truncated-last.pcap")
	if !errors.Is(st.LastErr, ErrTruncatedRecord) || st.ReadErrors != 1 {
		t.Fatalf("last error %v, read errors %d", st.LastErr, st.ReadErrors)
	}
	frames, _, stderr := tsharkLens(t, filepath.Join(fidelityDir, "truncated-last.pcap"))
	if c.Frames != uint64(frames) || !strings.Contains(stderr, "cut short") {
		t.Errorf("layerscope %d frames, tshark %d (%q)", c.Frames, frames, stderr)
	}
	// The whole file it was cut from replays without error.
	if st, _, _ := replayFile(t, "http-retransmit.pcap"); st.LastErr != nil || st.Frames != c.Frames+1 {
		t.Errorf("whole file: %d frames, %v", st.Frames, st.LastErr)
	}
}
