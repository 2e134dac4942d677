package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/lab"
)

// TestOperatorCommandsOverTLS runs status, observe and capture against an
// agent serving TLS with basic auth (exporter-toolkit's web config, the
// same as /metrics): with the CA and the credentials they work; without
// the credentials or without trusting the CA they fail and say why.
func TestOperatorCommandsOverTLS(t *testing.T) {
	web := promtest.NewWebTLS(t)
	l, urls := labAgentsWith(t, "t", web, lab.Node1)
	url := urls[0]
	passFile := filepath.Join(web.Dir, "password")
	if err := os.WriteFile(passFile, []byte(web.Pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--agent", url, "--ca-file", web.CAFile, "--user", web.User, "--password-file", passFile}
	if _, err := l.Traffic(context.Background(), lab.ScenarioService, lab.TrafficOptions{Count: 3}); err != nil {
		t.Fatal(err)
	}

	code, out := run(t, append([]string{binary, "status", "-o", "json"}, auth...)...)
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Node != lab.Node1 || !st.Ready {
		t.Fatalf("status over TLS with credentials: exit %d\n%s", code, out)
	}
	// The service connections' events come within a second or two
	// (progress events every second, final ones after the close).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		code, out = run(t, append([]string{binary, "observe", "-o", "json"}, auth...)...)
		if code != 0 || strings.Contains(out, `"client"`) || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 || !strings.Contains(out, `"client"`) {
		t.Errorf("observe over TLS with credentials: exit %d\n%s", code, out)
	}
	pcap := filepath.Join(t.TempDir(), "out.pcap")
	code, out = run(t, append([]string{binary, "capture", "--duration", "1s", "-w", pcap}, auth...)...)
	if b, err := os.ReadFile(pcap); code != 0 || err != nil || len(b) < 24 || !bytes.Equal(b[:4], []byte{0x4d, 0x3c, 0xb2, 0xa1}) {
		t.Errorf("capture over TLS with credentials: exit %d, file %v %d bytes\n%s", code, err, len(b), out)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", []string{"--agent", url, "--ca-file", web.CAFile}, "401"},
		{"wrong password", []string{"--agent", url, "--ca-file", web.CAFile, "--user", web.User, "--password", web.Pass + "x"}, "401"},
		{"untrusted certificate", []string{"--agent", url, "--user", web.User, "--password-file", passFile}, "certificate"},
		{"password without user", []string{"--agent", url, "--ca-file", web.CAFile, "--password-file", passFile}, "--user"},
	} {
		for _, sub := range []string{"status", "observe"} {
			code, out := run(t, append([]string{binary, sub}, tt.args...)...)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Errorf("%s %s: exit %d, want a failure naming %q:\n%s", sub, tt.name, code, tt.want, out)
			}
		}
	}
}
