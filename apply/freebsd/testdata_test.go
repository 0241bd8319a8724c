package freebsd

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestTestdataNamesSources: every recorded output is listed in
// testdata/README.md with the FreeBSD source file and function that print
// it, and the table lists no file that does not exist.
func TestTestdataNamesSources(t *testing.T) {
	readme, err := os.ReadFile("testdata/README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	row := regexp.MustCompile("^\\| ((?:`[^`]+`(?:, )?)+) \\| .* \\| (.+) \\|$")
	for _, ln := range strings.Split(string(readme), "\n") {
		m := row.FindStringSubmatch(ln)
		if m == nil {
			continue
		}
		// A source names a path and a function, e.g. "usr.sbin/jls/jls.c: `main`".
		if !regexp.MustCompile(`[a-z.]+/[\w./]+: `).MatchString(m[2]) {
			t.Errorf("README row for %s names no source file and function: %q", m[1], m[2])
		}
		for _, f := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(m[1], -1) {
			listed[f[1]] = true
		}
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		if e.Name() == "README.md" {
			continue
		}
		have[e.Name()] = true
		if !listed[e.Name()] {
			t.Errorf("testdata/%s is not in README.md's source table", e.Name())
		}
	}
	for f := range listed {
		if !have[f] {
			t.Errorf("README.md lists %s, which is not in testdata", f)
		}
	}
}
