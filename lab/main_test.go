package lab

import (
	"os"
	"testing"

	"github.com/layerscope/layerscope/internal/testns"
)

// TestMain removes the layerscope binary the Kubernetes tests build for
// the lab's images.
func TestMain(m *testing.M) {
	code := m.Run()
	testns.RemoveLayerscopeBinary()
	os.Exit(code)
}
