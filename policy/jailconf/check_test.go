package jailconf

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// TestCheck: the values jail(8) refuses before creating a jail, each at
// the file and line of its definition.
func TestCheck(t *testing.T) {
	okShell := func(string) error { return nil }
	tests := []struct {
		name, src string
		want      string // first error, "" for none
	}{
		{"valid", "path = \"/jails/$name\";\nexec.clean;\nmount.devfs;\nweb {\n  vnet;\n  vnet.interface = e0b;\n  ip4.addr = \"em0|10.0.0.2/24\", 10.0.0.3;\n  ip6.addr = 2001:db8::2;\n  securelevel = 3;\n  allow.raw_sockets = true;\n  allow.nomount;\n  sysvshm = new;\n  persist = 1;\n}\n", ""},
		{"name redefined", "web {\n  path = /j;\n  name = other;\n}\n", "t.conf:3: jail web: cannot redefine parameter \"name\""},
		{"global name", "name = x;\nweb { path = /j; }\n", "t.conf:1: jail web: cannot redefine parameter \"name\""},
		{"jid twice", "web {\n  path = /j;\n  jid = 5;\n  jid = 6;\n}\n", "t.conf:4: jail web: cannot redefine parameter \"jid\""},
		{"numeric name sets jid", "5 {\n  path = /j;\n  jid = 6;\n}\n", "t.conf:3: jail 5: cannot redefine parameter \"jid\""},
		{"bad bool", "web {\n  path = /j;\n  mount.devfs = yes;\n}\n", "t.conf:3: jail web: mount.devfs: unknown boolean value \"yes\""},
		{"bad allow bool", "web {\n  path = /j;\n  allow.mount = on;\n}\n", "t.conf:3: jail web: allow.mount: unknown boolean value \"on\""},
		{"bad int", "web {\n  path = /j;\n  devfs_ruleset = four;\n}\n", "t.conf:3: jail web: devfs_ruleset: non-integer value \"four\""},
		{"bad int exec.timeout", "exec.timeout = 10s;\nweb { path = /j; }\n", "t.conf:1: jail web: exec.timeout: non-integer value \"10s\""},
		{"bad jailsys", "web {\n  path = /j;\n  vnet = disable;\n}\n", "t.conf:3: jail web: vnet: unknown value \"disable\" (want new, inherit)"},
		{"bad ip4", "web {\n  path = /j;\n  ip4.addr = 10.0.0.1, 10.0.0.300;\n}\n", "t.conf:3: jail web: ip4.addr: not an IPv4 address: 10.0.0.300"},
		{"ip6 in ip4", "web {\n  path = /j;\n  ip4.addr = \"em0|2001:db8::1/64\";\n}\n", "t.conf:3: jail web: ip4.addr: not an IPv4 address: em0|2001:db8::1/64"},
		{"bad ip6", "web {\n  path = /j;\n  ip6.addr = 10.0.0.1;\n}\n", "t.conf:3: jail web: ip6.addr: not an IPv6 address: 10.0.0.1"},
		{"relative path", "web {\n  path = jails/web;\n}\n", "t.conf:2: jail web: path jails/web: not an absolute pathname"},
		{"wildcard applies", "* { securelevel = high; }\nweb { path = /j; }\n", "t.conf:1: jail web: securelevel: non-integer value \"high\""},
		{"later value wins", "web {\n  path = /j;\n  securelevel = x;\n  securelevel = 2;\n}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.conf", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			errs := cfg.Check(CheckOptions{Shell: okShell})
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("unexpected errors:\n%v", errs)
			case tt.want != "" && len(errs) == 0:
				t.Errorf("no error, want %s", tt.want)
			case tt.want != "" && errs[0].Error() != tt.want:
				t.Errorf("first error %q, want %q", errs[0].Error(), tt.want)
			}
		})
	}
}

// TestCheckExecShell: exec.* commands go through sh -n after variable
// expansion; the real sh catches a broken command.
func TestCheckExecShell(t *testing.T) {
	src := "web {\n  path = /j;\n  exec.start = \"/bin/sh /etc/rc\";\n  exec.poststart = \"if true; then echo $name\";\n  exec.prestop = \"echo ok\";\n}\n"
	cfg, err := Parse("t.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	errs := cfg.Check(CheckOptions{Shell: func(cmd string) error {
		seen = append(seen, cmd)
		if strings.HasPrefix(cmd, "if") {
			return errors.New("syntax error")
		}
		return nil
	}})
	if len(errs) != 1 || errs[0].Error() != "t.conf:4: jail web: exec.poststart: sh -n: syntax error" {
		t.Errorf("errors: %v", errs)
	}
	if !contains(seen, "if true; then echo web") {
		t.Errorf("commands checked after expansion: %q", seen)
	}
	// the default is the real sh -n
	errs = cfg.Check(CheckOptions{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "exec.poststart: sh -n: ") {
		t.Errorf("real sh: %v", errs)
	}
}

// TestIncludeInBlock: an .include inside a jail block is read like a
// top-level one, with a warning that its parameters are global.
func TestIncludeInBlock(t *testing.T) {
	fsys := fstest.MapFS{"etc/extra.conf": {Data: []byte("securelevel = 3;\n")}}
	opts := Options{
		ReadFile: func(n string) ([]byte, error) { return fsys.ReadFile(strings.TrimPrefix(n, "/")) },
		Glob:     func(p string) ([]string, error) { return []string{p}, nil },
	}
	cfg, err := ParseOptions("t.conf", []byte("web {\n  path = /j;\n  .include \"/etc/extra.conf\";\n}\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0].Error(), "t.conf:3: .include inside jail \"web\"") {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if len(cfg.Global) != 1 || cfg.Global[0].Name != "securelevel" {
		t.Errorf("included parameters are global: %+v", cfg.Global)
	}
	if j := cfg.Jail("web"); len(j.Params) != 1 {
		t.Errorf("web's own parameters: %+v", j.Params)
	}
}
