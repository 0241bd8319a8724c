package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// genFleet is the uirig example grown to n hosts: the same role, hosts
// paired as peers, each with its own addresses and its own rollout wave
// (hosts serving one name must not all roll out at once).
func genFleet(t testing.TB, n int) *topology.Repo {
	t.Helper()
	repo, err := topology.LoadFS(genFleetFS(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func genFleetFS(t testing.TB, n int) fs.FS {
	t.Helper()
	src := os.DirFS("../../testdata/infra/uirig")
	fsys := fstest.MapFS{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, p)
		fsys[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	top := string(fsys[topology.TopologyFile].Data)
	cut := strings.Index(top, "\nhosts:\n")
	if cut < 0 {
		t.Fatal("uirig topology has no hosts section")
	}
	var b strings.Builder
	b.WriteString(top[:cut])
	b.WriteString("\nhosts:\n")
	for i := range n {
		peer := i ^ 1
		fmt.Fprintf(&b, `  h%04d:
    role: uirig
    peer: h%04d
    wave: %dm
    nics:
      xnic: {driver: igb0}
      inic: {driver: igb1}
    addrs:
      xnic: 203.0.%d.%d/16
      inic: 10.%d.%d.10/16
      inode_b: 10.%d.%d.30/16
      ipg_b: 10.%d.%d.40/16
`, i, peer, i, 113+i/250, 2+i%250, 56+i/250, i%250, 56+i/250, i%250, 56+i/250, i%250)
	}
	fsys[topology.TopologyFile] = &fstest.MapFile{Data: []byte(b.String()), Mode: 0o644}
	return fsys
}

func TestGenFleet(t *testing.T) {
	repo := genFleet(t, 4)
	if got := len(repo.Hosts()); got != 4 {
		t.Fatalf("%d hosts", got)
	}
}

// BenchmarkBuildSignFleet1000 is "bundler build --all" of a generated
// 1,000-host topology in memory, as the CLI's runBuild and buildHost do:
// load and render it on every core, each host packed as it renders
// (Packer), then build and sign every host's bundle on every core. The
// CLI's disk work per host (the serial check in --out, writing the bundle) is
// BenchmarkWriteFleet1000, beside its floor: it is the kernel's file
// creation, which no build can make cheaper than BenchmarkFloorCreateFiles
// and which the zstd+sign floor does not contain. Target >= 4,000 hosts/s.
func BenchmarkBuildSignFleet1000(b *testing.B) {
	// One untimed fleet first: the figure is the steady state, as the
	// floor's is. The first fleet of a process also pays for its fresh
	// heap (first-touch page faults: about twice the time on the CI
	// VM); BenchmarkBuildSignFirstFleet1000 measures that one alone.
	benchFleet(b, true)
}

// BenchmarkBuildSignFirstFleet1000 is BenchmarkBuildSignFleet1000 without
// the warm-up: run alone with -benchtime 1x, it is the first fleet of a
// fresh process, what one "bundler build --all" does (bench.sh runs it so,
// three times, and prints the median).
func BenchmarkBuildSignFirstFleet1000(b *testing.B) { benchFleet(b, false) }

// benchFleet times buildFleet of the generated 1,000-host fleet, after
// one untimed fleet if warm.
func benchFleet(b *testing.B, warm bool) {
	fsys := genFleetFS(b, 1000)
	s, err := GenerateSigner(ECDSA)
	if err != nil {
		b.Fatal(err)
	}
	defer BatchGC()() // as "bundler build" runs
	if warm {
		if _, err := buildFleet(fsys, s); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := buildFleet(fsys, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "hosts/s")
}

// buildFleet loads fsys, packing each host as it renders, and builds and
// signs every host's bundle on every core (ForEach), in host order.
func buildFleet(fsys fs.FS, s *Signer) ([]*Built, error) {
	packer := NewPacker()
	repo, err := topology.LoadFSWith(fsys, topology.Options{Rendered: packer.Rendered})
	if err != nil {
		return nil, err
	}
	hosts := repo.Hosts()
	built := make([]*Built, len(hosts))
	return built, errors.Join(ForEach(len(hosts), func(i int) error {
		p, err := packer.Packed(repo, hosts[i])
		if err != nil {
			return err
		}
		bb, err := p.Build(Meta{Serial: 1, Created: now})
		if err != nil {
			return err
		}
		built[i] = bb
		return bb.Sign(s)
	})...)
}

// BenchmarkWriteFleet1000 writes 1,000 built bundles into a new bundles
// folder as "bundler build --all" does, on every core: per host the check
// that --out holds no bundle with the same or a higher serial, then
// Built.Write (host folder, archive then manifest, each a temp file
// renamed into place). Reported in ms per fleet, beside
// BenchmarkFloorCreateFiles.
func BenchmarkWriteFleet1000(b *testing.B) {
	benchWriteFleet(b, func(out string, bb *Built) error {
		host := bb.Manifest.Host
		if have, err := PreviousSerial(out, host); err != nil || have >= bb.Manifest.Serial {
			return fmt.Errorf("%s: serial in --out %d: %v", host, have, err)
		}
		_, err := bb.Write(out)
		return err
	})
}

// benchWriteFleet builds the 1,000-host fleet once, then times write of
// every bundle into a new folder each run (new files, as a fresh --out),
// on every core. Reports ms per fleet.
func benchWriteFleet(b *testing.B, write func(out string, bb *Built) error) {
	s, err := GenerateSigner(ECDSA)
	if err != nil {
		b.Fatal(err)
	}
	built, err := buildFleet(genFleetFS(b, 1000), s)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	run := 0
	for b.Loop() {
		out := filepath.Join(dir, strconv.Itoa(run))
		run++
		if err := os.Mkdir(out, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := errors.Join(ForEach(len(built), func(i int) error { return write(out, built[i]) })...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms")
}

// BenchmarkVerifyServerA verifies the real uirig serverA bundle as the
// agent does (target <= 2 ms) and reports its size.
func BenchmarkVerifyServerA(b *testing.B) {
	repo, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Render("serverA")
	if err != nil {
		b.Fatal(err)
	}
	s, _ := GenerateSigner(ECDSA)
	bb, err := Build(r, Meta{Serial: 2, Created: now})
	if err != nil {
		b.Fatal(err)
	}
	if err := bb.Sign(s); err != nil {
		b.Fatal(err)
	}
	o := opts("serverA", s)
	o.LastSerial = 1
	o.Paths = r.Paths // serverA's agent also allows node_j's rc.d (agent_roots)
	b.ReportMetric(float64(len(bb.Archive)), "archive-bytes")
	b.ReportMetric(float64(len(bb.Envelope)), "manifest-bytes")
	for b.Loop() {
		if _, err := verify.Verify(bb.Envelope, bytes.NewReader(bb.Archive), o); err != nil {
			b.Fatal(err)
		}
	}
}
