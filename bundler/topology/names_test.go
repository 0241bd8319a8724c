package topology

import (
	"regexp"
	"testing"
)

// TestIsName: isName is the regexp it replaced.
func TestIsName(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	for _, s := range []string{"", "a", "Z", "ipg_b", "A1_", "em0", "1a", "_a", "a-b", "a.b", "a b", "é", "aé", "a\n", "a\x00", "a\xff", "lagg0_", "ngx_node_a", "a/b", "a:b"} {
		if got, want := isName(s), re.MatchString(s); got != want {
			t.Errorf("isName(%q) = %v, want %v", s, got, want)
		}
	}
}
