package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/internal/testns"
)

// quietNode is a namespace "node" with one veth to a "pod" namespace: an
// agent can observe it and capture on its veth without a whole lab.
type quietNode struct {
	node, pod *testns.NS
	ifc       int
}

func newQuietNode(t *testing.T) *quietNode {
	t.Helper()
	q := &quietNode{node: testns.Make(t, "lsh-node"), pod: testns.Make(t, "lsh-pod")}
	q.ifc = testns.VethPair(t, q.node, "veth0", "10.251.0.1/24", q.pod, "eth0", "10.251.0.2/24")
	return q
}

// startQuiet runs an agent on q's node with cfg (its NetNS and, when
// empty, MetricsAddr filled in) until the test ends. wait returns Run's
// error once it returned.
func startQuiet(t *testing.T, q *quietNode, cfg Config) (a *Agent, cancel context.CancelFunc, wait func() error) {
	t.Helper()
	cfg.NetNS = q.node.Name
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	cfg.Conntrack.Disabled = true
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cancel, wait = runAgent(t, a)
	return a, cancel, wait
}

func do(t *testing.T, c *http.Client, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// flood sends UDP from the pod to the node for d, so that captures of the
// node's veth have data to write.
func (q *quietNode) flood(t *testing.T, d time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = q.pod.Enter.Do(func() error {
			c, err := net.Dial("udp4", "10.251.0.1:9")
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 1400)
			for ctx.Err() == nil {
				_, _ = c.Write(buf)
			}
			return nil
		})
	})
	return func() { cancel(); wg.Wait() }
}

