package bundle

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/bundler/topology"
)

// TestPackThenBuild: a host packed once and built with its metadata gives
// the bundle Build gives, byte for byte, and bundles built from one pack
// do not share their manifests.
func TestPackThenBuild(t *testing.T) {
	r := render("serverA")
	p, err := Pack(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Meta{{Serial: 1, Created: now}, {Serial: 7, Created: now.Add(time.Hour), NotBefore: now.Add(2 * time.Hour)}} {
		want, err := Build(render("serverA"), m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Build(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Archive, want.Archive) || !reflect.DeepEqual(got.Manifest, want.Manifest) {
			t.Fatalf("serial %d: packed then built differs from Build", m.Serial)
		}
		wp, _ := want.Payload()
		gp, _ := got.Payload()
		if !bytes.Equal(gp, wp) {
			t.Fatalf("serial %d: payloads differ", m.Serial)
		}
	}
	a, _ := p.Build(Meta{Serial: 1, Created: now})
	b, _ := p.Build(Meta{Serial: 2, Created: now})
	a.Manifest.Files[0].SHA256 = "changed"
	a.Manifest.Health[0].Name = "changed"
	if b.Manifest.Files[0].SHA256 == "changed" || b.Manifest.Health[0].Name == "changed" || r.Health[0].Name == "changed" {
		t.Fatal("bundles from one pack share their manifests, or the render's")
	}
	if _, err := p.Build(Meta{Serial: 1}); err == nil || !strings.Contains(err.Error(), "serverA: created time is required") {
		t.Fatalf("no created time: %v", err)
	}
	bad := render("serverA")
	bad.Files[0].Path = "/root/.profile"
	bp, err := Pack(bad) // packing does not judge paths: Build does, with the policy
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bp.Build(Meta{Serial: 1, Created: now}); err == nil || !strings.Contains(err.Error(), "bundle serverA:") {
		t.Fatalf("a path outside the policy built: %v", err)
	}
}

// TestPacker: the packer packs the hosts it is given as they render (every
// host when given none) and packs any other host on demand.
func TestPacker(t *testing.T) {
	fsys := genFleetFS(t, 6)
	for _, want := range [][]string{nil, {"h0001", "h0004"}} {
		k := NewPacker(want...)
		var mu sync.Mutex
		var handed []string
		repo, err := topology.LoadFSWith(fsys, topology.Options{Rendered: func(r *topology.HostRender) {
			k.Rendered(r)
			mu.Lock()
			handed = append(handed, r.Host)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(handed) != 6 {
			t.Fatalf("%d hosts handed on, want 6", len(handed))
		}
		packed := len(k.packed)
		if wantN := len(want); wantN == 0 && packed != 6 || wantN > 0 && packed != wantN {
			t.Fatalf("hosts %v: %d packed while rendering", want, packed)
		}
		for _, h := range repo.Hosts() {
			p, err := k.Packed(repo, h)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := repo.Rendered(h)
			direct, _ := Pack(r)
			if p.r != r || !bytes.Equal(p.archive, direct.archive) || !reflect.DeepEqual(p.files, direct.files) {
				t.Fatalf("host %s: pack differs from packing its render", h)
			}
		}
		if _, err := k.Packed(repo, "nosuch"); err == nil || !strings.Contains(err.Error(), `unknown host "nosuch"`) {
			t.Fatalf("unknown host: %v", err)
		}
	}
}
