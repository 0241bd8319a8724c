package pf

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/seeds")

// TestSeedsGolden compares the normalized output of each seed with its
// golden file (NAME.nv); go test -run SeedsGolden -update rewrites them.
func TestSeedsGolden(t *testing.T) {
	confs, err := filepath.Glob(filepath.Join("testdata", "seeds", "*.conf"))
	if err != nil || len(confs) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, conf := range confs {
		name := filepath.Base(conf)
		t.Run(name, func(t *testing.T) {
			rs, err := Parse(name, readSeed(t, name), seedOptions())
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(conf, ".conf") + ".nv"
			got := rs.Normalized()
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s:\n%s", name, golden, got)
			}
			// pfctl's selfpf property: the output parses to itself.
			again, err := Parse(name+".nv", []byte(got), seedOptions())
			if err != nil {
				t.Fatalf("normalized output rejected:\n%v", err)
			}
			if again.Normalized() != got {
				t.Errorf("normalized output is not a fixed point:\n%s", again.Normalized())
			}
		})
	}
}
