package bundle

import (
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/verify"
)

// TestGateInManifest: a render's gate becomes the signed manifest's gate,
// with each gating host's key and its serial from the same build.
func TestGateInManifest(t *testing.T) {
	_, pub, err := verify.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	r := render("serverB")
	r.Gate, r.Bake, r.ReportKeys = []string{"serverA"}, 5*time.Minute, map[string]string{"serverA": string(pub)}
	if _, err := Build(r, Meta{Serial: 7, Created: now}); err == nil || !strings.Contains(err.Error(), "gating host serverA: no serial") {
		t.Fatalf("gate without the gating host's serial: %v", err)
	}
	b, err := Build(r, Meta{Serial: 7, Created: now, GateSerials: map[string]uint64{"serverA": 3}})
	if err != nil {
		t.Fatal(err)
	}
	g := b.Manifest.Gate
	if g == nil || len(g.Hosts) != 1 || g.Hosts[0] != (verify.GateHost{Host: "serverA", Key: string(pub), Serial: 3}) || time.Duration(g.Bake) != 5*time.Minute {
		t.Fatalf("manifest gate: %+v", g)
	}
	s, _ := GenerateSigner(ECDSA)
	if err := b.Sign(s); err != nil {
		t.Fatal(err)
	}
	got, err := verify.Verify(b.Envelope, strings.NewReader(string(b.Archive)), opts("serverB", s))
	if err != nil || got.Manifest.Gate.Hosts[0].Serial != 3 {
		t.Fatalf("verify: %v", err)
	}
}
