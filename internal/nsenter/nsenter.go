// Package nsenter opens network namespaces by name or path and runs code
// inside them on a locked OS thread, so that sockets, netlink connections and
// interface lookups made there belong to that namespace.
//
// A socket keeps the namespace it was created in for its whole life: open it
// inside Do, use it from any goroutine afterwards.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps named network namespaces.
const RunDir = "/run/netns"

// ErrNotFound reports that a named namespace does not exist.
var ErrNotFound = errors.New("network namespace not found")

// NS is an open network namespace. A nil *NS means the caller's own
// namespace: Do runs the function directly and Fd returns -1.
type NS struct {
	f    *os.File
	name string
	// mu orders Close after the entries into the namespace in flight, so
	// that a Do never enters through a closed (or reused) descriptor.
	mu     sync.RWMutex
	closed bool
}

// Path returns the file path of a namespace given by name or path: a value
// containing a slash is a path (/proc/PID/ns/net, /run/netns/x), anything
// else a name under RunDir.
func Path(nameOrPath string) string {
	if strings.ContainsRune(nameOrPath, '/') {
		return nameOrPath
	}
	return filepath.Join(RunDir, nameOrPath)
}

// Open opens the network namespace nameOrPath (see Path). An empty string
// returns nil, the caller's namespace.
func Open(nameOrPath string) (*NS, error) {
	if nameOrPath == "" {
		return nil, nil
	}
	p := Path(nameOrPath)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q (no %s)", ErrNotFound, nameOrPath, p)
		}
		return nil, fmt.Errorf("open network namespace %q: %w", nameOrPath, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err == nil && st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace file", p)
	}
	return &NS{f: f, name: nameOrPath}, nil
}

// Name returns the name or path the namespace was opened with, or "" for nil.
func (n *NS) Name() string {
	if n == nil {
		return ""
	}
	return n.name
}

// Fd returns the namespace's file descriptor (for netlink.Config.NetNS), or
// -1 for the caller's namespace. The descriptor stays valid until Close.
func (n *NS) Fd() int {
	if n == nil {
		return -1
	}
	return int(n.f.Fd())
}

// Close releases the namespace file.
func (n *NS) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	return n.f.Close()
}

// ErrClosed is the error of Do on a closed NS.
var ErrClosed = errors.New("network namespace closed")

// enter moves the calling thread into the namespace.
func (n *NS) enter() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return fmt.Errorf("enter network namespace %q: %w", n.name, ErrClosed)
	}
	if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %q: %w (needs CAP_SYS_ADMIN)", n.name, err)
	}
	return nil
}

// Do runs fn on an OS thread that has entered the namespace, and waits for
// it. The thread returns to its original namespace afterwards; if it cannot,
// the thread is left locked so the runtime discards it.
func (n *NS) Do(fn func() error) error {
	if n == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := n.enter(); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("return from network namespace %q: %w", n.name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
