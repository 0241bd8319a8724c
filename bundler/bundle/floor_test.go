package bundle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/rigger-bsd/rigger/verify"
)

// The floors bench.sh prints beside the figures: the work no build or
// verify can avoid, measured in the same run on the same machine.

// BenchmarkFloorBuildSign is one host's unavoidable build work: compress
// its tar with the bundle encoder, digest the archive, sign one digest
// with ECDSA P-256. Reports hosts/s on one core.
func BenchmarkFloorBuildSign(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	files := normalize(nil, genRender(1).Files)
	tarred, err := Archive(files) // warms the encoder; the tar itself is cheap
	if err != nil || len(tarred) == 0 {
		b.Fatal(err)
	}
	enc, err := encoder()
	if err != nil {
		b.Fatal(err)
	}
	var raw []byte
	for _, f := range files {
		raw = append(raw, f.Content...)
	}
	buf := make([]byte, 0, len(raw))
	for b.Loop() {
		buf = enc.EncodeAll(raw, buf[:0])
		sum := sha256.Sum256(buf)
		if _, err := ecdsa.SignASN1(rand.Reader, key, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
}

// BenchmarkFloorVerify is one ECDSA P-256 signature check: the least a
// bundle verification costs. Reports ms.
func BenchmarkFloorVerify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("manifest"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], sig) {
			b.Fatal("does not verify")
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms")
}

// BenchmarkFloorCreateFiles is the disk work no bundle writer can avoid:
// the files of BenchmarkWriteFleet1000 (same folders, names and sizes)
// created with their content in one write each, no temp file, rename or
// serial check, on as many cores. Reports ms per fleet.
func BenchmarkFloorCreateFiles(b *testing.B) {
	benchWriteFleet(b, func(out string, bb *Built) error {
		d := filepath.Join(out, bb.Manifest.Host)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, verify.ArchiveFile), bb.Archive, 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, verify.ManifestFile), bb.Envelope, 0o644)
	})
}
