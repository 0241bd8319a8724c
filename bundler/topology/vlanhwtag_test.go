package topology

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVlanHWTagIsAFlag: vlanhwtag is an ifconfig capability flag without a
// value (sbin/ifconfig/ifvlan.c, DEF_CMD). The seeds' "vlanhwtag 2222"
// makes FreeBSD read 2222 as the interface's destination address, which on
// Ethernet is the broadcast address (0.0.8.174), so the topology takes a
// boolean and refuses a number at its line.
func TestVlanHWTagIsAFlag(t *testing.T) {
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.yaml")
	for val, want := range map[string]string{"true": `ifconfig_inic="inet 192.0.2.2/24 vlanhwtag"`, "false": `ifconfig_inic="inet 192.0.2.2/24 -vlanhwtag"`} {
		os.WriteFile(topo, []byte("hosts:\n  h1:\n    nics: {inic: {vlanhwtag: "+val+"}}\n    addrs: {inic: 192.0.2.2/24}\n"), 0o644)
		r, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		hr, err := r.Render("h1")
		if err != nil {
			t.Fatal(err)
		}
		var rc string
		for _, f := range hr.Files {
			if f.Path == "/etc/rc.conf" {
				rc = string(f.Content)
			}
		}
		if !strings.Contains(rc, want) {
			t.Errorf("vlanhwtag: %s: rc.conf lacks %s:\n%s", val, want, rc)
		}
	}
	os.WriteFile(topo, []byte("hosts:\n  h1:\n    nics: {inic: {vlanhwtag: 2222}}\n"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "topology.yaml:3") {
		t.Errorf("vlanhwtag: 2222: %v, want an error at topology.yaml:3", err)
	}
}
