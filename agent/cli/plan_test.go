package cli

import (
	"testing"

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
