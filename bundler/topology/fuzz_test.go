package topology

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzDecode feeds the strict decoder (and, when it accepts the input, the
// whole loader) arbitrary topology files: they must fail with Problems, never
// panic, and the split decode must agree with the whole one. The seed
// corpus is the example repos' topology.yaml files.
func FuzzDecode(f *testing.F) {
	for _, ex := range examples {
		data, err := os.ReadFile(filepath.Join(infraDir, ex, TopologyFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(baseTopology))
	f.Add([]byte("hosts: {a: {addrs: {x: [1.2.3.4/8]}}}"))
	f.Add([]byte("hosts:\n  a:\n    epairs: [[x]]\n    jails: [{name: j, interfaces: [x]}]\n"))
	f.Add([]byte("hosts:\n  a:\n    rc: {x: y,\n  b: z}\n  c:\n    hostname: &h c\n  d: {hostname: *h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Decoded in pieces of one host, it is the whole decode or left to it.
		splitSameAsWhole(t, data, 1)
		file, err := Decode(TopologyFile, data)
		if err != nil {
			if _, ok := err.(Problems); !ok {
				t.Fatalf("Decode error %T is not Problems: %v", err, err)
			}
			return
		}
		if file == nil {
			t.Fatal("nil file without error")
		}
		fsys := fstest.MapFS{
			TopologyFile: {Data: data},
			"pf.tmpl":    {Data: []byte(basePF)},
			"motd":       {Data: []byte("hi\n")},
		}
		r, err := LoadFS(fsys)
		if err != nil {
			if _, ok := err.(Problems); !ok {
				t.Fatalf("LoadFS error %T is not Problems: %v", err, err)
			}
			return
		}
		for _, h := range r.Hosts() {
			if _, err := r.Render(h); err != nil {
				t.Fatal(err)
			}
		}
	})
}
