package flowtable

import (
	"runtime"
	"syscall"
	"testing"
)

// cpuTimer reports the CPU time of the benchmark's thread per operation as
// "cpu-ns/op", next to the wall-clock ns/op, so runs on a busy machine
// still show what an operation costs when it has a core to itself.
type cpuTimer struct {
	b     *testing.B
	start int64
}

func startCPU(b *testing.B) *cpuTimer {
	runtime.LockOSThread()
	b.ResetTimer()
	return &cpuTimer{b: b, start: threadCPU()}
}

func (c *cpuTimer) stop() {
	used := threadCPU() - c.start
	runtime.UnlockOSThread()
	c.b.ReportMetric(float64(used)/float64(c.b.N), "cpu-ns/op")
}

func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
