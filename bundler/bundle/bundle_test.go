package bundle

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func render(host string) *topology.HostRender {
	return &topology.HostRender{
		Host: host,
		Wave: 10 * time.Minute,
		Files: []topology.RenderedFile{
			{Path: "/jails/pg_j/etc/rc.conf", Mode: 0o644, Owner: "root", Group: "wheel", Unit: "jail:pg_j", Content: []byte("postgresql_enable=\"YES\"\n")},
			{Path: "/etc/rc.conf", Content: []byte("hostname=\"" + host + "\"\n")},
			{Path: "/etc/pf.conf", Mode: 0o600, Unit: "pf", Content: []byte("pass all\n")},
		},
		Health:  []verify.Check{{Kind: verify.CheckPF, Name: "pf"}},
		Secrets: []string{"/usr/local/etc/spiped/pg.key"},
	}
}

func opts(host string, keys ...*Signer) verify.Options {
	o := verify.Options{Threshold: 1, Host: host, Now: func() time.Time { return now }}
	for _, k := range keys {
		o.Keys = append(o.Keys, k.Public())
	}
	return o
}

func TestRoundTripBothKeyTypes(t *testing.T) {
	for _, kt := range []KeyType{ECDSA, Ed25519} {
		t.Run(string(kt), func(t *testing.T) {
			s, err := GenerateSigner(kt)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Build(render("serverA"), Meta{Serial: 3, Created: now, Source: verify.Source{Commit: "abc"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Sign(s); err != nil {
				t.Fatal(err)
			}
			dir, err := b.Write(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			v, err := verify.VerifyDir(dir, opts("serverA", s))
			if err != nil {
				t.Fatal(err)
			}
			m := v.Manifest
			if m.Serial != 3 || !m.NotBefore.Equal(now.Add(10*time.Minute)) || !m.Expires.Equal(now.Add(DefaultExpiry)) {
				t.Errorf("serial %d not_before %s expires %s", m.Serial, m.NotBefore, m.Expires)
			}
			if m.Files[0].Path != "/etc/pf.conf" || m.Files[0].Mode != 0o600 || m.Files[1].Owner != "root" || m.Files[1].Group != "wheel" || m.Files[1].Unit != "none" {
				t.Errorf("files not sorted or defaults missing: %+v", m.Files)
			}
			if string(v.Files["/etc/rc.conf"]) != "hostname=\"serverA\"\n" {
				t.Errorf("rc.conf = %q", v.Files["/etc/rc.conf"])
			}
			if v.Signers[0] != s.KeyID() {
				t.Errorf("signers %v", v.Signers)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	r1 := render("serverA")
	r2 := render("serverA")
	r2.Files[0], r2.Files[2] = r2.Files[2], r2.Files[0] // order must not matter
	a, err := Build(r1, Meta{Serial: 1, Created: now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(r2, Meta{Serial: 1, Created: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Archive, b.Archive) {
		t.Fatal("same files, different archive bytes")
	}
	pa, _ := a.Payload()
	a2, _ := Build(render("serverA"), Meta{Serial: 1, Created: now})
	pa2, _ := a2.Payload()
	if !bytes.Equal(pa, pa2) {
		t.Fatal("same inputs, different manifest payload")
	}
	r3 := render("serverA")
	r3.Files[1].Content = []byte("hostname=\"other\"\n")
	c, _ := Build(r3, Meta{Serial: 1, Created: now})
	if bytes.Equal(a.Archive, c.Archive) {
		t.Fatal("different content, same archive")
	}
}

func TestBuildRefusesWhatVerifyRefuses(t *testing.T) {
	for name, mod := range map[string]func(*topology.HostRender){
		"path outside the policy": func(r *topology.HostRender) { r.Files[0].Path = "/root/.profile" },
		"duplicate path":          func(r *topology.HostRender) { r.Files[1].Path = r.Files[2].Path },
		"bad unit":                func(r *topology.HostRender) { r.Files[0].Unit = "restart-everything" },
		"setuid":                  func(r *topology.HostRender) { r.Files[0].Mode = 0o4755 },
	} {
		t.Run(name, func(t *testing.T) {
			r := render("serverA")
			mod(r)
			if _, err := Build(r, Meta{Serial: 1, Created: now}); err == nil || !strings.Contains(err.Error(), "serverA") {
				t.Fatalf("got %v, want an error naming the host", err)
			}
		})
	}
	if _, err := Build(render("serverA"), Meta{Serial: 0, Created: now}); err == nil {
		t.Error("serial 0 accepted")
	}
}

func TestKeyFiles(t *testing.T) {
	for _, kt := range []KeyType{ECDSA, Ed25519} {
		t.Run(string(kt), func(t *testing.T) {
			priv, pub, err := GenerateKey(kt, []byte("hunter2"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(priv, []byte("ENCRYPTED SIGSTORE PRIVATE KEY")) {
				t.Errorf("private key not encrypted:\n%s", priv)
			}
			s, err := ParseSigner(priv, []byte("hunter2"))
			if err != nil {
				t.Fatal(err)
			}
			pk, err := verify.LoadPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			if pk.ID != s.KeyID() {
				t.Errorf("public key id %s, signer %s", pk.ID, s.KeyID())
			}
			if _, err := ParseSigner(priv, []byte("wrong")); err == nil {
				t.Error("wrong password accepted")
			}
		})
	}
	if _, _, err := GenerateKey(ECDSA, nil); err == nil {
		t.Error("empty password accepted")
	}
	if _, _, err := GenerateKey("rsa", []byte("x")); err == nil {
		t.Error("rsa accepted")
	}
}

func TestSignDirThreshold(t *testing.T) {
	var ks []*Signer
	for _, kt := range []KeyType{ECDSA, Ed25519, ECDSA} {
		s, err := GenerateSigner(kt)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, s)
	}
	b, _ := Build(render("serverB"), Meta{Serial: 9, Created: now})
	if err := b.Sign(ks[0]); err != nil {
		t.Fatal(err)
	}
	dir, err := b.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := opts("serverB", ks...)
	o.Threshold = 2
	if _, err := verify.VerifyDir(dir, o); !errors.Is(err, verify.ErrThreshold) {
		t.Fatalf("1-of-3 with threshold 2: %v", err)
	}
	if err := SignDir(dir, ks[0], policy.Paths{}); !errors.Is(err, ErrAlreadySigned) {
		t.Fatalf("second signature by the same key: %v", err)
	}
	if err := SignDir(dir, ks[1], policy.Paths{}); err != nil {
		t.Fatal(err)
	}
	v, err := verify.VerifyDir(dir, o)
	if err != nil {
		t.Fatalf("2-of-3: %v", err)
	}
	if len(v.Signers) != 2 {
		t.Errorf("signers %v", v.Signers)
	}
	if n, err := PreviousSerial(filepath.Dir(dir), "serverB"); err != nil || n != 9 {
		t.Errorf("PreviousSerial = %d, %v", n, err)
	}
	if n, err := PreviousSerial(filepath.Dir(dir), "serverZ"); err != nil || n != 0 {
		t.Errorf("PreviousSerial of a missing host = %d, %v", n, err)
	}
}

func TestWriteUnsigned(t *testing.T) {
	b, _ := Build(render("serverA"), Meta{Serial: 1, Created: now})
	dir := t.TempDir()
	if _, err := b.Write(dir); err == nil {
		t.Fatal("unsigned bundle written")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("wrote %d entries", len(ents))
	}
}

// genRender makes a host with a realistic file set: rc.conf, pf.conf,
// jail.conf and three jails' rc.conf, a few KB in all.
func genRender(i int) *topology.HostRender {
	host := fmt.Sprintf("host%04d", i)
	r := &topology.HostRender{Host: host}
	add := func(p, unit string, lines int) {
		var b strings.Builder
		for l := range lines {
			fmt.Fprintf(&b, "%s_setting_%d=\"value %d for %s\"\n", strings.ReplaceAll(p[1:], "/", "_"), l, l*i, host)
		}
		r.Files = append(r.Files, topology.RenderedFile{Path: p, Unit: unit, Content: []byte(b.String())})
	}
	add("/etc/rc.conf", "none", 40)
	add("/etc/pf.conf", "pf", 80)
	add("/etc/jail.conf", "none", 60)
	for _, j := range []string{"nginx_j", "node_j", "pg_j"} {
		add("/jails/"+j+"/etc/rc.conf", "jail:"+j, 15)
	}
	return r
}

// BenchmarkBuildSign1000 builds and signs every host of a generated
// 1,000-host fleet from ready renders (hosts/s; target ≥ 500).
// BenchmarkBuildSignFleet1000 is the same with loading and rendering.
func BenchmarkBuildSign1000(b *testing.B) {
	s, err := GenerateSigner(ECDSA)
	if err != nil {
		b.Fatal(err)
	}
	renders := make([]*topology.HostRender, 1000)
	for i := range renders {
		renders[i] = genRender(i)
	}
	out := b.TempDir()
	for b.Loop() {
		for _, r := range renders {
			buildSignWrite(b, r, s, out)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "hosts/s")
}

// buildSignWrite is one host of "bundler build": pack, sign, write.
func buildSignWrite(b *testing.B, r *topology.HostRender, s *Signer, out string) {
	if err := buildSignWriteErr(r, s, out); err != nil {
		b.Fatal(err)
	}
}

func buildSignWriteErr(r *topology.HostRender, s *Signer, out string) error {
	bb, err := Build(r, Meta{Serial: 1, Created: now})
	if err != nil {
		return err
	}
	if err := bb.Sign(s); err != nil {
		return err
	}
	_, err = bb.Write(out)
	return err
}

// The envelope is plain DSSE: sigstore's own DSSE verifier accepts its
// signatures. (That verifier only pairs a signature with a key whose SSH
// style fingerprint equals the keyid, so it is given the envelope with the
// keyid hints blanked; rigger's verifier ignores the hints anyway.)
func TestEnvelopeIsStandardDSSE(t *testing.T) {
	for _, kt := range []KeyType{ECDSA, Ed25519} {
		s, err := GenerateSigner(kt)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Build(render("serverA"), Meta{Serial: 1, Created: now})
		if err := b.Sign(s); err != nil {
			t.Fatal(err)
		}
		v, err := signature.LoadVerifier(s.Public().Key, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		var payload []byte
		dv := dsse.WrapVerifier(v, dsse.WithExpectedPayloadType(verify.PayloadType), dsse.WithDecodedPayload(&payload))
		env, _, err := verify.ParseEnvelope(b.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures[0].KeyID = ""
		blank, _ := env.Marshal()
		if err := dv.VerifySignature(bytes.NewReader(blank), nil); err != nil {
			t.Fatalf("%s: sigstore dsse: %v", kt, err)
		}
		want, _ := b.Payload()
		if !bytes.Equal(payload, want) {
			t.Errorf("%s: decoded payload differs", kt)
		}
	}
}

// TestWriteFolders: Write makes missing parents of the bundles folder,
// rewrites a host folder that exists, and names the host when a file
// stands where its folder should be.
func TestWriteFolders(t *testing.T) {
	s, _ := GenerateSigner(ECDSA)
	b, err := Build(render("serverA"), Meta{Serial: 1, Created: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(s); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a", "b")
	for range 2 {
		dir, err := b.Write(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, verify.ManifestFile)); err != nil || !bytes.Equal(got, b.Envelope) {
			t.Fatalf("manifest in %s: %v", dir, err)
		}
	}
	blocked := t.TempDir()
	if err := os.WriteFile(filepath.Join(blocked, "serverA"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(blocked); err == nil || !strings.Contains(err.Error(), "serverA") {
		t.Fatalf("write over a file: %v", err)
	}
}

// TestMarshalEnvelope: the envelope Sign writes in one buffer has the
// bytes verify.Envelope.Marshal gives, for odd payload types and key ids,
// empty and binary payloads, no, one and several signatures.
func TestMarshalEnvelope(t *testing.T) {
	payloads := [][]byte{nil, []byte("{}"), []byte("<a&b>\u2028\x00\xff\"\\"), bytes.Repeat([]byte{0xfb, 0xff}, 5000)}
	types := []string{verify.PayloadType, "", `we"ird<&>\` + "\u2028\x01é"}
	sigSets := [][]verify.Signature{{}, {{KeyID: "abc", Sig: "c2ln"}}, {{KeyID: "<k1>", Sig: "+/=="}, {KeyID: "", Sig: ""}, {KeyID: "\t\"", Sig: "x"}}}
	for _, p := range payloads {
		for _, pt := range types {
			for _, sigs := range sigSets {
				want, err := (&verify.Envelope{PayloadType: pt, Payload: base64.StdEncoding.EncodeToString(p), Signatures: sigs}).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if got := marshalEnvelope(pt, p, sigs); !bytes.Equal(got, want) {
					t.Fatalf("type %q, %d signatures, payload %.20q:\n got %.200s\nwant %.200s", pt, len(sigs), p, got, want)
				}
			}
		}
	}
}
