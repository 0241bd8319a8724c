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
