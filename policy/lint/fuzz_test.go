package lint

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzHost runs every check on a fuzzed pf.conf, jail.conf and rc.conf:
// no panic, and every finding names a file.
func FuzzHost(f *testing.F) {
	for _, n := range []string{"etc/pf.conf", "etc/jail.conf", "etc/rc.conf"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "uirig", n)); err == nil {
			f.Add(b, []byte("a { persist; }\n"), []byte("a=1\n"))
		}
	}
	f.Add([]byte("block quick all\npass in proto tcp to port 22\nblock all\n"), []byte("*{}\n"), []byte("x='\n"))
	f.Fuzz(func(t *testing.T, pfconf, jails, rc []byte) {
		files := map[string][]byte{"/etc/pf.conf": pfconf, "/etc/jail.conf": jails}
		if len(rc) < 256 { // sh -n per input is slow; keep it to small inputs
			files["/etc/rc.conf"] = rc
		}
		for _, fd := range Host(files, Options{TunnelPorts: []int{22, 5433}}) {
			if fd.File == "" || (fd.Severity != Error && fd.Severity != Warning) {
				t.Fatalf("bad finding %+v", fd)
			}
		}
	})
}
