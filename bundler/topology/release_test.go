package topology

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rigger-bsd/rigger/policy"
)

// TestRelease: a host's release is its own, else its role's, else the
// fleet default, else policy.DefaultRelease; bad values name their line.
func TestRelease(t *testing.T) {
	load := func(t *testing.T, edits ...string) (*Repo, error) {
		t.Helper()
		topo := baseTopology
		for i := 0; i < len(edits); i += 2 {
			if !strings.Contains(topo, edits[i]) {
				t.Fatalf("edit %q: not in the base topology", edits[i])
			}
			topo = strings.Replace(topo, edits[i], edits[i+1], 1)
		}
		fsys := baseFS()
		fsys["topology.yaml"] = &fstest.MapFile{Data: []byte(topo)}
		return LoadFS(fsys)
	}
	rel := func(t *testing.T, r *Repo, host string) policy.Release {
		t.Helper()
		hr, err := r.Render(host)
		if err != nil {
			t.Fatal(err)
		}
		return hr.Release
	}
	r, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if a := rel(t, r, "a"); a != policy.DefaultRelease {
		t.Errorf("no release anywhere: a is %v, want %v", a, policy.DefaultRelease)
	}
	r, err = load(t, "domain: test.lan\n", "domain: test.lan\nrelease: 14\n", "    peer: a\n", "    peer: a\n    release: \"15.0\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rel(t, r, "a"), rel(t, r, "b"); a != 14 || b != 15 {
		t.Errorf("fleet 14, b 15: got a %v, b %v", a, b)
	}
	r, err = load(t, "domain: test.lan\n", "domain: test.lan\nrelease: 15\n", "  r:\n", "  r:\n    release: 14\n", "    peer: a\n", "    peer: a\n    release: 15\n")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rel(t, r, "a"), rel(t, r, "b"); a != 14 || b != 15 {
		t.Errorf("role 14, b 15: got a %v, b %v", a, b)
	}
	_, err = load(t, "domain: test.lan\n", "domain: test.lan\nrelease: 13\n", "  r:\n", "  r:\n    release: x\n", "    peer: a\n", "    peer: a\n    release: 16\n")
	want := "topology.yaml:2: release \"13\": want one of 14, 15\n" +
		"topology.yaml:5: role r: release \"x\": want one of 14, 15\n" +
		"topology.yaml:39: host b: release \"16\": want one of 14, 15"
	if err == nil || err.Error() != want {
		t.Errorf("bad releases: got\n%v\nwant\n%s", err, want)
	}
}
