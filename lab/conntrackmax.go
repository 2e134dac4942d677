package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ConntrackMaxPath is the global conntrack table limit. It is writable only
// from the initial network namespace and applies to every namespace.
const ConntrackMaxPath = "/proc/sys/net/netfilter/nf_conntrack_max"

const (
	conntrackMaxState = "nf_conntrack_max.orig" // under the lab's state dir
	conntrackMaxLock  = "nf_conntrack_max.lock"
)

// conntrackMaxLockPath is the lock of the global limit, shared by every lab
// of the machine whatever its state dir: the limit is one for the whole
// machine, and labs with state dirs of their own (tests) lowering it
// under locks of their own would save each other's lowered value as the
// original and restore that.
var conntrackMaxLockPath = filepath.Join(DefaultStateDir, conntrackMaxLock)

// ReadConntrackMax returns the global nf_conntrack_max.
func ReadConntrackMax() (int, error) {
	b, err := os.ReadFile(ConntrackMaxPath)
	if err != nil {
		return 0, fmt.Errorf("read nf_conntrack_max: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse nf_conntrack_max: %w", err)
	}
	return v, nil
}

func writeConntrackMax(v int) error {
	// Write from the caller's (the initial) namespace: the file is 0444 in
	// child namespaces.
	if err := os.WriteFile(ConntrackMaxPath, []byte(strconv.Itoa(v)), 0o644); err != nil {
		return fmt.Errorf("write nf_conntrack_max=%d: %w", v, err)
	}
	return nil
}

// lowerConntrackMax lowers the global nf_conntrack_max to v and returns the
// function restoring it. It holds an exclusive file lock shared by every lab
// of the machine until restore, and records the original value in the
// lab's state dir so that Down can restore it after a crash.
func lowerConntrackMax(stateRoot, prefix string, v int) (restore func() error, orig int, err error) {
	if err := os.MkdirAll(filepath.Join(stateRoot, prefix), 0o755); err != nil {
		return nil, 0, err
	}
	unlock, err := lockFile(conntrackMaxLockPath)
	if err != nil {
		return nil, 0, err
	}
	orig, err = ReadConntrackMax()
	if err != nil {
		unlock()
		return nil, 0, err
	}
	state := filepath.Join(stateRoot, prefix, conntrackMaxState)
	if err := os.WriteFile(state, []byte(strconv.Itoa(orig)), 0o644); err != nil {
		unlock()
		return nil, 0, fmt.Errorf("record nf_conntrack_max: %w", err)
	}
	if err := writeConntrackMax(v); err != nil {
		os.Remove(state)
		unlock()
		return nil, 0, err
	}
	return func() error {
		defer unlock()
		if err := writeConntrackMax(orig); err != nil {
			return err
		}
		return os.Remove(state)
	}, orig, nil
}

// restoreConntrackMax puts back a value recorded by lowerConntrackMax whose
// restore never ran (a crashed process). No record is not an error.
func restoreConntrackMax(stateRoot, prefix string) error {
	state := filepath.Join(stateRoot, prefix, conntrackMaxState)
	b, err := os.ReadFile(state)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v <= 0 {
		return fmt.Errorf("bad nf_conntrack_max record %s: %q", state, b)
	}
	unlock, err := lockFile(conntrackMaxLockPath)
	if err != nil {
		return err
	}
	defer unlock()
	if err := writeConntrackMax(v); err != nil {
		return err
	}
	return os.Remove(state)
}

// HoldConntrackMax keeps every lab of the machine from lowering the global
// nf_conntrack_max until release is called: it takes the limit's lock
// shared. Traffic holds it during every scenario but a conntrack-flood
// that lowers the limit; tests that make many connections outside Traffic
// hold it too, so that another test's lowered limit cannot drop them.
func HoldConntrackMax(cfg *Config) (release func(), err error) {
	_ = cfg // the lock is the machine's, whatever the lab's state dir
	return flockFile(conntrackMaxLockPath, unix.LOCK_SH)
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(path string) (unlock func(), err error) {
	return flockFile(path, unix.LOCK_EX)
}

// flockFile takes a flock of kind how (LOCK_SH, LOCK_EX) on path, waiting
// for conflicting holders.
func flockFile(path string, how int) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
