package attach

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/testns"
)

// recorder is a pipeline stand-in: one reading goroutine per ring,
// counting UDP frames by destination port and direction.
type recorder struct {
	mu       sync.Mutex
	attached map[string]time.Time
	detached map[string]bool
	counts   map[string]map[[2]int]int // ifname -> {port, dir} -> frames
	workers  sync.WaitGroup
	errs     []error
}

func newRecorder() *recorder {
	return &recorder{attached: map[string]time.Time{}, detached: map[string]bool{}, counts: map[string]map[[2]int]int{}}
}

func (rc *recorder) onAttach(l links.Link, r *capture.Ring) {
	rc.mu.Lock()
	rc.attached[l.Name] = time.Now()
	delete(rc.detached, l.Name)
	counts := map[[2]int]int{}
	rc.counts[l.Name] = counts
	rc.mu.Unlock()
	rc.workers.Add(1)
	go func() {
		defer rc.workers.Done()
		err := r.Run(context.Background(), func(frame []byte, m *capture.Meta) {
			if p, ok := udpDstPort(frame); ok {
				rc.mu.Lock()
				counts[[2]int{p, int(m.Direction)}]++
				rc.mu.Unlock()
			}
		})
		if err != capture.ErrClosed {
			rc.mu.Lock()
			rc.errs = append(rc.errs, err)
			rc.mu.Unlock()
		}
	}()
}

func (rc *recorder) onDetach(l links.Link, _ *capture.Ring) {
	rc.mu.Lock()
	rc.detached[l.Name] = true
	rc.mu.Unlock()
}

func (rc *recorder) count(ifname string, port int, d flow.Direction) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.counts[ifname][[2]int{port, int(d)}]
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startManager runs a Manager on node and waits until it is ready.
func startManager(t *testing.T, node *testNS, rc *recorder, cfg Config) *Manager {
	cfg.NetNS = node.Enter
	cfg.OnAttach, cfg.OnDetach = rc.onAttach, rc.onDetach
	m, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			// A Manager that does not stop is a defect of its own: say so
			// with the goroutines, instead of hanging the package until
			// the test binary's timeout (which skips every cleanup).
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("Run did not return within 30 s of its context's end; goroutines:\n%s", b.String())
		}
		rc.workers.Wait()
		require.Empty(t, rc.errs)
	})
	select {
	case <-m.Ready():
	case <-time.After(3 * time.Second):
		t.Fatal("manager not ready")
	}
	return m
}

func addBridge(t *testing.T, n *testNS, name, cidr string) netlink.Link {
	require.NoError(t, n.H.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}))
	br := n.Link(t, name)
	addr, err := netlink.ParseAddr(cidr)
	require.NoError(t, err)
	require.NoError(t, n.H.AddrAdd(br, addr))
	require.NoError(t, n.H.LinkSetUp(br))
	return br
}

