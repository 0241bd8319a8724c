package jailconf

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseSeed(t *testing.T) {
	src, err := os.ReadFile("testdata/uirig.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("jail.conf", src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Names(), []string{"nginx_j", "node_j", "pg_j"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if len(c.Global) != 8 {
		t.Errorf("globals: %d, want 8", len(c.Global))
	}
	p, err := c.Resolve("pg_j")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"path":           {"/jails/pg_j"},
		"host.hostname":  {"pg_j.uidrafter.lan"},
		"devfs_ruleset":  {"4"},
		"mount.devfs":    {},
		"vnet":           {},
		"exec.clean":     {},
		"exec.start":     {"/bin/sh /etc/rc"},
		"exec.stop":      {"/bin/sh /etc/rc.shutdown"},
		"vnet.interface": {"pg_b", "node_pg_b"},
		"sysvshm":        {"new"},
		"exec.poststart": {"echo lit $name"},
		"name":           {"pg_j"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Resolve(pg_j):\n got %v\nwant %v", p, want)
	}
	if c.Jail("nope") != nil {
		t.Error("Jail(nope) != nil")
	}
	if _, err := c.Resolve("nope"); err == nil {
		t.Error("Resolve(nope) succeeded")
	}
}

func TestResolveOrderAndAppend(t *testing.T) {
	src := `
* { allow.raw_sockets; ip4.addr = 10.0.0.1; }
web { ip4.addr += 10.0.0.2; securelevel = 2; }
web.* { securelevel = 3; }
"web.a" { path = ${root}/a; $root = /r; }
`
	c, err := Parse("j.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Resolve("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := p["ip4.addr"]; !reflect.DeepEqual(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("ip4.addr = %v", got)
	}
	if got := p["securelevel"]; !reflect.DeepEqual(got, []string{"2"}) {
		t.Errorf("web securelevel = %v", got)
	}
	p, err = c.Resolve("web.a")
	if err != nil {
		t.Fatal(err)
	}
	if got := p["securelevel"]; !reflect.DeepEqual(got, []string{"3"}) {
		t.Errorf("web.a securelevel = %v", got)
	}
	if got := p["path"]; !reflect.DeepEqual(got, []string{"/r/a"}) {
		t.Errorf("web.a path = %v", got)
	}
	if _, ok := p["$root"]; ok {
		t.Error("user variable returned as a parameter")
	}
}

func TestResolveUnknownVariable(t *testing.T) {
	c, err := Parse("j.conf", []byte("a {\n path = \"/j/$nope\";\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve("a")
	var re *ResolveError
	if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(err.Error(), `unknown variable "nope"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"missing semicolon", "a {\n path = /x\n host.hostname = a;\n}\n", "j.conf:2: syntax error: missing ';' after parameter \"path\""},
		{"duplicate jail", "a { persist; }\nb { persist; }\na { persist; }\n", "j.conf:3: jail \"a\" defined twice (first at j.conf:1)"},
		{"unclosed block", "a {\n persist;\n", "j.conf:1: missing '}' for jail \"a\""},
		{"stray brace", "persist;\n}\n", "j.conf:2: syntax error: unexpected '}'"},
		{"nested block", "a {\n b { persist; }\n}\n", "j.conf:2: syntax error: jail \"b\" inside jail \"a\""},
		{"unterminated string", "a {\n path = \"/x;\n}\n", "j.conf:2: unterminated string"},
		{"unterminated comment", "a { persist; }\n/* x\n", "j.conf:2: unterminated comment"},
		{"bad name", "a b { persist; }\n", "j.conf:1: syntax error: missing ';' after parameter \"a\""},
		{"missing value", "a = ;\n", "j.conf:1: syntax error: missing value for \"a\""},
		{"unterminated variable", "a = \"${x\";\n", "j.conf:1: unterminated variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("j.conf", []byte(tt.src))
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("err = %v, want an ErrorList", err)
			}
			if el[0].Error() != tt.want {
				t.Errorf("first error %q, want %q", el[0].Error(), tt.want)
			}
		})
	}
}

func TestInclude(t *testing.T) {
	files := map[string][]byte{
		"/etc/jail.conf.d/a.conf": []byte("a { persist; }\n"),
		"/etc/jail.conf.d/b.conf": []byte("b {\n persist\n}\n"),
	}
	opts := Options{
		ReadFile: func(n string) ([]byte, error) {
			if b, ok := files[n]; ok {
				return b, nil
			}
			return nil, os.ErrNotExist
		},
		Glob: func(p string) ([]string, error) {
			if p == "/etc/jail.conf.d/*.conf" {
				return []string{"/etc/jail.conf.d/a.conf", "/etc/jail.conf.d/b.conf"}, nil
			}
			return nil, nil
		},
	}
	c, err := ParseOptions("/etc/jail.conf", []byte("path = /j;\n.include \"/etc/jail.conf.d/*.conf\";\n.include \"/missing\";\n"), opts)
	var el ErrorList
	if !errors.As(err, &el) || len(el) != 2 {
		t.Fatalf("err = %v, want 2 errors", err)
	}
	if el[0].Error() != "/etc/jail.conf.d/b.conf:2: syntax error: missing ';' after parameter \"persist\"" && !strings.HasPrefix(el[0].Error(), "/etc/jail.conf.d/b.conf:") {
		t.Errorf("include error = %q", el[0])
	}
	if !strings.HasPrefix(el[1].Error(), "/etc/jail.conf:3: include \"/missing\"") {
		t.Errorf("missing include error = %q", el[1])
	}
	if c.Jail("a") == nil || c.Jail("a").File != "/etc/jail.conf.d/a.conf" {
		t.Errorf("jail a not read from the include")
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/uirig.conf")
	f.Add(seed)
	f.Add([]byte("a { x = \"$y\" '${z}'; y += 1, 2; }\n* { persist; }\n"))
	f.Add([]byte("/* x */ // y\n# z\n$v = \"${v}\"; a { p = $v; }"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.conf", src)
		if err != nil {
			return
		}
		for _, n := range c.Names() {
			c.Resolve(n) //nolint:errcheck // only must not panic or hang
		}
		// Check's errors name this file and one of its lines
		lines := strings.Count(string(src), "\n") + 1
		for _, e := range c.Check(CheckOptions{Shell: func(string) error { return nil }}) {
			if e.File != "f.conf" || e.Line < 1 || e.Line > lines {
				t.Fatalf("check error outside the file: %v", e)
			}
		}
	})
}
