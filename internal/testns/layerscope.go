package testns

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// LayerscopeBinary builds the static layerscope binary (CGO_ENABLED=0, as
// make build and make image do) into the test's temporary directory, with
// the version "test" and the revision "test", and returns its path. The
// Go build cache makes every build after the first cheap.
func LayerscopeBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "layerscope")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test -X main.revision=test",
		"-o", bin, "github.com/layerscope/layerscope/cmd/layerscope")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/layerscope: %v\n%s", err, out)
	}
	return bin
}
