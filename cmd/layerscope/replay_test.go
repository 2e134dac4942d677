package main

import (
	"strings"
	"testing"
)

// TestReplayExitStatus: replay reports a file whose last record is cut
// (header, no data) and exits 1, or 0 with --allow-partial; old pcap
// versions replay cleanly.
func TestReplayExitStatus(t *testing.T) {
	const dir = "../../testdata/fidelity/"
	for _, tt := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"whole file", []string{dir + "http-retransmit.pcap"}, 0, "48 frames from 1 file(s)"},
		{"pcap 2.2", []string{dir + "pcap-v2.2.pcap"}, 0, "48 frames from 1 file(s)"},
		{"truncated last record", []string{dir + "truncated-last.pcap"}, 1, "end in a malformed or truncated record"},
		{"truncated, allowed", []string{"--allow-partial", dir + "truncated-last.pcap"}, 0, "47 frames from 1 file(s)"},
		{"truncated, metrics", []string{"--metrics", dir + "truncated-last.pcap", dir + "http-retransmit.pcap"}, 1, "1 of 2 file(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(t, append([]string{binary, "replay"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s", code, tt.code, tt.out, out)
			}
		})
	}
}
