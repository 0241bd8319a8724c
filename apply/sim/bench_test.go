package sim

import (
	"context"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// BenchmarkPrecheckUirig is the sim's share of an apply of the uirig
// serverA bundle: pf.conf with its tables, jail.conf and its includes,
// four rc.conf files (each through dash -n).
func BenchmarkPrecheckUirig(b *testing.B) {
	repo, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		b.Fatal(err)
	}
	hr, err := repo.Render("serverA")
	if err != nil {
		b.Fatal(err)
	}
	stage := b.TempDir()
	var files []verify.File
	for _, f := range hr.Files {
		full := hostPath(stage, f.Path)
		mkdirWrite(b, full, f.Content)
		files = append(files, verify.File{Path: f.Path, Unit: f.Unit})
	}
	d, err := New(apply.DriverOptions{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := d.Precheck(ctx, stage, files); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJailRestart restarts pg_j: stop its spiped pipes and postgres
// stand-in, start them again and wait until they listen.
func BenchmarkJailRestart(b *testing.B) {
	if _, err := lookSpiped(); err != nil {
		b.Fatal(err)
	}
	ipA, ipB := pair()
	root := b.TempDir()
	copyTreeTB(b, "testdata/host", root)
	mkdirWrite(b, hostPath(root, "/jails/pg_j/etc/ip_ipg_b"), []byte(ipA+"\n"))
	mkdirWrite(b, hostPath(root, "/jails/pg_j/etc/ip_peer_ipg_b"), []byte(ipB+"\n"))
	mkdirWrite(b, hostPath(root, "/jails/pg_j/etc/spiped.key"), []byte("0123456789abcdef0123456789abcdef"))
	d, err := New(apply.DriverOptions{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	ShutdownOnCleanup(b, root)
	u := verify.Unit{Kind: verify.UnitJail, Jail: "pg_j"}
	for b.Loop() {
		if err := d.Activate(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
}
