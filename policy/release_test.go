package policy

import "testing"

func TestParseRelease(t *testing.T) {
	for in, want := range map[string]Release{"14": 14, "15": 15, "14.1": 14, "15.0-RELEASE": 15} {
		if got, err := ParseRelease(in); err != nil || got != want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "13", "16", "x", "1.4"} {
		if _, err := ParseRelease(in); err == nil {
			t.Errorf("ParseRelease(%q) accepted", in)
		}
	}
	if Release(0).Or() != DefaultRelease || Release14.Or() != Release14 {
		t.Error("Or")
	}
}

func TestShellSyntax(t *testing.T) {
	for _, ok := range []string{"/bin/sh /etc/rc", "ifconfig epair0 create && echo ok", "for i in 1 2; do echo $i; done", "wg set %i private-key /k"} {
		if err := ShellSyntax(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"if true; then echo", "echo 'unterminated", "(cd /tmp"} {
		if err := ShellSyntax(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
