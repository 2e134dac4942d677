package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// captureResult is one /api/v1/capture answer saved to a file.
type captureResult struct {
	code    int
	body    string // error message when code is not 200
	file    string
	trailer http.Header
	header  http.Header
}

// socketClient returns an HTTP client that reaches the agent's --api-socket
// (as root: an identified client) whatever the URL's host.
func socketClient(a *Agent) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", a.cfg.APISocket)
	}}}
}

// startCaptureAgent runs an agent on node with on-demand captures served
// on a unix socket.
func startCaptureAgent(t *testing.T, l *lab.Lab, node string) *Agent {
	t.Helper()
	a, err := New(Config{NetNS: l.NetNS(node), MetricsAddr: "127.0.0.1:0", APISocket: filepath.Join(t.TempDir(), "api.sock"), OnDemand: OnDemandConfig{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a
}

// startCapture asks the agent for a capture on its socket and returns once
// the answer's headers arrived (every ring open); wait returns the
// finished capture.
func startCapture(t *testing.T, a *Agent, params url.Values, file string) (wait func() captureResult) {
	t.Helper()
	u := "http://agent/api/v1/capture?" + params.Encode()
	resp, err := socketClient(a).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	res := captureResult{code: resp.StatusCode, file: file, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.body = string(b)
		return func() captureResult { return res }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			t.Error(err)
		}
		res.trailer = resp.Trailer
	}()
	return func() captureResult { <-done; return res }
}

// TestLiveOnDemandCapture captures on node-2 with the filter of the README
// while the service scenario runs, next to an unfiltered capture of the
// same interfaces. tshark must open the filtered file, its equivalent
// display filter must select every packet of it (on the outermost IP
// header: "#1"), and the unfiltered file must hold exactly as many matching
// packets. A third capture is refused with 429, a bad filter with a 400
// naming --filter and the column, and the packet and duration limits stop
// the capture.
func TestLiveOnDemandCapture(t *testing.T) {
	testns.Tool{Name: "tshark"}.Path(t)
	l := newLab(t)
	a := startCaptureAgent(t, l, "node-2")
	dir := t.TempDir()

	filtered := url.Values{"filter": {"host 10.244.1.8 and port 8080"}, "duration": {"6s"}}
	all := url.Values{"duration": {"6s"}}
	waitF := startCapture(t, a, filtered, filepath.Join(dir, "filtered.pcap"))
	waitA := startCapture(t, a, all, filepath.Join(dir, "all.pcap"))

	busy := startCapture(t, a, all, filepath.Join(dir, "busy.pcap"))()
	if busy.code != http.StatusTooManyRequests {
		t.Errorf("third capture: %d %q, want 429", busy.code, busy.body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	toC := rep.Backends[lab.PodC]
	if toC == 0 {
		t.Fatalf("no request reached pod-c: %+v", rep.Backends)
	}
	f, all2 := waitF(), waitA()
	for _, r := range []captureResult{f, all2} {
		if r.code != http.StatusOK {
			t.Fatalf("capture: %d %s", r.code, r.body)
		}
		if got := r.trailer.Get(api.TrailerCaptureStop); got != string(ondemand.StopDuration) {
			t.Errorf("%s: stop %q, want duration", r.file, got)
		}
		if d := r.trailer.Get(api.TrailerCaptureDropped); d != "0" {
			t.Errorf("%s: %s packets dropped", r.file, d)
		}
	}
	const display = "ip.addr#1 == 10.244.1.8 && tcp.port#1 == 8080"
	total := testns.TsharkCount(t, f.file, "")
	matching := testns.TsharkCount(t, f.file, display)
	inAll := testns.TsharkCount(t, all2.file, display)
	t.Logf("filtered file: %d packets, %d match; unfiltered: %d of %d match; %d requests reached pod-c; interfaces %s",
		total, matching, inAll, testns.TsharkCount(t, all2.file, ""), toC, f.header.Get(api.HeaderCaptureInterfaces))
	if total == 0 || matching != total {
		t.Errorf("filtered capture: %d packets, %d matching %q; want all, more than 0", total, matching, display)
	}
	if inAll != total {
		t.Errorf("unfiltered capture holds %d packets matching %q, the filtered one %d", inAll, display, total)
	}
	// Every request to pod-c is a whole TCP connection (SYN, SYN-ACK, ACK,
	// request, response, FINs): at least 5 packets each on pod-c's veth.
	if total < 5*toC {
		t.Errorf("%d packets for %d connections to pod-c", total, toC)
	}
	if got, _ := strconv.Atoi(f.trailer.Get(api.TrailerCapturePackets)); got != total {
		t.Errorf("trailer says %d packets, the file holds %d", got, total)
	}

	t.Run("max packets", func(t *testing.T) {
		wait := startCapture(t, a, url.Values{"max_packets": {"7"}, "duration": {"20s"}}, filepath.Join(dir, "seven.pcap"))
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 2}); err != nil {
				t.Error(err)
			}
		})
		r := wait()
		wg.Wait()
		if n := testns.TsharkCount(t, r.file, ""); n != 7 {
			t.Errorf("%d packets, want exactly 7", n)
		}
		if got := r.trailer.Get(api.TrailerCaptureStop); got != string(ondemand.StopPackets) {
			t.Errorf("stop %q, want packets", got)
		}
	})
	t.Run("max bytes", func(t *testing.T) {
		wait := startCapture(t, a, url.Values{"max_bytes": {"1000"}, "duration": {"20s"}}, filepath.Join(dir, "kb.pcap"))
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := l.Traffic(ctx, lab.ScenarioService, lab.TrafficOptions{Count: 2}); err != nil {
				t.Error(err)
			}
		})
		r := wait()
		wg.Wait()
		st, err := os.Stat(r.file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 || st.Size() <= 24 || r.trailer.Get(api.TrailerCaptureStop) != string(ondemand.StopBytes) {
			t.Errorf("file of %d bytes, stop %q; want at most 1000 bytes, at least one packet, stopped by bytes", st.Size(), r.trailer.Get(api.TrailerCaptureStop))
		}
		if n := testns.TsharkCount(t, r.file, ""); strconv.Itoa(n) != r.trailer.Get(api.TrailerCapturePackets) {
			t.Errorf("tshark reads %d packets, the trailer says %s", n, r.trailer.Get(api.TrailerCapturePackets))
		}
	})
	t.Run("duration", func(t *testing.T) {
		start := time.Now()
		r := startCapture(t, a, url.Values{"filter": {"host 10.99.99.99"}, "duration": {"1s"}}, filepath.Join(dir, "quiet.pcap"))()
		if el := time.Since(start); el < time.Second || el > 3*time.Second {
			t.Errorf("1s capture took %v", el)
		}
		if n := testns.TsharkCount(t, r.file, ""); n != 0 || r.trailer.Get(api.TrailerCaptureStop) != string(ondemand.StopDuration) {
			t.Errorf("%d packets, stop %q; want 0, duration", n, r.trailer.Get(api.TrailerCaptureStop))
		}
	})
	t.Run("bad filter", func(t *testing.T) {
		r := startCapture(t, a, url.Values{"filter": {"host 10.244.1.8 and"}}, filepath.Join(dir, "bad.pcap"))()
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, "--filter") || !strings.Contains(r.body, "column 20") {
			t.Errorf("bad filter: %d %q; want 400 naming --filter and column 20", r.code, r.body)
		}
	})
	t.Run("caps", func(t *testing.T) {
		resp, err := socketClient(a).Get("http://agent/api/v1/capture?duration=100h&snaplen=100000")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // ends the capture
		if lim := resp.Header.Get(api.HeaderCaptureLimits); !strings.Contains(lim, "duration=5m0s") || !strings.Contains(lim, "snaplen=65535") {
			t.Errorf("limits %q: want duration and snap length lowered to the caps", lim)
		}
	})
}