// TestCaptureNeedsAnIdentifiedClient: captures are off by default; turned
// on, the agent refuses to start unless some client can be identified;
// anonymous TCP clients get 403 while root on the socket, a process of the
// socket's group and a basic-auth user get their pcap; any other local
// user is cut off at accept even when the socket file lets it connect.
func TestCaptureNeedsAnIdentifiedClient(t *testing.T) {
	q := newQuietNode(t)
	t.Run("off by default", func(t *testing.T) {
		a, _, _ := startQuiet(t, q, Config{})
		if code, body := do(t, http.DefaultClient, "GET", "http://"+a.Addr().String()+"/api/v1/capture?duration=1s&interface=veth0"); code != http.StatusNotFound {
			t.Errorf("default capture API: %d %q, want 404", code, body)
		}
	})
	t.Run("no way to identify", func(t *testing.T) {
		_, err := New(Config{NetNS: q.node.Name, MetricsAddr: "127.0.0.1:0", OnDemand: OnDemandConfig{Enabled: true}})
		if err == nil || !strings.Contains(err.Error(), "--capture-api") || !strings.Contains(err.Error(), "--api-socket") {
			t.Fatalf("New with captures and no authentication: %v; want an error naming --capture-api and the ways out", err)
		}
	})
	t.Run("kubernetes auth without the API", func(t *testing.T) {
		_, err := New(Config{NetNS: q.node.Name, MetricsAddr: "127.0.0.1:0", OnDemand: OnDemandConfig{Enabled: true},
			CaptureKubeAuth: "layerscope", Kube: KubeConfig{Mode: kube.ModeOff}})
		if err == nil || !strings.Contains(err.Error(), "--capture-api-kubernetes-auth") || !strings.Contains(err.Error(), "--k8s-metadata=api") {
			t.Fatalf("New with Kubernetes capture auth and no API: %v; want an error naming the flag and how to give the API", err)
		}
		_, err = New(Config{NetNS: q.node.Name, MetricsAddr: "127.0.0.1:0", CaptureKubeAuth: "layerscope"})
		if err == nil || !strings.Contains(err.Error(), "without --capture-api") {
			t.Fatalf("New with Kubernetes capture auth and captures off: %v; want an error naming --capture-api", err)
		}
		// Beside basic-auth users, which every request must carry: no
		// bearer token would get through.
		kc := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"+
			"contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		web := promtest.NewWebTLS(t)
		_, err = New(Config{NetNS: q.node.Name, MetricsAddr: "127.0.0.1:0", WebConfigFile: web.WebConfig, OnDemand: OnDemandConfig{Enabled: true},
			CaptureKubeAuth: "layerscope", Kube: KubeConfig{Mode: kube.ModeAPI, Kubeconfig: kc}})
		if err == nil || !strings.Contains(err.Error(), "basic_auth_users") || !strings.Contains(err.Error(), "--capture-api-kubernetes-auth") {
			t.Fatalf("New with Kubernetes capture auth beside basic-auth users: %v; want an error naming both", err)
		}
	})
	t.Run("socket", func(t *testing.T) {
		// Reachable by other users: t.TempDir's parent is private.
		dir, err := os.MkdirTemp("", "layerscope-sock-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "api.sock")
		a, _, _ := startQuiet(t, q, Config{APISocket: sock, APISocketGroup: "65533", OnDemand: OnDemandConfig{Enabled: true}})
		if code, body := do(t, http.DefaultClient, "GET", "http://"+a.Addr().String()+"/api/v1/capture?duration=1s&interface=veth0"); code != http.StatusForbidden {
			t.Errorf("anonymous TCP capture: %d %q, want 403", code, body)
		}
		code, body := do(t, socketClient(a), "GET", "http://agent/api/v1/capture?duration=1s&interface=veth0")
		if code != http.StatusOK || !isPcap(body) {
			t.Errorf("root on the socket: %d, %d bytes %.200q; want 200 and a pcap", code, len(body), body)
		}
		st, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 65533 {
			t.Errorf("socket mode %v gid %d, want 0660 and the group", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
		}
		curl := testns.Tool{Name: "curl"}.Path(t)
		asUser := func(uid, gid uint32) (string, error) {
			cmd := exec.Command(curl, "-s", "--max-time", "5", "--unix-socket", sock, "http://agent/api/v1/capture?duration=1s&interface=veth0")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
			out, err := cmd.Output()
			return string(out), err
		}
		if out, err := asUser(65534, 65533); err != nil || !isPcap(out) {
			t.Errorf("a process of the socket's group: %v, %d bytes; want a pcap", err, len(out))
		}
		// A socket made world-writable by mistake still serves no one else.
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		if out, err := asUser(65534, 65534); err == nil || len(out) != 0 {
			t.Errorf("another user on the socket: %v, %d bytes; want the connection closed", err, len(out))
		}
		if s := socketStats(a); s.PeerRefused != 1 {
			t.Errorf("socket stats %+v: want one refused peer", s)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		web := promtest.NewWebTLS(t)
		a, _, _ := startQuiet(t, q, Config{WebConfigFile: web.WebConfig, OnDemand: OnDemandConfig{Enabled: true}})
		c := web.Client()
		u := "https://" + a.Addr().String() + "/api/v1/capture?duration=1s&interface=veth0"
		if code, _ := do(t, c, "GET", u); code != http.StatusUnauthorized {
			t.Errorf("capture without credentials: %d, want 401", code)
		}
		cu, _ := url.Parse(u)
		cu.User = url.UserPassword(web.User, web.Pass)
		if code, body := do(t, c, "GET", cu.String()); code != http.StatusOK || !isPcap(body) {
			t.Errorf("capture with credentials: %d, %d bytes; want a pcap", code, len(body))
		}
	})
}

func socketStats(a *Agent) server.Stats {
	for _, s := range a.srv.Stats() {
		if s.Listener == "socket" {
			return s
		}
	}
	return server.Stats{}
}

func isPcap(b string) bool {
	return len(b) >= 24 && binary.LittleEndian.Uint32([]byte(b[:4])) == 0xa1b23c4d
}

// TestProbesWithoutCredentials: with basic auth on the main listener, the
// health listener answers the probes without credentials and serves
// nothing else.
func TestProbesWithoutCredentials(t *testing.T) {
	q := newQuietNode(t)
	web := promtest.NewWebTLS(t)
	a, _, _ := startQuiet(t, q, Config{WebConfigFile: web.WebConfig, HealthAddr: "127.0.0.1:0"})
	h := "http://" + a.HealthAddr().String()
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := do(t, http.DefaultClient, "GET", h+p); code != http.StatusOK {
			t.Errorf("health listener %s: %d %q, want 200", p, code, body)
		}
	}
	for _, p := range []string{"/metrics", "/api/v1/status", "/api/v1/connections", "/api/v1/capture"} {
		if code, _ := do(t, http.DefaultClient, "GET", h+p); code != http.StatusNotFound {
			t.Errorf("health listener %s: %d, want 404", p, code)
		}
	}
	c := web.Client()
	if code, _ := do(t, c, "GET", "https://"+a.Addr().String()+"/healthz"); code != http.StatusUnauthorized {
		t.Errorf("main listener /healthz without credentials: %d, want 401", code)
	}
}

// TestMethods: other methods than GET get 405 with Allow, HEAD opens no
// capture, unknown paths 404.
func TestMethods(t *testing.T) {
	q := newQuietNode(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	a, _, _ := startQuiet(t, q, Config{APISocket: sock, OnDemand: OnDemandConfig{Enabled: true}})
	base := "http://" + a.Addr().String()
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/api/v1/connections", "/api/v1/status", "/api/v1/pmtu", "/api/v1/capture", "/"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			req, _ := http.NewRequest(m, base+p, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("%s %s: %d Allow %q, want 405 with GET allowed", m, p, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	if code, _ := do(t, http.DefaultClient, "GET", base+"/no/such/path"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", code)
	}
	start := time.Now()
	if code, _ := do(t, socketClient(a), "HEAD", "http://agent/api/v1/capture?duration=3s&interface=veth0"); code != http.StatusMethodNotAllowed {
		t.Errorf("HEAD capture: %d, want 405", code)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("HEAD capture took %v: a capture ran", el)
	}
}

// TestIdleAndSilentConnections: keep-alive connections are closed after
// IdleTimeout; beyond MaxConns, silent connections make room for a scrape.
func TestIdleAndSilentConnections(t *testing.T) {
	q := newQuietNode(t)
	a, _, _ := startQuiet(t, q, Config{HTTP: server.Config{IdleTimeout: 300 * time.Millisecond, MaxConns: 16}})
	addr := a.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection: read %v, want EOF once the idle timeout closed it", err)
	}

	fds := testns.CountFDs(t)
	var silent []net.Conn
	for range 100 {
		s, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, s)
	}
	defer func() {
		for _, s := range silent {
			s.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // silent longer than a real client would be
	start := time.Now()
	code, _ := do(t, &http.Client{Timeout: 2 * time.Second}, "GET", "http://"+addr+"/metrics")
	if el := time.Since(start); code != http.StatusOK || el > time.Second {
		t.Errorf("scrape behind 100 silent connections: %d after %v, want 200 within 1s", code, el)
	}
	var st server.Stats
	for _, s := range a.srv.Stats() {
		if s.Listener == "main" {
			st = s
		}
	}
	if st.Open > 16 || st.Evicted < 100-16 {
		t.Errorf("main listener %+v: want at most 16 open, the oldest silent ones evicted", st)
	}
	for _, s := range silent {
		s.Close()
	}
	silent = nil
	waitUntil(t, 3*time.Second, func() bool { return testns.CountFDs(t) <= fds+2 }, "descriptors back to their start value")
}

func waitUntil(t *testing.T, d time.Duration, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

// TestStalledCaptureReader: a client that stops reading loses its capture
// shortly after the capture's duration, and its slot goes to the next.
func TestStalledCaptureReader(t *testing.T) {
	q := newQuietNode(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	a, _, _ := startQuiet(t, q, Config{APISocket: sock, OnDemand: OnDemandConfig{Enabled: true, MaxConcurrent: 1}})
	stop := q.flood(t, 20*time.Second)
	defer stop()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/capture?duration=1s&interface=veth0 HTTP/1.1\r\nHost: x\r\n\r\n")
	// Read the headers only, then nothing more.
	br := bufio.NewReaderSize(c, 512)
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var code int
	waitUntil(t, 1+captureWriteGrace+5*time.Second, func() bool {
		code, _ = do(t, socketClient(a), "GET", "http://agent/api/v1/capture?duration=1ms&interface=veth0")
		return code == http.StatusOK
	}, "the stalled capture's slot freed")
	t.Logf("slot free %v after the stalled capture started", time.Since(start).Round(100*time.Millisecond))
}

// TestShutdownDuringCapture: stopping the agent ends a capture in flight
// with its trailer, and Run returns nil at once.
func TestShutdownDuringCapture(t *testing.T) {
	q := newQuietNode(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	a, cancel, wait := startQuiet(t, q, Config{APISocket: sock, OnDemand: OnDemandConfig{Enabled: true}})
	resp, err := socketClient(a).Get("http://agent/api/v1/capture?duration=60s&interface=veth0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stop := q.flood(t, 500*time.Millisecond)
	stop()
	start := time.Now()
	cancel()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("capture body after shutdown: %v", err)
	}
	if got := resp.Trailer.Get(api.TrailerCaptureStop); got != string(ondemand.StopCanceled) || !isPcap(string(b)) {
		t.Errorf("trailer stop %q, %d bytes: want canceled and a pcap", got, len(b))
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a stop during a capture: %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3s")
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
}

// TestHostileFilters: filters too long or too deep are refused with 400
// before a capture slot is taken (even when every slot is busy), header
// floods with 431, and neither grows the heap.
func TestHostileFilters(t *testing.T) {
	q := newQuietNode(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	a, _, _ := startQuiet(t, q, Config{APISocket: sock, OnDemand: OnDemandConfig{Enabled: true, MaxConcurrent: 1}})
	busy, err := socketClient(a).Get("http://agent/api/v1/capture?duration=20s&interface=veth0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Body.Close()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, f := range []string{
		strings.Repeat("(", 10000) + "tcp" + strings.Repeat(")", 10000),
		strings.Repeat("(", 100) + "tcp" + strings.Repeat(")", 100),
		strings.Repeat("!", 10000) + "tcp",
		strings.Repeat("not ", 100) + "tcp",
	} {
		code, body := do(t, socketClient(a), "GET", "http://agent/api/v1/capture?filter="+url.QueryEscape(f))
		if code != http.StatusBadRequest || !strings.Contains(body, "--filter") || len(body) > 1024 {
			t.Errorf("hostile filter of %d bytes: %d, %d-byte answer %.80q; want a short 400 naming --filter", len(f), code, len(body), body)
		}
	}
	code, _ := do(t, socketClient(a), "GET", "http://agent/api/v1/capture?filter="+strings.Repeat("(", 1<<20))
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MiB filter: %d, want 431", code)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 16<<20 {
		t.Errorf("heap grew %d MiB answering hostile filters", grow>>20)
	}
}

// TestConnectionsAnswerIsBounded: 30 parallel full-history requests whose
// clients never read hold neither the answers in memory nor their slots:
// beyond MaxAPIRequests they get 429, the heap stays small, and the
// writers give up after the write timeout.
func TestConnectionsAnswerIsBounded(t *testing.T) {
	q := newQuietNode(t)
	a, _, _ := startQuiet(t, q, Config{})
	fillHistory(a, history.DefaultSize)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	addr := a.Addr().String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 30 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "GET /api/v1/connections HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second)
	var mid runtime.MemStats
	runtime.ReadMemStats(&mid)
	grow := int64(mid.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use %d MiB before, %d MiB with 30 stalled full-history readers", before.HeapInuse>>20, mid.HeapInuse>>20)
	if grow > 64<<20 {
		t.Errorf("heap grew %d MiB with 30 stalled readers of the whole history", grow>>20)
	}
	busy := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.Contains(line, " 429 ") {
			busy++
		}
	}
	if busy != 30-MaxAPIRequests {
		t.Errorf("%d of 30 got 429, want %d", busy, 30-MaxAPIRequests)
	}
	// Once the stalled clients are gone their slots are free again.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitUntil(t, 5*time.Second, func() bool { return a.handlers.InFlight() == 0 }, "the stalled requests' slots freed")
	code, body := do(t, http.DefaultClient, "GET", "http://"+addr+"/api/v1/connections?limit=3")
	if code != http.StatusOK || strings.Count(body, `"seq"`) != 3 {
		t.Errorf("limit=3: %d, %d events", code, strings.Count(body, `"seq"`))
	}
}

// fillHistory adds n final events of distinct TCP flows to a's history.
func fillHistory(a *Agent, n int) {
	now := time.Now().UnixNano()
	for i := range n {
		r := flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, 251, byte(i >> 8), byte(i)}), Dst: netip.AddrFrom4([4]byte{10, 251, 0, 1}), SrcPort: uint16(10000 + i), DstPort: 80, Proto: flow.ProtoTCP},
			First: now, Last: now, Outcome: flow.OutcomeClosed, End: flow.EndIdle}
		r.NumHops = 1
		r.Hops[0] = flow.Hop{IfIndex: 1, First: now, Last: now}
		r.Hops[0].Packets[flow.FromClient], r.Hops[0].Packets[flow.FromServer] = 5, 5
		a.history.Add(history.KindFinal, &r, nil, now)
	}
}

// TestCaptureInterfaceBounds: one capture takes at most MaxInterfaces
// interfaces, and the ring budget must hold the least ring of that many
// interfaces of every concurrent capture.
func TestCaptureInterfaceBounds(t *testing.T) {
	q := newQuietNode(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	a, _, _ := startQuiet(t, q, Config{APISocket: sock, OnDemand: OnDemandConfig{Enabled: true, MaxInterfaces: 1}})
	code, body := do(t, socketClient(a), "GET", "http://agent/api/v1/capture?interface=*&duration=1s")
	if code != http.StatusBadRequest || !strings.Contains(body, "--capture-api-max-interfaces") {
		t.Errorf("capture of every interface beyond the cap: %d %q, want 400 naming --capture-api-max-interfaces", code, body)
	}
	if code, body := do(t, socketClient(a), "GET", "http://agent/api/v1/capture?interface=veth0&duration=1ms"); code != http.StatusOK || !isPcap(body) {
		t.Errorf("capture of one interface: %d, want a pcap", code)
	}
	_, err := New(Config{NetNS: q.node.Name, MetricsAddr: "127.0.0.1:0", APISocket: filepath.Join(t.TempDir(), "b.sock"),
		OnDemand: OnDemandConfig{Enabled: true, RingMemory: 1 << 20}})
	if err == nil || !strings.Contains(err.Error(), "--capture-api-ring-memory") {
		t.Errorf("a ring budget below 32 interfaces × 2 captures × 256 KiB: %v, want an error naming --capture-api-ring-memory", err)
	}
}
