package topology

import (
	"fmt"
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
	// The tunnel rules the README says serverA's template renders.
	const first = "pass in on inic proto tcp from { 10.0.56.41 } to 10.0.56.40 port 5434"
	rendered := first + "\n" + string(block(first))
	hrA, err := r.Render("serverA")
	if err != nil {
		t.Fatal(err)
	}
	pf := string(hrA.File("/etc/pf.conf").Content)
	for _, line := range strings.Split(strings.TrimSpace(rendered), "\n") {
		if !strings.Contains(pf, line+"\n") {
			t.Errorf("serverA pf.conf lacks the README's %q:\n%s", line, pf)
		}
	}
	// The role/host merge the README shows: serverA extends pg_j and the
	// admins table, serverB keeps the role's.
	for h, want := range map[string][2]bool{"serverA": {true, true}, "serverB": {false, false}} {
		hr, _ := r.Render(h)
		rc := string(hr.File("/jails/pg_j/etc/rc.conf").Content)
		if got := strings.Contains(rc, "pgbouncer_enable=\"YES\"") && strings.Contains(rc, "postgresql_enable=\"YES\""); got != want[0] {
			t.Errorf("%s pg_j rc.conf: pgbouncer added to the role's services = %v, want %v:\n%s", h, got, want[0], rc)
		}
		tbl := string(hr.File("/etc/pf/admins.table").Content)
		if got := tbl == "192.0.2.10\n192.0.2.11\n"; got != want[1] {
			if !want[1] && tbl == "192.0.2.10\n" {
				continue
			}
			t.Errorf("%s admins table %q", h, tbl)
		}
	}
	// The figures of the README's bundler check output.
	out := string(block("$ bundler check --repo ."))
	for _, h := range []string{"serverA", "serverB"} {
		hr, err := r.Render(h)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s: %d files, %d health checks, wave %s,", h, len(hr.Files), len(hr.Health), hr.Wave); !strings.Contains(out, want) {
			t.Errorf("README check output lacks %q:\n%s", want, out)
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
