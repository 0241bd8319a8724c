package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
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

// TestOptionsRendered: LoadFSWith hands each host's render on as it is
// made, once per host, the very render Rendered returns; a host whose
// render has problems is not handed on, and neither is any host once the
// repo is known to be broken before rendering. The repo then still fails
// to load, with the same problems as without the option.
func TestOptionsRendered(t *testing.T) {
	collect := func(fsys fstest.MapFS) (*Repo, error, map[string]*HostRender) {
		var mu sync.Mutex
		got := map[string]*HostRender{}
		repo, err := LoadFSWith(fsys, Options{Rendered: func(hr *HostRender) {
			mu.Lock()
			defer mu.Unlock()
			if got[hr.Host] != nil {
				t.Errorf("host %s handed on twice", hr.Host)
			}
			got[hr.Host] = hr
		}})
		return repo, err, got
	}
	t.Run("good", func(t *testing.T) {
		repo, err, got := collect(generated(40))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(repo.Hosts()) {
			t.Fatalf("%d renders handed on for %d hosts", len(got), len(repo.Hosts()))
		}
		for _, h := range repo.Hosts() {
			want, err := repo.Rendered(h)
			if err != nil {
				t.Fatal(err)
			}
			if got[h] != want {
				t.Fatalf("host %s: the render handed on is not the one Rendered returns", h)
			}
		}
	})
	t.Run("some hosts fail to render", func(t *testing.T) {
		// Odd hosts miss the variable their template reads; hosts 1 mod
		// 4 also have a relative file target. The others render.
		fsys := generated(20)
		top := string(fsys[TopologyFile].Data)
		for i := range 20 {
			head := fmt.Sprintf("  h%04d:\n    role: node\n", i)
			extra := ""
			if i%2 == 0 {
				extra = "    vars: {port: \"8080\"}\n"
			}
			if i%4 == 1 {
				extra += "    files: [{target: etc/relative.conf, source: motd}]\n"
			}
			top = strings.Replace(top, head, head+extra, 1)
		}
		fsys[TopologyFile] = &fstest.MapFile{Data: []byte(top)}
		fsys["nginx.tmpl"] = &fstest.MapFile{Data: []byte("listen {{ .Vars.port }};\n")}
		fsys["motd"] = &fstest.MapFile{Data: []byte("hello\n")}
		_, plain := LoadFS(fsys)
		_, err, got := collect(fsys)
		if err == nil || plain == nil || err.Error() != plain.Error() {
			t.Fatalf("problems with the option:\n%v\nwithout:\n%v", err, plain)
		}
		for _, frag := range []string{`map has no entry for key "port"`, `"etc/relative.conf": not absolute`} {
			if !strings.Contains(err.Error(), frag) {
				t.Fatalf("the problems do not mention %q:\n%v", frag, err)
			}
		}
		for i := range 20 {
			name := fmt.Sprintf("h%04d", i)
			if ok := i%2 == 0; (got[name] != nil) != ok {
				t.Errorf("host %s: handed on %v, want %v", name, got[name] != nil, ok)
			}
		}
	})
	t.Run("broken before rendering", func(t *testing.T) {
		fsys := generated(10)
		top := strings.Replace(string(fsys[TopologyFile].Data), "    wave: 0m\n", "    wave: soon\n", 1)
		fsys[TopologyFile] = &fstest.MapFile{Data: []byte(top)}
		_, err, got := collect(fsys)
		if err == nil || !strings.Contains(err.Error(), `wave "soon"`) {
			t.Fatalf("err = %v, want the bad wave", err)
		}
		if len(got) != 0 {
			t.Fatalf("%d renders handed on from a repo known to be broken", len(got))
		}
	})
}
