package sim

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// loopback moves uirig's addresses into 127/8, all local on Linux: the
// network between the hosts (10.0.56.0/24) to 127.R.56.0/24 on both, each
// host's jail-private nets (10.0.2-4.0/24, the same on both servers) to
// 127.(R+1+host).x.y. R is random per test so runs do not collide. Until
// the topology's own rewrite (topotest.Loopback) is used here, only the
// files the sim starts jails from are rewritten.
func loopback(r, host int) *strings.Replacer {
	return strings.NewReplacer("10.0.56.", fmt.Sprintf("127.%d.56.", r), "10.0.", fmt.Sprintf("127.%d.", r+1+host))
}

// TestUirigRendered applies the real rendered uirig bundles of serverA and
// serverB to two sim hosts and runs their manifests' health checks: every
// jail runs, and both tunnels complete a PostgreSQL exchange across hosts.
func TestUirigRendered(t *testing.T) {
	needSpiped(t)
	repo, err := topology.Load("../../testdata/infra/uirig")
	if err != nil {
		t.Fatal(err)
	}
	r := 64 + mrand.IntN(180)
	key := newKey(t)
	ctx := context.Background()
	type host struct {
		h      *simHost
		checks []verify.Check
		lo     *strings.Replacer
	}
	var hosts []host
	for i, name := range []string{"serverA", "serverB"} {
		hr, err := repo.Render(name)
		if err != nil {
			t.Fatal(err)
		}
		root, stage := t.TempDir(), t.TempDir()
		var files []verify.File
		for _, f := range hr.Files {
			c := f.Content
			if strings.Contains(f.Path, "rc.conf") || strings.Contains(f.Path, "jail.conf") {
				c = []byte(loopback(r, i).Replace(string(c)))
			}
			for _, dir := range []string{root, stage} {
				write(t, dir, f.Path, string(c))
			}
			files = append(files, verify.File{Path: f.Path, Unit: f.Unit})
		}
		for _, s := range hr.Secrets {
			write(t, root, s, string(key))
		}
		d, err := New(apply.DriverOptions{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		ShutdownOnCleanup(t, root)
		if err := d.Precheck(ctx, stage, files); err != nil {
			t.Fatalf("%s: pre-check of the rendered bundle: %v", name, err)
		}
		seen := map[string]bool{}
		for _, f := range files {
			u, err := verify.ParseUnit(f.Unit)
			if err != nil {
				t.Fatal(err)
			}
			if seen[u.String()] || u.Kind == verify.UnitJailService {
				continue // the jail's start covers its services
			}
			seen[u.String()] = true
			if err := d.Activate(ctx, u); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		hosts = append(hosts, host{&simHost{root: root, drv: d}, hr.Health, loopback(r, i)})
	}
	ran := map[verify.CheckKind]int{}
	for _, h := range hosts {
		for _, c := range h.checks {
			ran[c.Kind]++
			var err error
			switch c.Kind {
			case verify.CheckJail:
				var ok bool
				if ok, err = h.h.drv.JailRunning(ctx, c.Jail); err == nil && !ok {
					err = fmt.Errorf("not running")
				}
			case verify.CheckPF:
				var ok bool
				if ok, err = h.h.drv.PFEnabled(ctx); err == nil && !ok {
					err = fmt.Errorf("pf not enabled")
				}
			case verify.CheckTunnel:
				err = pgProbe(h.lo.Replace(c.Addr))
			default:
				continue
			}
			if err != nil {
				t.Errorf("%s: health %s: %v", filepath.Base(h.h.root), c.Name, err)
			}
		}
	}
	if ran[verify.CheckTunnel] < 4 || ran[verify.CheckJail] < 6 || ran[verify.CheckPF] < 2 {
		t.Errorf("health checks run: %v, want >= 4 tunnels, 6 jails, 2 pf", ran)
	}
	if t.Failed() {
		for _, h := range hosts {
			logs, _ := filepath.Glob(filepath.Join(h.h.root, StateDir, "log", "*"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	}
}
