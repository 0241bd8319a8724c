package lint

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadHost reads a host's rendered tree (testdata/NAME) as Host's map.
func loadHost(t *testing.T, name string) map[string][]byte {
	t.Helper()
	root := filepath.Join("testdata", name)
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files["/"+filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func strs(fs []Finding) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return s
}

func TestHostClean(t *testing.T) {
	files := loadHost(t, "uirig")
	if got := Host(files, Options{TunnelPorts: []int{5433, 5434}}); len(got) != 0 {
		t.Errorf("findings on the uirig host:\n%s", strings.Join(strs(got), "\n"))
	}
	got := strs(Host(files, Options{TunnelPorts: []int{5435}}))
	want := []string{"/etc/pf.conf: warning: no pass rule covers tunnel port 5435"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPfLints(t *testing.T) {
	files := map[string][]byte{
		"/etc/pf.conf": []byte(`unused = "x"
used = "em0"
table <unused_t> persist
table <used_t> persist
pass in on $used proto tcp to port 22
block in quick from <used_t>
block quick all
pass in proto tcp to port 80
block out all
`),
	}
	got := strs(Host(files, Options{TunnelPorts: []int{22, 51820}}))
	want := []string{
		"/etc/pf.conf: warning: no pass rule covers tunnel port 51820",
		"/etc/pf.conf:1: warning: macro unused is defined but never used",
		"/etc/pf.conf:3: warning: table <unused_t> is defined but never used",
		`/etc/pf.conf:5: warning: pass rule is overridden by the later catch-all "block drop quick all" at /etc/pf.conf:7 (last match wins: add quick or move the pass after it)`,
		`/etc/pf.conf:8: warning: rule can never match: "block drop quick all" at /etc/pf.conf:7 blocks every packet first`,
		`/etc/pf.conf:9: warning: rule can never match: "block drop quick all" at /etc/pf.conf:7 blocks every packet first`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDirectionalCatchall(t *testing.T) {
	// block in quick all does not hide out rules; block out all does not
	// override a pass in.
	files := map[string][]byte{"/etc/pf.conf": []byte("block in quick all\npass out proto tcp to port 22\npass in proto udp to port 53\nblock out all\npass in proto tcp\n")}
	got := strs(Host(files, Options{}))
	want := []string{
		`/etc/pf.conf:2: warning: pass rule is overridden by the later catch-all "block drop out all" at /etc/pf.conf:4 (last match wins: add quick or move the pass after it)`,
		`/etc/pf.conf:3: warning: rule can never match: "block drop in quick all" at /etc/pf.conf:1 blocks every packet first`,
		`/etc/pf.conf:5: warning: rule can never match: "block drop in quick all" at /etc/pf.conf:1 blocks every packet first`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHostErrors(t *testing.T) {
	files := loadHost(t, "uirig")
	files["/etc/pf.conf"] = append(files["/etc/pf.conf"], []byte("pass in on xnic proto tcp to port sshh\n")...)
	delete(files, "/etc/ips_stripe")
	files["/etc/jail.conf.d/extra.conf"] = []byte("extra_j {\n\tpath = /x\n}\n")
	files["/etc/jail.conf.d/lone.conf"] = []byte("lone_j { path = \"/jails/$nope\"; }\n")
	files["/jails/pg_j/etc/rc.conf"] = []byte("hostname=\"pg_j\npostgresql_enable=YES\n")
	files["/etc/rc.conf.d/bad"] = []byte("jail-enable=YES\n")
	got := strs(Host(files, Options{}))
	want := []string{
		`/etc/pf.conf:16: error: cannot load "/etc/ips_stripe": No such file or directory`,
		"/etc/pf.conf:69: error: unknown port sshh",
		`/etc/jail.conf.d/extra.conf:2: error: syntax error: missing ';' after parameter "path"`,
		`/etc/jail.conf.d/lone.conf:1: error: jail lone_j: unknown variable "nope"`,
		`/etc/rc.conf.d/bad:1: error: invalid variable name "jail-enable"`,
		`/jails/pg_j/etc/rc.conf:1: error: unbalanced " in value of hostname`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTunnelPortRdrPass(t *testing.T) {
	files := map[string][]byte{"/etc/pf.conf": []byte("rdr pass on em0 proto udp to port 51820 -> 10.0.0.2\nblock all\n")}
	if got := Host(files, Options{TunnelPorts: []int{51820}}); len(got) != 0 {
		t.Errorf("rdr pass does not count: %v", strs(got))
	}
	got := strs(Host(files, Options{TunnelPorts: []int{51821}}))
	if len(got) != 1 || got[0] != "/etc/pf.conf: warning: no pass rule covers tunnel port 51821" {
		t.Errorf("got %q", got)
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{File: "/etc/pf.conf", Line: 3, Severity: Error, Msg: "syntax error"}
	if got := f.String(); got != "/etc/pf.conf:3: error: syntax error" {
		t.Errorf("String() = %q", got)
	}
}

// TestStaleTunnelPort: a pass rule naming a tunnel port the topology
// defines for other hosts only is reported; the host's own ports are not.
func TestStaleTunnelPort(t *testing.T) {
	files := map[string][]byte{
		"/etc/pf.conf": []byte(`block all
pass in on inic proto tcp to port 5433
pass in on inic proto tcp to port { 5436 22 }
pass in on wg0 proto udp to port 51820
`),
	}
	got := strs(Host(files, Options{TunnelPorts: []int{5433, 51820}, FleetTunnelPorts: []int{5433, 5436, 51820}}))
	want := []string{"/etc/pf.conf:3: warning: pass rule names tunnel port 5436, which no tunnel of this host uses (the topology defines it for other hosts)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
