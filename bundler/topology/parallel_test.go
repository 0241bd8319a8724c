package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

// withProcs runs fn with GOMAXPROCS set to n (hosts render on that many
// cores).
func withProcs(t *testing.T, n int, fn func()) {
	t.Helper()
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	fn()
}

// renderBytes is everything a host's render carries, as bytes.
func renderBytes(t *testing.T, r *Repo, host string) []byte {
	t.Helper()
	hr, err := r.Render(host)
	if err != nil {
		t.Fatal(err)
	}
	b := summary(hr)
	for _, f := range hr.Files {
		b = fmt.Appendf(b, "== %s\n%s", f.Path, f.Content)
	}
	desc, err := json.Marshal(hr)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, desc...)
}

// TestRenderSameInParallel: hosts rendered on many cores get the bytes a
// render on one core gets (run under -race, it also shows that rendering
// shares nothing it writes).
func TestRenderSameInParallel(t *testing.T) {
	fsys := generated(120)
	var one *Repo
	withProcs(t, 1, func() {
		var err error
		if one, err = LoadFS(fsys); err != nil {
			t.Fatal(err)
		}
	})
	for _, procs := range []int{2, 8} {
		withProcs(t, procs, func() {
			many, err := LoadFS(fsys)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range one.Hosts() {
				if !bytes.Equal(renderBytes(t, one, h), renderBytes(t, many, h)) {
					t.Fatalf("GOMAXPROCS %d: host %s renders differently than on one core", procs, h)
				}
			}
		})
	}
}

// brokenFleet is generated(n) where rendering fails in several ways on
// many hosts: a template reads a variable only some hosts set, a file
// target is relative, a target is rendered twice, a template is missing.
func brokenFleet(n int) fstest.MapFS {
	fsys := generated(n)
	top := string(fsys[TopologyFile].Data)
	for i := range n {
		head := fmt.Sprintf("  h%04d:\n    role: node\n", i)
		var extra strings.Builder
		if i%2 == 0 {
			extra.WriteString("    vars: {port: \"8080\"}\n")
		}
		switch i % 5 {
		case 1:
			extra.WriteString("    files: [{target: etc/relative.conf, source: nginx.tmpl}]\n")
		case 2:
			extra.WriteString("    files: [{target: /jails/web_j/usr/local/etc/nginx/nginx.conf, source: nginx.tmpl}]\n")
		case 3:
			extra.WriteString("    files: [{target: /etc/missing.conf, template: missing.tmpl}]\n")
		}
		top = strings.Replace(top, head, head+extra.String(), 1)
	}
	fsys[TopologyFile] = &fstest.MapFile{Data: []byte(top)}
	fsys["nginx.tmpl"] = &fstest.MapFile{Data: []byte("server { listen {{ .Addr \"web_b\" }}:{{ .Vars.port }}; }\n")}
	return fsys
}

// TestProblemsSameInParallel: a fleet with many broken hosts gives the
// same error text on one core and on many, run after run.
func TestProblemsSameInParallel(t *testing.T) {
	fsys := brokenFleet(120)
	load := func() string {
		_, err := LoadFS(fsys)
		if err == nil {
			t.Fatal("broken fleet loads")
		}
		return err.Error()
	}
	var want string
	withProcs(t, 1, func() { want = load() })
	for _, frag := range []string{
		`map has no entry for key "port"`,
		`"etc/relative.conf": not absolute`,
		"target /jails/web_j/usr/local/etc/nginx/nginx.conf rendered twice",
		`template source "missing.tmpl"`,
		"and 56 more", // 60 odd hosts miss the variable
	} {
		if !strings.Contains(want, frag) {
			t.Fatalf("the problems do not mention %q:\n%s", frag, want)
		}
	}
	for _, procs := range []int{2, 8} {
		withProcs(t, procs, func() {
			for range 3 {
				if got := load(); got != want {
					t.Fatalf("GOMAXPROCS %d: problems differ from one core's:\n%s\n--- one core:\n%s", procs, got, want)
				}
			}
		})
	}
}
