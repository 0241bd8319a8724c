package layout

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const uirigPF = `# uirig-style pf.conf
xnic = "vtnet0"
table <martians> persist file "/etc/ips_martians"
table <blocklist> persist \
	file "/etc/ips_blocklist" file "/etc/ips_extra"
table <ratelimit> persist
table <lan> { 10.0.2.0/24, # jails
	10.0.3.0/24 }
include "/etc/pf.d/tunnels.conf"
pass in on $xnic proto tcp to port 22 # table <fake> file "/nope"
`

func TestTableFiles(t *testing.T) {
	for _, tc := range []struct {
		table string
		want  []string
		ok    bool
	}{
		{"martians", []string{"/etc/ips_martians"}, true},
		{"blocklist", []string{"/etc/ips_blocklist", "/etc/ips_extra"}, true},
		{"ratelimit", nil, true},
		{"lan", nil, true},
		{"fake", nil, false},
	} {
		got, ok := TableFiles([]byte(uirigPF), tc.table)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("TableFiles(%s) = %q, %v; want %q, %v", tc.table, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStatementsLines(t *testing.T) {
	st := Statements([]byte(uirigPF))
	var lines []int
	for _, s := range st {
		lines = append(lines, s.Line)
	}
	want := []int{2, 3, 4, 6, 7, 9, 10}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("statement lines = %v, want %v (%+v)", lines, want, st)
	}
	if !strings.Contains(st[4].Text, "10.0.3.0/24 }") {
		t.Errorf("brace statement not joined: %q", st[4].Text)
	}
}

func TestIncludesAndRewrite(t *testing.T) {
	if got := Includes([]byte(uirigPF)); !reflect.DeepEqual(got, []string{"/etc/pf.d/tunnels.conf"}) {
		t.Fatalf("Includes = %q", got)
	}
	out := RewritePaths([]byte(uirigPF), func(kind, p string) (string, bool) {
		if p == "/etc/ips_extra" {
			return "", false
		}
		return "/stage" + p, true
	})
	for _, want := range []string{`file "/stage/etc/ips_martians"`, `file "/etc/ips_extra"`, `include "/stage/etc/pf.d/tunnels.conf"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rewritten pf.conf lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(string(out), "\n") != strings.Count(uirigPF, "\n") {
		t.Error("rewrite changed the line count")
	}
}

func TestParseTableFile(t *testing.T) {
	good := "; comment1\n# comment2\n1.0.0.1/32 ; comment1\n2.0.0.2/32 # comment2\n!192.0.2.1 host.example.org\nfe80::1 10.0.0.0/8\n"
	got, err := ParseTableFile("/etc/ips_x", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1.0.0.1/32", "2.0.0.2/32", "!192.0.2.1", "host.example.org", "fe80::1", "10.0.0.0/8"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("entries = %q, want %q", got, want)
	}
	for _, bad := range []string{"10.0.0.300\n", "ok.example\n10.0.0.0/99\n", "a\"b\n", "1.2.3.4/x"} {
		_, err := ParseTableFile("/etc/ips_x", []byte(bad))
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != "/etc/ips_x" || fe.Line == 0 {
			t.Errorf("ParseTableFile(%q) = %v, want a FileError with a line", bad, err)
		}
	}
}

func TestIsRCFile(t *testing.T) {
	for p, want := range map[string]bool{
		"/etc/rc.conf":                          true,
		"/etc/rc.conf.local":                    true,
		"/jails/pg_j/etc/rc.conf":               true,
		"/etc/rc.conf.d/spiped":                 true,
		"/usr/local/etc/rc.d/node":              true,
		"/jails/node_j/usr/local/etc/rc.d/node": true,
		"/etc/pf.conf":                          false,
		"/etc/rc.conf.d/.hidden":                false,
		"/etc/jail.conf":                        false,
	} {
		if got := IsRCFile(p); got != want {
			t.Errorf("IsRCFile(%s) = %v", p, got)
		}
	}
	for p, want := range map[string]bool{"/etc/jail.conf": true, "/etc/jail.pg_j.conf": true, "/etc/jail.conf.d/pg_j.conf": true, "/jails/x/etc/jail.conf": false, "/etc/pf.conf": false} {
		if got := IsJailConf(p); got != want {
			t.Errorf("IsJailConf(%s) = %v", p, got)
		}
	}
}

func FuzzPFConfFacts(f *testing.F) {
	f.Add([]byte(uirigPF))
	f.Add([]byte("table <a> file \"x\" \\\n{ 1.2.3.4 }\n"))
	f.Add([]byte("include \"/a\"\n\"unterminated\n{{}}}\n#x\\\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		st := Statements(src)
		n := strings.Count(string(src), "\n") + 1
		for _, s := range st {
			if s.Line < 1 || s.Line > n {
				t.Fatalf("statement line %d outside 1..%d", s.Line, n)
			}
		}
		TableFiles(src, "a")
		Includes(src)
		out := RewritePaths(src, func(_, p string) (string, bool) { return "/s" + p, true })
		if strings.Count(string(out), "\n") != strings.Count(string(src), "\n") {
			t.Fatal("rewrite changed the line count")
		}
	})
}

func FuzzParseTableFile(f *testing.F) {
	f.Add([]byte("; c\n1.0.0.1/32 ; c\n!10.0.0.0/8 host.example\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := ParseTableFile("f", src)
		if err == nil {
			for _, e := range got {
				if strings.ContainsAny(e, " \t\n#;") {
					t.Fatalf("entry %q has separators", e)
				}
			}
		}
	})
}

func TestTables(t *testing.T) {
	got := Tables([]byte(uirigPF))
	var names []string
	for _, tb := range got {
		names = append(names, tb.Name)
	}
	if want := []string{"martians", "blocklist", "ratelimit", "lan"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("tables = %q, want %q", names, want)
	}
	if got[1].Line != 4 || len(got[1].Files) != 2 {
		t.Errorf("blocklist = %+v", got[1])
	}
	if IsRCConf("/usr/local/etc/rc.d/node") || !IsRCConf("/jails/pg_j/etc/rc.conf") {
		t.Error("IsRCConf confuses rc.d scripts and rc.conf")
	}
}

func TestTableFlags(t *testing.T) {
	src := `table <a> const file "/etc/a"
table <b> persist { 10.0.0.1 } file "/etc/b"
table <c> {} file "/etc/c"
table <d> file "/etc/d const"
`
	want := map[string][3]bool{ // const, persist, inline
		"a": {true, false, false},
		"b": {false, true, true},
		"c": {false, false, false},
		"d": {false, false, false},
	}
	for _, tb := range Tables([]byte(src)) {
		if got := [3]bool{tb.Const, tb.Persist, tb.Inline}; got != want[tb.Name] {
			t.Errorf("<%s> const, persist, inline = %v, want %v", tb.Name, got, want[tb.Name])
		}
	}
	files := map[string]string{
		"/etc/pf.rules":  "table <x> file \"/etc/x1\"\ninclude \"/etc/more.conf\"\n",
		"/etc/more.conf": "table <x> const file \"/etc/x2\"\n",
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no " + p)
	}
	x, err := TableIn(read, "/etc/pf.rules", "x")
	if err != nil {
		t.Fatal(err)
	}
	if x.File != "/etc/pf.rules" || x.Line != 1 || !x.Const || !reflect.DeepEqual(x.Files, []string{"/etc/x1", "/etc/x2"}) {
		t.Errorf("TableIn = %+v", x)
	}
}
