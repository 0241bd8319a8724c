package freebsd

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// shAccepts runs the local sh -n (an ash like FreeBSD's) on src.
func shAccepts(t testing.TB, src []byte) bool {
	p := filepath.Join(t.TempDir(), "rc.conf")
	if err := os.WriteFile(p, src, 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command("sh", "-n", p).Run() == nil
}

var plainCases = []struct {
	src   string
	plain bool
}{
	{"", true},
	{"\n\n", true},
	{"# only a comment\n", true},
	{"   \t# indented comment\n", true},
	{"# Café: a comment may hold any byte but control characters\n", true},
	{`pf_enable="YES"` + "\n", true},
	{`pf_enable=YES`, true}, // no final newline
	{`ifconfig_xbridge="inet 10.0.2.1/24 addm ngx_a up"`, true},
	{`postgresql_flags="-w -s -m fast -o '-c config_file=/usr/local/etc/postgresql/postgresql.conf'"`, true},
	{`spiped_pipe_N2P_source="[10.0.56.40]:5433"`, true},
	{`a=`, true},
	{`a= # empty, then a comment`, true},
	{`a="x" # comment`, true},
	{"\ta='it''s'\t", true},
	{`a='$HOME \ ` + "`x`'", true}, // nothing expands between single quotes
	{`a=b=c,d:e/f.g+h@i%j-k_l`, true},
	{`_x1=""`, true},
	{`a="x"'y'z`, true},
	{`if=1`, true}, // an assignment, not the reserved word

	{`a="$b"`, false},
	{`a=$b`, false},
	{`a="x\"y"`, false},
	{"a=\"`id`\"", false},
	{`a=~/x`, false},
	{`a=b#c`, false},
	{`a=*`, false},
	{`a=b c=d`, false},
	{`a=b; c=d`, false},
	{`a=b && c`, false},
	{`a=(x)`, false},
	{`a="x`, false},
	{`a='x`, false},
	{"a=\"x\ny\"", false}, // a quote across lines
	{"a=b \\\n", false},
	{"a=\"x\r\"", false},
	{"a=b\r\n", false},
	{"a=\"caf\xc3\xa9\"", false},
	{"# nul\x00\n", false},
	{`1a=b`, false},
	{`a-b=c`, false},
	{`=b`, false},
	{`echo hi`, false},
	{`a`, false},
	{`export a=b`, false},
	{`}`, false},
	{`fi`, false},
}

func TestPlainAssignments(t *testing.T) {
	for _, c := range plainCases {
		if got := plainAssignments([]byte(c.src)); got != c.plain {
			t.Errorf("plainAssignments(%q) = %v, want %v", c.src, got, c.plain)
		}
	}
}

// FuzzPlainAssignments: what the pre-check lets through without sh -n,
// sh -n accepts too (the local sh, an ash like FreeBSD's, is the oracle;
// the seeds run in every go test).
func FuzzPlainAssignments(f *testing.F) {
	for _, c := range plainCases {
		f.Add([]byte(c.src))
	}
	if _, err := exec.LookPath("sh"); err != nil {
		f.Fatal("sh not found: the oracle of this test")
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if plainAssignments(src) && !shAccepts(t, src) {
			t.Errorf("plain %q, but sh -n rejects it", src)
		}
	})
}
