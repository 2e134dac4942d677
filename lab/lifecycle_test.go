package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"

	"github.com/stretchr/testify/require"
)

func TestCheckPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"ls-", true},
		{"t0a1b2c-", true},
		{"abcdefghijkl", true},
		{"", false},
		{"abcdefghijklm", false},
		{"-ls", false},
		{"LS-", false},
		{"a/b", false},
		{"a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			err := checkPrefix(tt.prefix)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrBadPrefix)
			}
		})
	}
}

func TestUnknownWiringRefused(t *testing.T) {
	_, err := New(context.Background(), &Config{Prefix: "wiringbad-", Wiring: "ovs"})
	require.ErrorIs(t, err, ErrBadWiring)
}

func TestKubeProxyRulesInstalled(t *testing.T) {
	l := newTestLab(t)
	svc := ServiceChain()
	for _, n := range l.Nodes() {
		out, err := RunInNetNS(context.Background(), n.NetNS, nil, "iptables-save", "-t", "nat")
		require.NoError(t, err)
		save := string(out)
		require.Contains(t, save, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
		require.Contains(t, save, "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
		require.Contains(t, save, fmt.Sprintf("-A KUBE-SERVICES -d 10.96.0.42/32 -p tcp -m comment --comment \"default/my-service:http cluster IP\" -m tcp --dport 8080 -j %s", svc))
		require.Contains(t, save, fmt.Sprintf("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/my-service:http\" -m tcp --dport 30080 -j %s", ExternalChain()))
		b := l.Backends()
		require.Contains(t, save, fmt.Sprintf("-m statistic --mode random --probability 0.33333333349 -j %s", EndpointChain(b[0])))
		require.Contains(t, save, fmt.Sprintf("-m statistic --mode random --probability 0.50000000000 -j %s", EndpointChain(b[1])))
		require.Contains(t, save, fmt.Sprintf("-A %s -m comment --comment \"default/my-service:http -> 10.244.1.8:8080\" -j %s", svc, EndpointChain(b[2])))
		for _, p := range b {
			require.Contains(t, save, fmt.Sprintf("-A %s -p tcp -m comment --comment \"default/my-service:http\" -m tcp -j DNAT --to-destination %s:8080", EndpointChain(p), p.IP))
		}
	}
}

// nsInodes returns the inode of each namespace of the lab.
func nsInodes(t *testing.T, prefix string) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, name := range NamespaceNames(prefix) {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat("/run/netns/"+name, &st))
		out[st.Ino] = name
	}
	return out
}

// requireNoReference checks that no thread and no file descriptor of this
// process still holds one of the namespaces.
func requireNoReference(t *testing.T, inodes map[uint64]string) {
	t.Helper()
	check := func(glob string) {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			link, err := os.Readlink(p)
			if err != nil || !strings.HasPrefix(link, "net:[") {
				continue
			}
			ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]"), 10, 64)
			if name, ok := inodes[ino]; ok {
				t.Errorf("%s still refers to namespace %s", p, name)
			}
		}
	}
	check("/proc/self/task/*/ns/net")
	check("/proc/self/fd/*")
}

