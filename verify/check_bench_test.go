package verify

import (
	"os"
	"testing"

	"github.com/rigger-bsd/rigger/policy"
)

// uirigManifest is the manifest the bundler builds for a host of the
// generated uirig fleet (BenchmarkBuildSignFleet1000's hosts): 27 files,
// 8 health checks, 2 secrets and an 18-interface host description, and
// the host's path policy (its agent_roots). The bundler checks one like
// it before signing every bundle.
func uirigManifest(t testing.TB) (*Manifest, policy.Paths) {
	t.Helper()
	paths, err := policy.WithRoots([]string{"/jails/node_j/usr/local/etc/rc.d"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/uirig-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeManifest(b, paths)
	if err != nil {
		t.Fatal(err)
	}
	return m, paths
}

func BenchmarkCheckManifest(b *testing.B) {
	m, paths := uirigManifest(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckManifest(m, paths); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckHostDesc(b *testing.B) {
	m, _ := uirigManifest(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := checkHostDesc(m.HostDesc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIsSHA256 is the digests of the uirig manifest's files.
func BenchmarkIsSHA256(b *testing.B) {
	m, _ := uirigManifest(b)
	for b.Loop() {
		for _, f := range m.Files {
			if !isSHA256(f.SHA256) {
				b.Fatal(f.SHA256)
			}
		}
	}
}
