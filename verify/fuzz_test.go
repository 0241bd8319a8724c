package verify

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

// FuzzEnvelope feeds arbitrary manifest.json bytes to Verify: whatever comes
// in, it must return either a bundle signed by the pinned key or a
// *RejectError, never panic.
func FuzzEnvelope(f *testing.F) {
	ec, ed := testKeys(f)
	fx := newFixture(f)
	f.Add(fx.sign(f, ec[0]))
	f.Add(fx.sign(f, ec[0], ed))
	f.Add(fx.sign(f))
	f.Add(fx.payload(f))
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":null}`))
	f.Add([]byte(`{}`))
	opts := fx.opts(ec[0])
	f.Fuzz(func(t *testing.T, manifest []byte) {
		b, err := Verify(manifest, bytes.NewReader(fx.archive), opts)
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		if len(b.Signers) == 0 || b.Signers[0] != ec[0].pub.ID {
			t.Fatalf("accepted without the pinned key: %v", b.Signers)
		}
	})
}

// FuzzManifest feeds arbitrary payloads to the strict manifest decoder.
func FuzzManifest(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.payload(f))
	f.Add([]byte(`{"schema":1,"host":"a","serial":1}`))
	f.Add([]byte(`{"schema":1,"files":[{"path":"/etc/../x","mode":"0644"}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodeManifest(payload, fx.optsPaths())
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		// Whatever passes must be fully valid.
		if err := CheckManifest(m, fx.optsPaths()); err != nil {
			t.Fatalf("decoded manifest fails its own check: %v", err)
		}
	})
}

// FuzzArchive feeds arbitrary archive bytes under a manifest that vouches
// for them (as a compromised signer could): decompression and tar checks
// must hold on their own.
func FuzzArchive(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.archive, false)
	f.Add(makeTar(f, fx.entries), true)
	f.Add(append(zstdFrame(29, 0, false), 0x09, 0, 0, 'A'), false)
	f.Add(zstdBomb(true)[:64], false)
	f.Fuzz(func(t *testing.T, data []byte, compressIt bool) {
		m := fx.m
		m.Files = append([]File(nil), fx.m.Files...)
		if compressIt {
			data = compress(data)
		}
		m.Archive = Archive{SHA256: hexSum(data), Size: int64(len(data))}
		if m.Archive.Size == 0 {
			return
		}
		files, err := readArchive(&m, bytes.NewReader(data), DefaultLimits())
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("non-reject error %T: %v", err, err)
			}
			return
		}
		for _, mf := range m.Files {
			if hexSum(files[mf.Path]) != mf.SHA256 {
				t.Fatalf("%s accepted with the wrong digest", mf.Path)
			}
		}
	})
}

func (f *fixture) optsPaths() policy.Paths { return policy.DefaultPaths() }

// BenchmarkVerify verifies a bundle the size of uirig's serverA: about 20
// config files of 1-3 KB, one ECDSA signature.
func BenchmarkVerify(b *testing.B) {
	ec, _ := testKeys(b)
	fx := newFixture(b)
	fx.m.Files, fx.entries = nil, nil
	for i := range 20 {
		body := bytes.Repeat([]byte(fmt.Sprintf("key_%d=\"value %d\"\n", i, i)), 100)
		p := fmt.Sprintf("/etc/conf%02d", i)
		fx.m.Files = append(fx.m.Files, File{Path: p, Mode: 0o644, Owner: "root", Group: "wheel", SHA256: hexSum(body), Size: int64(len(body)), Unit: "none"})
		fx.entries = append(fx.entries, entry{name: EntryName(p), mode: 0o644, uname: "root", gname: "wheel", body: body})
	}
	fx.setTar(b, makeTar(b, fx.entries))
	man := fx.sign(b, ec[0])
	opts := fx.opts(ec[0])
	opts.Now = func() time.Time { return fx.now }
	b.ReportMetric(float64(len(fx.archive)), "archive-bytes")
	b.ResetTimer()
	for b.Loop() {
		if _, err := Verify(man, bytes.NewReader(fx.archive), opts); err != nil {
			b.Fatal(err)
		}
	}
}
