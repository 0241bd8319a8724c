package freebsd

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// TestPrecheckUirigCommands pre-checks the real rendered uirig serverA
// bundle and asserts the exact commands a FreeBSD host would run, and that
// pfctl sees every staged table file.
func TestPrecheckUirigCommands(t *testing.T) {
	repo, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		t.Fatal(err)
	}
	hr, err := repo.Render("serverA")
	if err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(t.TempDir(), "staging")
	var files []verify.File
	var tables []string
	for _, f := range hr.Files {
		write(t, stage, f.Path, string(f.Content))
		files = append(files, verify.File{Path: f.Path, Unit: f.Unit})
		if strings.HasPrefix(f.Unit, "pf-table:") {
			tables = append(tables, f.Path)
		}
	}
	var calls []string
	var mu sync.Mutex // sh -n checks run together
	d := New(apply.DriverOptions{Root: "/"}, runFunc(func(argv []string) Result {
		mu.Lock()
		defer mu.Unlock()
		if argv[0] == "pfctl" {
			src, err := os.ReadFile(argv[3])
			if err != nil {
				t.Fatal(err)
			}
			for _, tf := range tables {
				if !strings.Contains(string(src), `file "`+filepath.Join(stage, tf)+`"`) {
					t.Errorf("pfctl would read %s from the host, not the stage", tf)
				}
			}
			calls = append(calls, strings.ReplaceAll(strings.Join(argv, " "), stage, "STAGE"))
			return Result{}
		}
		if argv[0] == "jail" && argv[2] == filepath.Join(stage, "etc/jail.conf") {
			// jail.conf .includes the per-jail files: checked with the
			// staged ones, its staged copy rewritten in place.
			src, err := os.ReadFile(argv[2])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(src), `.include "`+filepath.Join(stage, "etc/jail.conf.d")+`/`) {
				t.Errorf("jail.conf checked would read the host's jail.conf.d:\n%s", src)
			}
		}
		calls = append(calls, strings.ReplaceAll(strings.Join(argv, " "), stage, "STAGE"))
		return Result{}
	}))
	if err := d.Precheck(context.Background(), stage, files); err != nil {
		t.Fatal(err)
	}
	sort.Strings(calls)
	want := []string{
		"jail -f STAGE/etc/jail.conf -e ,",
		"jail -f STAGE/etc/jail.conf.d/nginx_j.conf -e ,",
		"jail -f STAGE/etc/jail.conf.d/node_j.conf -e ,",
		"jail -f STAGE/etc/jail.conf.d/pg_j.conf -e ,",
		"kldload -n pf",
		"pfctl -n -f STAGE/etc/pf.conf", // rewritten in place
		// The rc.conf files are plain assignments: no sh -n needed.
		"sh -n STAGE/jails/node_j/usr/local/etc/rc.d/node", // node_j's rc.d script
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
}
