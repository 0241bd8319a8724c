package bundle

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// TestTarSameBytesAsArchiveTar: the hand-written USTAR headers are the
// bytes archive/tar writes for the same files, at every size and field
// edge; files USTAR cannot hold as they are take archive/tar's own path.
func TestTarSameBytesAsArchiveTar(t *testing.T) {
	file := func(path string, mode verify.Mode, owner string, size int) topology.RenderedFile {
		return topology.RenderedFile{Path: path, Mode: mode, Owner: owner, Group: "wheel", Content: bytes.Repeat([]byte{'x'}, size)}
	}
	long := func(n int) string { return "/" + strings.Repeat("d/", (n-1)/2) + strings.Repeat("f", 1+(n-1)%2) } // entry name of n bytes
	fleet := genFleet(t, 2)
	host, err := fleet.Rendered(fleet.Hosts()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		files []topology.RenderedFile
		hand  bool // written by hand, not by archive/tar
	}{
		{"generated fleet host", normalize(nil, host.Files), true},
		{"no files", nil, true},
		{"sizes around a block", []topology.RenderedFile{
			file("/a/0", 0o644, "root", 0), file("/a/1", 0o644, "root", 1), file("/a/511", 0o644, "root", 511),
			file("/a/512", 0o644, "root", 512), file("/a/513", 0o644, "root", 513), file("/a/big", 0o644, "root", 70001),
		}, true},
		{"modes", []topology.RenderedFile{
			file("/m/0", 0, "root", 3), file("/m/755", 0o755, "root", 3), file("/m/7777", 0o7777, "root", 3), file("/m/max", 1<<21-1, "root", 3),
		}, true},
		{"name of 100 bytes, owner of 32", []topology.RenderedFile{file(long(100), 0o600, strings.Repeat("u", 32), 9)}, true},
		{"name of 99 bytes", []topology.RenderedFile{file(long(99), 0o600, "www", 9)}, true},
		{"name of 101 bytes (USTAR prefix)", []topology.RenderedFile{file(long(101), 0o644, "root", 9)}, false},
		{"name of 300 bytes (PAX)", []topology.RenderedFile{file("/"+strings.Repeat("n", 299), 0o644, "root", 9)}, false},
		{"non-ASCII name (PAX)", []topology.RenderedFile{file("/etc/caf\u00e9", 0o644, "root", 9)}, false},
		{"owner of 33 bytes (PAX)", []topology.RenderedFile{file("/etc/x", 0o644, strings.Repeat("u", 33), 9)}, false},
		{"mode over the octal field", []topology.RenderedFile{file("/etc/x", 1<<21, "root", 9)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fits := true
			for _, f := range c.files {
				fits = fits && ustarFits(f)
			}
			if fits != c.hand {
				t.Fatalf("written by hand: %v, want %v", fits, c.hand)
			}
			want, err := archiveTar(nil, c.files)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendTar([]byte("kept"), c.files)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[4:], want) || string(got[:4]) != "kept" {
				for i := range min(len(got)-4, len(want)) {
					if got[4+i] != want[i] {
						t.Fatalf("tar differs from archive/tar's at byte %d (block %d, offset %d): %q, want %q", i, i/tarBlock, i%tarBlock, got[4+i], want[i])
					}
				}
				t.Fatalf("tar of %d bytes, archive/tar's %d", len(got)-4, len(want))
			}
		})
	}
}
