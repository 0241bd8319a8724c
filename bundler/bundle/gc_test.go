package bundle

import (
	"os"
	"runtime/debug"
	"testing"
)

// gcPercent reads the GC target without changing it for long.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestBatchGC(t *testing.T) {
	t.Setenv("GOGC", "") // restored at the end
	os.Unsetenv("GOGC")
	before := gcPercent()
	restore := BatchGC()
	if got := gcPercent(); got != BatchGCPercent {
		t.Errorf("during a build: GC percent %d, want %d", got, BatchGCPercent)
	}
	restore()
	if got := gcPercent(); got != before {
		t.Errorf("after a build: GC percent %d, want it back at %d", got, before)
	}

	// The operator's GOGC wins.
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	defer debug.SetGCPercent(before)
	restore = BatchGC()
	if got := gcPercent(); got != 50 {
		t.Errorf("with GOGC=50: GC percent %d during a build, want 50", got)
	}
	restore()
}
