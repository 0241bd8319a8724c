package simfleet

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// provision writes only the secrets a host lacks: a revision that adds a
// tunnel gets its key, and the keys in place (which the running tunnels
// use) are never rewritten.
func TestProvisionOnlyMissing(t *testing.T) {
	f := &Fleet{Work: t.TempDir(), shared: []byte("shared-key")}
	have := filepath.Join(f.Root("h1"), "usr/local/etc/spiped/old.key")
	if err := writeFile(have, []byte("in place"), 0o600); err != nil {
		t.Fatal(err)
	}
	added, err := f.provision("h1", []string{"/usr/local/etc/spiped/old.key", "/usr/local/etc/spiped/new.key"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []string{"/usr/local/etc/spiped/new.key"}) {
		t.Errorf("added %q, want only the new key", added)
	}
	if b, _ := os.ReadFile(have); !bytes.Equal(b, []byte("in place")) {
		t.Errorf("the key in place was rewritten: %q", b)
	}
	nb, err := os.ReadFile(filepath.Join(f.Root("h1"), "usr/local/etc/spiped/new.key"))
	if err != nil || !bytes.Equal(nb, f.shared) {
		t.Errorf("new key %q, %v: want the fleet's spiped key", nb, err)
	}
	if fi, err := os.Stat(filepath.Join(f.Root("h1"), "usr/local/etc/spiped/new.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new key mode %v, %v: want 0600", fi.Mode(), err)
	}
	again, err := f.provision("h1", []string{"/usr/local/etc/spiped/old.key", "/usr/local/etc/spiped/new.key"})
	if err != nil || len(again) != 0 {
		t.Errorf("second provision added %q, %v: want nothing", again, err)
	}
}
