package agent

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyVersions pins what SECURITY.md requires of the modules
// the agent is built with (go list -m, the build's own module graph):
// go-git ≥ v5.19.2 (CVE-2026-71557, ref names written outside refs/) and
// sigstore v1.10.x (v1.11 needs a newer Go).
func TestDependencyVersions(t *testing.T) {
	version := func(mod string) (v string, maj, min, patch int) {
		out, err := exec.Command("go", "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", mod).Output()
		if err != nil {
			t.Fatalf("go list -m %s: %v", mod, err)
		}
		v = strings.TrimSpace(string(out))
		fmt.Sscanf(v, "v%d.%d.%d", &maj, &min, &patch)
		return
	}
	if v, maj, min, patch := version("github.com/go-git/go-git/v5"); maj != 5 || min < 19 || (min == 19 && patch < 2) {
		t.Errorf("go-git %s: want v5.19.2 or later", v)
	}
	if v, maj, min, _ := version("github.com/sigstore/sigstore"); maj != 1 || min != 10 {
		t.Errorf("sigstore %s: want v1.10.x", v)
	}
}
