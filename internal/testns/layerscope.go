package testns

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binPath string
	binErr  string
)

// LayerscopeBinary builds the static layerscope binary (CGO_ENABLED=0, as
// make build and make image do) once per test process, with the version
// "test" and the revision "test", and returns its path. The directory is
// left in the system's temporary directory for the process's other tests;
// RemoveLayerscopeBinary deletes it (call it from TestMain).
func LayerscopeBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "layerscope-bin-")
		if err != nil {
			binErr = err.Error()
			return
		}
		binPath = filepath.Join(dir, "layerscope")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test -X main.revision=test",
			"-o", binPath, "github.com/layerscope/layerscope/cmd/layerscope")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = err.Error() + ": " + string(out)
		}
	})
	if binErr != "" {
		t.Fatalf("go build ./cmd/layerscope: %s", binErr)
	}
	return binPath
}

// RemoveLayerscopeBinary deletes the binary LayerscopeBinary built, if any.
func RemoveLayerscopeBinary() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}