func TestNewPodVethCapturedWithinOneSecond(t *testing.T) {
	// Each wiring: how the host end is set up once its peer is in the pod.
	wirings := []struct {
		name string
		wire func(t *testing.T, node *testNS, host netlink.Link)
	}{
		{"bridge", func(t *testing.T, node *testNS, host netlink.Link) {
			br := addBridge(t, node, "cbr0", "10.244.0.1/24")
			require.NoError(t, node.H.LinkSetMaster(host, br))
		}},
		{"routed-gateway", func(t *testing.T, node *testNS, host netlink.Link) {
			addr, _ := netlink.ParseAddr("10.244.0.1/24")
			require.NoError(t, node.H.AddrAdd(host, addr))
		}},
		{"host-route", func(t *testing.T, node *testNS, host netlink.Link) {
			addr, _ := netlink.ParseAddr("10.244.0.1/32")
			require.NoError(t, node.H.AddrAdd(host, addr))
			_, dst, _ := net.ParseCIDR("10.244.0.5/32")
			require.NoError(t, node.H.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}))
		}},
	}
	for _, w := range wirings {
		t.Run(w.name, func(t *testing.T) {
			node, pod := newNS(t), newNS(t)
			rc := newRecorder()
			m := startManager(t, node, rc, Config{})
			require.Empty(t, m.Attached())

			// The pod's veth, created with its peer in the pod, then wired.
			start := time.Now()
			require.NoError(t, node.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-pa"},
				PeerName: "eth0", PeerNamespace: netlink.NsFd(int(pod.Fd))}))
			host := node.Link(t, "veth-pa")
			require.NoError(t, node.H.LinkSetUp(host))
			w.wire(t, node, host)
			peer := pod.Link(t, "eth0")
			addr, _ := netlink.ParseAddr("10.244.0.5/24")
			require.NoError(t, pod.H.AddrAdd(peer, addr))
			require.NoError(t, pod.H.LinkSetUp(peer))
			waitFor(t, "attach of veth-pa", time.Second, func() bool {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				_, ok := rc.attached["veth-pa"]
				return ok
			})
			rc.mu.Lock()
			t.Logf("veth-pa attached %v after creation", rc.attached["veth-pa"].Sub(start))
			rc.mu.Unlock()
			att := m.Attached()
			require.Len(t, att, 1)
			require.Equal(t, flow.RolePod, att[0].Link.Role)

			// Pod -> node arrives on veth-pa (in); node -> pod leaves it (out).
			const up, down = 17, 11
			sendUDP(t, pod, "10.244.0.1:5353", up, 64)
			sendUDP(t, node, "10.244.0.5:5354", down, 64)
			waitFor(t, "all datagrams", 3*time.Second, func() bool {
				return rc.count("veth-pa", 5353, flow.DirIn) == up && rc.count("veth-pa", 5354, flow.DirOut) == down
			})
			time.Sleep(100 * time.Millisecond)
			require.Equal(t, up, rc.count("veth-pa", 5353, flow.DirIn))
			require.Equal(t, down, rc.count("veth-pa", 5354, flow.DirOut))
			require.Zero(t, rc.count("veth-pa", 5353, flow.DirOut))
			require.Zero(t, rc.count("veth-pa", 5354, flow.DirIn))

			// The pod goes: detached.
			require.NoError(t, node.H.LinkDel(host))
			waitFor(t, "detach of veth-pa", time.Second, func() bool {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				return rc.detached["veth-pa"]
			})
			require.Empty(t, m.Attached())
		})
	}
}

func TestDeleting100VethsLeaksNothing(t *testing.T) {
	node, pods := newNS(t), newNS(t)
	br := addBridge(t, node, "cbr0", "10.244.0.1/24")
	rc := newRecorder()
	m := startManager(t, node, rc, Config{Ring: func(links.Link) capture.Config {
		return capture.Config{BlockSize: 16 << 10, NumBlocks: 2} // keep 100 rings small
	}})
	time.Sleep(100 * time.Millisecond)
	fds0, gor0 := countFDs(t), runtime.NumGoroutine()

	const n = 100
	for i := 0; i < n; i++ {
		require.NoError(t, node.H.LinkAdd(&netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vp%d", i), MasterIndex: br.Attrs().Index},
			PeerName:  fmt.Sprintf("e%d", i), PeerNamespace: netlink.NsFd(int(pods.Fd))}))
		require.NoError(t, node.H.LinkSetUp(node.Link(t, fmt.Sprintf("vp%d", i))))
	}
	waitFor(t, "100 attachments", 5*time.Second, func() bool { return len(m.Attached()) == n })
	require.Equal(t, fds0+n, countFDs(t), "each ring holds one descriptor: its packet socket")
	rc.mu.Lock()
	require.Len(t, rc.attached, n)
	rc.mu.Unlock()
	require.GreaterOrEqual(t, runtime.NumGoroutine(), gor0+n-1, "one reader per ring")

	for i := 0; i < n; i++ {
		require.NoError(t, node.H.LinkDel(node.Link(t, fmt.Sprintf("vp%d", i))))
	}
	waitFor(t, "100 detachments", 5*time.Second, func() bool { return len(m.Attached()) == 0 })
	waitFor(t, "descriptors and goroutines to settle", 2*time.Second, func() bool {
		return countFDs(t) == fds0 && runtime.NumGoroutine() == gor0
	})
	rc.mu.Lock()
	require.Len(t, rc.detached, n)
	rc.mu.Unlock()
}