func TestCloseRemovesEverything(t *testing.T) {
	testns.RequireRoot(t)
	prefix := fmt.Sprintf("tc%x-", time.Now().UnixNano()&0xffffff)
	l, err := New(context.Background(), &Config{Prefix: prefix, StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	inodes := nsInodes(t, prefix)
	// Use the lab so that sockets, handles and threads have been in it.
	_, err = l.Traffic(context.Background(), ScenarioService, TrafficOptions{Count: 2})
	require.NoError(t, err)
	_, err = l.Traffic(context.Background(), ScenarioDNS, TrafficOptions{Count: 1})
	require.NoError(t, err)
	stateDir := l.stateDir()
	require.DirExists(t, stateDir)

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close is idempotent")
	requireGone(t, prefix)
	requireNoReference(t, inodes)
	require.NoDirExists(t, stateDir)
	out, err := osexec("ip", "netns", "list")
	require.NoError(t, err)
	require.NotContains(t, string(out), prefix)
	_, err = l.Traffic(context.Background(), ScenarioService, TrafficOptions{})
	require.ErrorIs(t, err, ErrClosed)
}

func TestNewFailureLeavesNothing(t *testing.T) {
	testns.RequireRoot(t)
	prefix := fmt.Sprintf("tf%x-", time.Now().UnixNano()&0xffffff)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l, err := New(ctx, &Config{Prefix: prefix, StateDir: t.TempDir()})
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, l)
	requireGone(t, prefix)
}

func TestNewRefusesExistingLab(t *testing.T) {
	l := newTestLab(t)
	_, err := New(context.Background(), &Config{Prefix: l.Prefix(), StateDir: t.TempDir()})
	require.ErrorIs(t, err, ErrExists)
	// The first lab is untouched.
	_, err = l.Traffic(context.Background(), ScenarioDNS, TrafficOptions{Count: 1})
	require.NoError(t, err)
}

func TestStatusAndDownAfterCrash(t *testing.T) {
	testns.RequireRoot(t)
	prefix := fmt.Sprintf("td%x-", time.Now().UnixNano()&0xffffff)
	cfg := &Config{Prefix: prefix, StateDir: t.TempDir()}
	ctx := context.Background()
	l, err := New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	st, err := Status(ctx, cfg)
	require.NoError(t, err)
	require.True(t, st.Up(), "%s", st)
	require.Equal(t, os.Getpid(), st.PID)
	for _, n := range st.Namespaces {
		switch n.Member {
		case Node1, Node2:
			names := map[string]string{}
			for _, link := range n.Links {
				names[link.Name] = link.Kind
			}
			require.Equal(t, "veth", names[NodeIface])
			require.Equal(t, "bridge", names[BridgeName])
			require.Equal(t, "vxlan", names[VXLANName])
			require.Contains(t, n.Chains, ServiceChain())
			require.Equal(t, 1, n.Chains["KUBE-NODEPORTS"], "one NodePort rule")
		case PodDNS:
			require.Equal(t, map[string]bool{"dns": true}, n.Servers)
		default:
			require.Equal(t, map[string]bool{"http": true, "tls": true}, n.Servers)
		}
	}
	require.Contains(t, st.String(), "servers: http=up tls=up")

	// A crash during conntrack-flood leaves the original limit recorded;
	// record the current value so that restoring it changes nothing.
	orig, err := ReadConntrackMax()
	require.NoError(t, err)
	rec := filepath.Join(cfg.StateDir, prefix, conntrackMaxState)
	require.NoError(t, os.WriteFile(rec, []byte(strconv.Itoa(orig)), 0o644))
	st, err = Status(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(orig), st.ConntrackMaxLowered)

	removed, err := Down(ctx, cfg)
	require.NoError(t, err)
	require.ElementsMatch(t, NamespaceNames(prefix), removed)
	require.NoFileExists(t, rec)
	requireGone(t, prefix)
	st, err = Status(ctx, cfg)
	require.NoError(t, err)
	require.False(t, st.Up())
	for _, n := range st.Namespaces {
		require.False(t, n.Exists, n.NetNS)
	}
	// The lab object still closes cleanly after its namespaces were removed.
	require.NoError(t, l.Close())
	removed, err = Down(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, removed)
}

func TestOpenDrivesALabOfAnotherOwner(t *testing.T) {
	l := newTestLab(t)
	a, err := Open(&Config{Prefix: l.Prefix(), StateDir: l.cfg.StateDir})
	require.NoError(t, err)
	defer a.Close()
	require.False(t, a.BackendRunning(PodC))
	r, err := a.Traffic(context.Background(), ScenarioDeadBackend, TrafficOptions{Count: 6})
	require.NoError(t, err)
	require.Positive(t, r.Failed)
	for _, q := range r.Requests {
		require.Equal(t, q.DNATBackend == PodC, !q.OK(), "%+v", q)
	}
	require.True(t, l.BackendRunning(PodC), "the owner restarted pod-c on request")
	r, err = a.Traffic(context.Background(), ScenarioTLS, TrafficOptions{Count: 1})
	require.NoError(t, err)
	require.Zero(t, r.Failed, "the attached lab verifies the servers with the saved certificates")
	require.NoError(t, a.Close())
	// Closing the attached lab leaves the lab in place.
	st, err := Status(context.Background(), &Config{Prefix: l.Prefix(), StateDir: l.cfg.StateDir})
	require.NoError(t, err)
	require.True(t, st.Up())
}

func TestParallelLabsDoNotCollide(t *testing.T) {
	l1 := newTestLab(t)
	l2 := newTestLab(t)
	for _, l := range []*Lab{l1, l2} {
		r, err := l.Traffic(context.Background(), ScenarioService, TrafficOptions{Count: 2})
		require.NoError(t, err)
		require.Zero(t, r.Failed, "lab %s: %s", l.Prefix(), r)
	}
}
