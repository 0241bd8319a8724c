package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// TestPayloadSameBytesAsJSON: the signed payload is json.Marshal of the
// manifest, byte for byte: real renders, a gated one, and strings and
// modes encoding/json escapes or pads.
func TestPayloadSameBytesAsJSON(t *testing.T) {
	var mans []verify.Manifest
	uirig, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		t.Fatal(err)
	}
	fleet := genFleet(t, 4)
	for _, repo := range []*topology.Repo{uirig, fleet} {
		for _, h := range repo.Hosts() {
			r, err := repo.Rendered(h)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Build(r, Meta{Serial: 3, Created: now, Source: verify.Source{Repo: "https://git.example.org/infra.git", Commit: "abc", Dirty: true}})
			if err != nil {
				t.Fatal(err)
			}
			mans = append(mans, b.Manifest)
		}
	}
	_, pub, err := verify.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	r := render("serverB")
	r.Gate, r.Bake, r.ReportKeys = []string{"serverA"}, 5*time.Minute, map[string]string{"serverA": string(pub)}
	gated, err := Build(r, Meta{Serial: 7, Created: now, GateSerials: map[string]uint64{"serverA": 3}})
	if err != nil {
		t.Fatal(err)
	}
	mans = append(mans, gated.Manifest)
	odd := gated.Manifest
	odd.Source.Repo = `x","files":null,"y":"<&>`
	odd.Files = []verify.File{
		{Path: "/etc/a<b>&c", Mode: 0, Owner: "r\"o\\ot", Group: "wh\teel", SHA256: "caf\u00e9", Size: 0, Unit: "\u2028 \x7f \xff"},
		{Path: "/etc/b", Mode: 0o7777, Owner: "root", Group: "wheel", Size: 1 << 40, Unit: "none"},
		{Path: "/etc/c", Mode: 0o17777, Size: -1},
		{Path: "/etc/d", Mode: 0o7},
		{Path: "/etc/<", Owner: ">", Group: "&", Unit: "\"", SHA256: "\\"},
		{Path: "/etc/\x1f", Owner: "\u00e9", Group: "\x7f", Unit: "~ "},
	}
	mans = append(mans, odd)
	empty := odd
	empty.Files = []verify.File{}
	mans = append(mans, empty)
	none := odd
	none.Files = nil
	mans = append(mans, none)
	for i, m := range mans {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPayload([]byte("kept"), &m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:4]) != "kept" || !bytes.Equal(got[4:], want) {
			t.Errorf("manifest %d (%s): payload\n%s\nwant json.Marshal's\n%s", i, m.Host, got[4:], want)
		}
	}
}

// TestFileFields: appendFiles writes verify.File's fields by hand; a field
// added, renamed or retyped there must be added here and there.
func TestFileFields(t *testing.T) {
	var got []string
	ft := reflect.TypeFor[verify.File]()
	for i := range ft.NumField() {
		f := ft.Field(i)
		got = append(got, fmt.Sprintf("%s %s %s", f.Name, f.Tag.Get("json"), f.Type))
	}
	want := []string{
		"Path path string", "Mode mode verify.Mode", "Owner owner string", "Group group string",
		"SHA256 sha256 string", "Size size int64", "Unit unit string",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("verify.File is now %q; appendFiles writes %q: teach it the change", got, want)
	}
}

// TestPAEReader: what is signed is verify.PAE of the payload.
func TestPAEReader(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("{}"), bytes.Repeat([]byte("x"), 12345)} {
		want := verify.PAE(verify.PayloadType, payload)
		read, err := io.ReadAll(struct{ io.Reader }{paeReader(verify.PayloadType, payload)}) // by Read
		if err != nil {
			t.Fatal(err)
		}
		var written bytes.Buffer
		if _, err := io.Copy(&written, paeReader(verify.PayloadType, payload)); err != nil { // by WriteTo
			t.Fatal(err)
		}
		for _, got := range [][]byte{read, written.Bytes()} {
			if !bytes.Equal(got, want) {
				t.Errorf("PAE of %d bytes: %q, want %q", len(payload), got[:min(len(got), 60)], want[:min(len(want), 60)])
			}
		}
	}
}
