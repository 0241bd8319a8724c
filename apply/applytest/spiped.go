package applytest

import (
	"os/exec"
	"testing"
)

// NeedSpiped fails t unless spiped is on PATH: the sim runs real spiped
// processes for the tunnels. ./test.sh installs it, so a missing spiped is
// a broken test machine, never a reason to skip.
func NeedSpiped(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("spiped"); err != nil {
		t.Fatalf("spiped is not on PATH: the sim runs real spiped processes; ./test.sh installs it (apt-get install spiped): %v", err)
	}
}
