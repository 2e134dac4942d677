package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"

	"github.com/stretchr/testify/require"
)

// newTestLab builds a lab with a unique prefix and removes it when the test
// ends, whatever its outcome.
func newTestLab(t *testing.T) *Lab {
	t.Helper()
	testns.RequireRoot(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "t" + hex.EncodeToString(b[:]) + "-"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, &Config{Prefix: prefix, StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		requireGone(t, prefix)
	})
	return l
}

// requireGone checks that no namespace of the prefix is left.
func requireGone(t *testing.T, prefix string) {
	t.Helper()
	for _, name := range NamespaceNames(prefix) {
		_, err := os.Stat("/run/netns/" + name)
		require.ErrorIs(t, err, os.ErrNotExist, "namespace %s left behind", name)
	}
	// A separate process, so the answer is the root namespace's.
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range []string{"veth-pod-", "veth-dns", VXLANName, BridgeName} {
		require.NotContains(t, string(out), name, "a lab link is in the root namespace")
	}
}

func TestPodToPodAcrossVXLAN(t *testing.T) {
	l := newTestLab(t)
	c, _ := l.Pod(PodC)
	a, _ := l.Namespace(PodA)
	var conn net.Conn
	require.NoError(t, a.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", netAddr(c.IP.String(), ServicePort), 2*time.Second)
		return err
	}))
	defer conn.Close()
	_, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	require.NoError(t, err)
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var all strings.Builder
	for {
		n, err := conn.Read(buf)
		all.Write(buf[:n])
		if err != nil {
			break
		}
	}
	require.Contains(t, all.String(), "X-Backend: pod-c")
}

func osexec(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
