package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/bundler/clicontract"

	"github.com/rigger-bsd/rigger/verify"
)

// The plan's first line has no empty fields, whatever the manifest records.
func TestSourceText(t *testing.T) {
	for _, tc := range []struct {
		src  verify.Source
		want string
	}{
		{verify.Source{Repo: "https://git.example.org/infra.git", Commit: "abc"}, "infra commit abc from https://git.example.org/infra.git, bundles commit 123"},
		{verify.Source{Commit: "abc", Dirty: true}, "infra commit abc (dirty), bundles commit 123"},
		{verify.Source{Repo: "/srv/infra"}, "from /srv/infra, bundles commit 123"},
		{verify.Source{}, "no source recorded, bundles commit 123"},
	} {
		if got := sourceText(tc.src, "123"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.src, got, tc.want)
		}
	}
}

// Every command documents its own exit codes, 2 included (the contract).
func TestEveryCommandHasExitStatus(t *testing.T) {
	root := newRootCommand(io.Discard, io.Discard)
	clicontract.Prepare(root)
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if !strings.Contains(c.Long, "EXIT STATUS\n  0  ") || !strings.Contains(c.Long, "\n"+clicontract.UsageLine) {
			t.Errorf("agent %s: help has no EXIT STATUS with 0 and %q:\n%s", c.Name(), clicontract.UsageLine, c.Long)
		}
	}
}
