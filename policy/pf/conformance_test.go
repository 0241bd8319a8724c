package pf

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConformanceTable keeps testdata/conformance.tsv (our status for
// each production and check of pfctl's parse.y) well formed: seven
// columns, known statuses and releases, tests that exist, and a counts
// line that matches the rows.
func TestConformanceTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "conformance.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{}
	srcs, _ := filepath.Glob("*_test.go")
	funcRE := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	for _, f := range srcs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range funcRE.FindAllSubmatch(b, -1) {
			tests[string(m[1])] = true
		}
	}
	counts := map[string]int{}
	var countsLine string
	header := true
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasPrefix(line, "# counts: ") {
			countsLine = strings.TrimPrefix(line, "# counts: ")
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			t.Errorf("conformance.tsv:%d: %d columns, want 7", i+1, len(f))
			continue
		}
		if header {
			header = false
			continue
		}
		switch f[4] {
		case "same", "stricter", "laxer", "missing", "unreviewed":
			counts[f[4]]++
		default:
			t.Errorf("conformance.tsv:%d: status %q", i+1, f[4])
		}
		switch f[3] {
		case "14", "15", "both":
		default:
			t.Errorf("conformance.tsv:%d: release %q", i+1, f[3])
		}
		if f[5] != "-" && !tests[f[5]] {
			t.Errorf("conformance.tsv:%d: test %s does not exist", i+1, f[5])
		}
		if f[4] == "same" && f[5] == "-" {
			t.Errorf("conformance.tsv:%d: a \"same\" row names no test", i+1)
		}
	}
	want := fmt.Sprintf("same=%d stricter=%d laxer=%d missing=%d unreviewed=%d",
		counts["same"], counts["stricter"], counts["laxer"], counts["missing"], counts["unreviewed"])
	if countsLine != want {
		t.Errorf("counts line %q, rows say %q", countsLine, want)
	}
	t.Logf("conformance: %s", want)
}