func TestSelected(t *testing.T) {
	m, err := New(Config{Include: []string{"veth*", "eth0", "vxlan*"}, Exclude: []string{"veth-skip*"}})
	require.NoError(t, err)
	tests := []struct {
		name string
		role flow.Role
		want bool
	}{
		{"veth1", flow.RolePod, true},
		{"veth-skip1", flow.RolePod, false},
		{"eth0", flow.RoleUplink, true},
		{"vxlan0", flow.RoleOverlay, true},
		{"cali1", flow.RolePod, false}, // not included
		{"veth2", flow.RoleOther, false},
		{"veth3", flow.RoleBridge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, m.Selected(links.Link{Name: tt.name, Role: tt.role}))
		})
	}
	m, err = New(Config{Roles: []flow.Role{flow.RoleBridge}})
	require.NoError(t, err)
	require.True(t, m.Selected(links.Link{Name: "cbr0", Role: flow.RoleBridge}))
	require.False(t, m.Selected(links.Link{Name: "veth1", Role: flow.RolePod}))
	_, err = New(Config{Exclude: []string{"["}})
	require.ErrorIs(t, err, ErrPattern)
}

func TestAttachRetriedAfterFDLimit(t *testing.T) {
	node, pods := newNS(t), newNS(t)
	rc := newRecorder()
	m := startManager(t, node, rc, Config{
		Ring:     func(links.Link) capture.Config { return capture.Config{BlockSize: 16 << 10, NumBlocks: 2} },
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	addPod := func(i int) {
		t.Helper()
		require.NoError(t, node.H.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vp%d", i)},
			PeerName: fmt.Sprintf("e%d", i), PeerNamespace: netlink.NsFd(int(pods.Fd))}))
		require.NoError(t, node.H.LinkSetUp(node.Link(t, fmt.Sprintf("vp%d", i))))
	}
	delPod := func(i int) {
		t.Helper()
		require.NoError(t, node.H.LinkDel(node.Link(t, fmt.Sprintf("vp%d", i))))
	}
	names := func() []string {
		var out []string
		for _, a := range m.Attached() {
			out = append(out, a.Link.Name)
		}
		return out
	}
	pendingNames := func() []string {
		var out []string
		for _, p := range m.Pending() {
			out = append(out, p.Link.Name)
		}
		return out
	}
	for i := range 3 {
		addPod(i)
	}
	waitFor(t, "3 attachments", 2*time.Second, func() bool { return len(m.Attached()) == 3 })

	// Pods come and go while no descriptor can be opened.
	restore := testns.LowerFDLimit(t)
	for i := 3; i < 11; i++ {
		addPod(i)
	}
	delPod(1) // attached before
	delPod(4) // never attached
	waitFor(t, "7 pending", 2*time.Second, func() bool { return len(m.Pending()) == 7 })
	time.Sleep(300 * time.Millisecond) // a few retries fail too
	ps := m.Pending()
	restore()
	require.Equal(t, []string{"vp0", "vp2"}, names())
	for _, p := range ps {
		require.ErrorIs(t, p.Err, unix.EMFILE, p.Link.Name)
		require.Equal(t, flow.RolePod, p.Link.Role)
		require.Greater(t, p.Attempts, 1, "%s retried", p.Link.Name)
		require.False(t, p.Since.IsZero())
	}
	require.NotContains(t, pendingNames(), "vp4", "a removed interface is not retried")

	// Once descriptors can be had again every pod is captured by the
	// retries (RetryMax is 200 ms; the bound leaves room for a loaded
	// host, the log says how long it took).
	lifted := time.Now()
	want := []string{"vp0", "vp2", "vp3", "vp5", "vp6", "vp7", "vp8", "vp9", "vp10"}
	waitFor(t, "every pod captured", 10*time.Second, func() bool { return len(m.Pending()) == 0 && len(m.Attached()) == len(want) })
	t.Logf("all pods captured %v after the limit was lifted", time.Since(lifted).Round(time.Millisecond))
	require.ElementsMatch(t, want, names())
	rc.mu.Lock()
	require.Len(t, rc.attached, 10, "vp1 and the nine pods present")
	rc.mu.Unlock()
}

func TestBackoff(t *testing.T) {
	m, err := New(Config{RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
	require.NoError(t, err)
	for n, upper := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		for range 50 {
			d := m.backoff(n)
			require.GreaterOrEqual(t, d, upper/2, "attempt %d", n)
			require.LessOrEqual(t, d, upper, "attempt %d", n)
		}
	}
}
