package apply_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/verify"
)

// BenchmarkApply measures the engine alone on a uirig-like bundle (15
// files, about 17 KiB) with the fake driver, beside a plain copy-and-fsync
// of the same files in the same run. BenchmarkApplySimServerA is the
// figure the target (at most 2x the copy, issue 17) is about.
//
//	go test -run '^$' -bench . ./apply/
func BenchmarkApply(b *testing.B) {
	v1 := mkBundle(1, uirig("v1"))
	b.Run("copy-fsync", func(b *testing.B) {
		root := b.TempDir()
		for i := 0; i < b.N; i++ {
			copyFsync(b, root, v1)
		}
	})
	b.Run("copy-fsync-dirs", func(b *testing.B) {
		root := b.TempDir()
		for i := 0; i < b.N; i++ {
			copyFsync(b, root, v1)
			syncDirs(b, root, v1)
		}
	})
	// Every file changes at every serial: the whole bundle is backed up,
	// journalled, installed and kept as a generation.
	b.Run("apply-all-changed", func(b *testing.B) {
		e := newEnv(b)
		bs := []*verify.Bundle{v1, mkBundle(2, uirig("v2"))}
		for i := 0; i < b.N; i++ {
			src := bs[i%2]
			nb := *src
			nb.Manifest.Serial = uint64(i + 1)
			if _, err := e.eng.Apply(ctx, &nb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("apply-one-changed", func(b *testing.B) {
		e := newEnv(b)
		bs := []*verify.Bundle{v1, mkBundle(2, with(uirig("v1"), "/etc/pf.conf", "pass all\n"))}
		for i := 0; i < b.N; i++ {
			nb := *bs[i%2]
			nb.Manifest.Serial = uint64(i + 1)
			if _, err := e.eng.Apply(ctx, &nb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("apply-from-nothing", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnv(b)
			b.StartTimer()
			if _, err := e.eng.Apply(ctx, v1); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = apply.OpAdd
}

// copyFsync writes every file of bn under root and fsyncs each: the
// baseline any installer must pay.
func copyFsync(b *testing.B, root string, bn *verify.Bundle) {
	for _, f := range bn.Manifest.Files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fh.Write(bn.Files[f.Path]); err != nil {
			b.Fatal(err)
		}
		if err := fh.Sync(); err != nil {
			b.Fatal(err)
		}
		fh.Close()
	}
}

func syncDirs(b *testing.B, root string, bn *verify.Bundle) {
	seen := map[string]bool{}
	for _, f := range bn.Manifest.Files {
		d := filepath.Dir(filepath.Join(root, f.Path))
		if seen[d] {
			continue
		}
		seen[d] = true
		fh, err := os.Open(d)
		if err != nil {
			b.Fatal(err)
		}
		fh.Sync()
		fh.Close()
	}
}

// noRestarts is the sim driver with activation left out: what the engine
// does around the driver (stage, sim pre-check, backup, journal, install,
// generation, commit) is measured, not jail or service restarts.
type noRestarts struct{ apply.Driver }

func (noRestarts) Activate(context.Context, verify.Unit) error   { return nil }
func (noRestarts) Deactivate(context.Context, verify.Unit) error { return nil }

// BenchmarkApplySimServerA applies the real uirig serverA bundle (20
// files) on the sim driver without restarts, every file changed at every
// serial, beside a copy-and-fsync of the same files in the same run.
// Target: at most 2x the copy (issue 17; bench.sh prints the ratio).
func BenchmarkApplySimServerA(b *testing.B) {
	hr := renderUIRig(b)["serverA"]
	v1 := renderBundle(hr, 1)
	v1.Manifest.Health = nil // the checks need the restarts left out
	// A host rc.conf change waits for a reboot, which is left out like
	// the restarts: every serial here commits.
	for i, f := range v1.Manifest.Files {
		if f.Unit == string(verify.UnitRebootRequired) {
			v1.Manifest.Files[i].Unit = string(verify.UnitNone)
		}
	}
	v2 := v1
	for _, f := range hr.Files {
		v2 = edit(b, v2, 1, f.Path, func(s string) string { return s + "# v2\n" })
	}
	b.Run("copy-fsync", func(b *testing.B) {
		root := b.TempDir()
		for b.Loop() {
			copyFsync(b, root, v1)
		}
	})
	b.Run("apply-sim", func(b *testing.B) {
		dir := b.TempDir()
		root := filepath.Join(dir, "root")
		if err := topotest.WriteSecrets(root, hr.Secrets); err != nil {
			b.Fatal(err)
		}
		drv, err := apply.NewDriver("sim", apply.DriverOptions{Root: root, Logger: discard})
		if err != nil {
			b.Fatal(err)
		}
		eng, err := apply.New(apply.Config{Root: root, StateDir: filepath.Join(dir, "state"), Driver: noRestarts{drv},
			HealthTimeout: time.Second, Logger: discard, GitCheck: func(context.Context) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
		bs := []*verify.Bundle{v1, v2}
		i := 0
		for b.Loop() {
			nb := *bs[i%2]
			nb.Manifest.Serial = uint64(i + 1)
			i++
			if _, err := eng.Apply(ctx, &nb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
