package rcconf

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseSeed(t *testing.T) {
	src, err := os.ReadFile("testdata/uirig.rc.conf")
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse("rc.conf", src)
	if err != nil {
		t.Fatal(err)
	}
	want := Vars{
		"ifconfig_xnic":         "`/bin/cat /etc/xnic`",
		"ifconfig_inic":         "`/bin/cat /etc/inic` vlanhwtag 2222",
		"defaultrouter":         "`/bin/cat /etc/gateway`",
		"cloned_interfaces":     "bridge0 bridge1 epair0",
		"ifconfig_bridge0_name": "xbridge",
		"ifconfig_ibridge":      "\naddm inic\naddm inode_a\nup",
		"sshd_flags":            "-o ListenAddress=$x",
		"jail_enable":           "YES",
		"pf_enable":             "YES",
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	if len(v) != len(want) {
		t.Errorf("got %d vars, want %d: %v", len(v), len(want), v)
	}
	if errs := Check("rc.conf", src); len(errs) != 0 {
		t.Errorf("Check: %v", errs)
	}
}

func TestLaterWins(t *testing.T) {
	v, err := Parse("rc.conf", []byte("a=1\na=\"2\"\n"))
	if err != nil || v["a"] != "2" {
		t.Fatalf("a = %q, err %v", v["a"], err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"bad name", "ok=1\n1abc=2\n", "rc.conf:2: invalid variable name \"1abc\""},
		{"dash in name", "jail-enable=YES\n", "rc.conf:1: invalid variable name \"jail-enable\""},
		{"unbalanced double", "a=1\nb=\"x\nc=2\n", "rc.conf:2: unbalanced \" in value of b"},
		{"unbalanced single", "b='x\n", "rc.conf:1: unbalanced ' in value of b"},
		{"not an assignment", "a=1\necho hi\n", "rc.conf:2: not an assignment: \"echo hi\""},
		{"unquoted blank", "a=1\nb=x y\n", "rc.conf:2: unexpected \"y\" after the value of b (quote values with blanks)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rc.conf", []byte(tt.src))
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q, want %q", err, tt.want)
			}
			errs := Check("rc.conf", []byte(tt.src))
			if len(errs) == 0 || errs[0].Error() != tt.want {
				t.Errorf("Check = %v, want first %q", errs, tt.want)
			}
		})
	}
}

func TestCheckShell(t *testing.T) {
	if _, err := exec.LookPath("dash"); err != nil {
		if _, err := exec.LookPath("sh"); err != nil {
			t.Skip("no dash or sh on this machine: the sh -n check cannot run")
		}
	}
	// The scanner accepts this assignment; only the shell sees the broken
	// command substitution.
	src := "a=1\nb=\"$(echo\"\nc=3\n"
	errs := Check("rc.conf", []byte(src))
	if len(errs) == 0 {
		t.Fatal("no error for a broken command substitution")
	}
	var found bool
	for _, e := range errs {
		if strings.HasPrefix(e.Error(), "rc.conf:") && strings.Contains(e.Error(), "sh -n:") {
			found = true
		}
	}
	if !found {
		t.Errorf("no sh -n error in %v", errs)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/uirig.rc.conf")
	f.Add(seed)
	f.Add([]byte("a='x'\"y\"z\\\n# c\nb=`q`\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		v, err := Parse("f", src)
		if err == nil && v == nil {
			t.Fatal("nil Vars without error")
		}
	})
}
