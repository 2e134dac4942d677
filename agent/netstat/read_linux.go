package netstat

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/layerscope/layerscope/internal/nsenter"
)

// Files read inside the namespace. thread-self follows the calling thread's
// namespace; /proc/net would follow the main thread's.
const (
	snmpPath  = "/proc/thread-self/net/snmp"
	snmp6Path = "/proc/thread-self/net/snmp6"
)

// bufs holds read buffers; both files are a few KiB.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// Read returns the counters of the network namespace ns (nil: the calling
// thread's). A namespace without /proc/net/snmp6 yields IPv6Present false and
// no error. On ErrFormat the counters that parsed are returned with it.
func Read(ns *nsenter.NS) (Counters, error) {
	var c Counters
	err := ns.Do(func() error { return readFiles(&c, snmpPath, snmp6Path) })
	return c, err
}

func readFiles(c *Counters, snmp, snmp6 string) error {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	b, err := readFile(snmp, (*bp)[:0])
	*bp = b[:0]
	if err != nil {
		return err
	}
	err4 := ParseSNMP(b, &c.IPv4)
	b, err = readFile(snmp6, b[:0])
	*bp = b[:0]
	if errors.Is(err, unix.ENOENT) {
		return err4
	}
	if err != nil {
		return errors.Join(err4, err)
	}
	c.IPv6Present = true
	return errors.Join(err4, ParseSNMP6(b, &c.IPv6))
}

// readFile appends the whole content of path to b. procfs files report size
// 0, so it reads until end of file, growing b as needed.
func readFile(path string, b []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return b, &OpError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return b, &OpError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
