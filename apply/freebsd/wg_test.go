package freebsd

import (
	"strings"
	"testing"
	"time"
)

func TestCheckHandshakes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		out, want string
	}{
		{"AAAAAAAAAAAA=\t1799999990\n", ""},
		{"AAAAAAAAAAAA=\t0\n", "no handshake"},
		{"AAAAAAAAAAAA=\t1799999990\nBBBBBBBBBBBB=\t1799999000\n", "BBBBBBBB…: last handshake 16m40s ago"},
		{"", "no peers"},
		{"AAAAAAAAAAAA=\tx\n", `handshake "x"`},
	} {
		err := checkHandshakes("wg0", tc.out, now)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.out, err, tc.want)
		}
	}
}
