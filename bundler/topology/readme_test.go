package topology

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// TestReadmeExample keeps the infra repo shown in README.md honest: its
// topology.yaml and pf template load and render for both hosts, with the
// secret the README says `bundler check` lists.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(first string) []byte {
		t.Helper()
		re := regexp.MustCompile("(?s)```[a-z]*\n" + regexp.QuoteMeta(first) + "\n(.*?)```")
		m := re.FindSubmatch(readme)
		if m == nil {
			t.Fatalf("README.md has no code block starting %q", first)
		}
		return m[1]
	}
	fsys := fstest.MapFS{
		TopologyFile:             {Data: block("# topology.yaml")},
		"templates/pf.conf.tmpl": {Data: block("# templates/pf.conf.tmpl")},
	}
	r, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"serverA", "serverB"} {
		hr, err := r.Render(h)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(hr.Secrets, " "), "/jails/pg_j/etc/spiped.key") {
			t.Errorf("%s: secrets %v", h, hr.Secrets)
		}
		rc := hr.File("/jails/pg_j/etc/rc.conf")
		if rc == nil || !strings.Contains(string(rc.Content), `spiped_pipe_PGC_target=`) {
			t.Errorf("%s: pg_j rc.conf without the PGC pipe: %+v", h, rc)
		}
	}
}
