package apply_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
	"github.com/rigger-bsd/rigger/apply/live"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/verify"
)

// simLiveBundles writes serverA's serial 1 and a serial 2 made from a
// uirig that adds a fourth jail (web2_j, its epair on xbridge, a spiped
// pipe), an alias on xnic and an MTU: both manifests describe the host,
// so serial 2 is applied with live steps. Both renders share one loopback
// block. It returns the live plan serial 2 takes.
func simLiveBundles(t *testing.T, dir string) *live.Plan {
	t.Helper()
	v2 := filepath.Join(t.TempDir(), "uirig2")
	if err := os.CopyFS(v2, os.DirFS("../testdata/infra/uirig")); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(v2, "topology.yaml")
	src, err := os.ReadFile(topo)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, r := range [][2]string{
		{"members: [ngx_a, node_a, pg_a]", "members: [ngx_a, node_a, pg_a, web2_a]"},
		{"      - [ipg_a, ipg_b]\n", "      - [ipg_a, ipg_b]\n      - [web2_a, web2_b]\n"},
		{"      node_pg_b: 10.0.4.40/24\n", "      node_pg_b: 10.0.4.40/24\n      web2_b: 10.0.2.50/24\n"},
		{"        services: [sshd, nginx]\n", "        services: [sshd, nginx]\n      - name: web2_j\n        interfaces: [web2_b]\n        gateway: xbridge\n        services: [sshd]\n        pipes:\n          - {name: W2P, mode: encrypt, source: \"web2_b:5432\", target: \"peer/ipg_b:5433\", probe: pg-ssl}\n"},
		{"      xnic: 203.0.113.10/24\n", "      xnic: [203.0.113.10/24, 203.0.113.11/32]\n"},
		{"      xnic: {}\n", "      xnic: {mtu: 9000}\n"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("uirig topology.yaml: %q not found", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	if err := os.WriteFile(topo, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	d1, d2 := t.TempDir(), t.TempDir()
	m, err := topotest.Loopback("../testdata/infra/uirig", d1)
	if err != nil {
		t.Fatal(err)
	}
	var block byte
	for _, a := range m {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Is4() {
			block = ip.As4()[1]
			break
		}
	}
	if _, err := topotest.LoopbackAt(v2, d2, block); err != nil {
		t.Fatal(err)
	}
	var hrs []*topology.HostRender
	for _, d := range []string{d1, d2} {
		r, err := topology.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		hr, err := r.Render("serverA")
		if err != nil {
			t.Fatal(err)
		}
		hrs = append(hrs, hr)
	}
	for n, hr := range hrs {
		b := renderBundle(hr, uint64(n+1))
		b.Manifest.HostDesc = hr.Desc
		// serverB is not running here: no tunnel checks.
		b.Manifest.Health = slices.DeleteFunc(b.Manifest.Health, func(c verify.Check) bool { return c.Kind == verify.CheckTunnel })
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("b%d.json", n+1)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := live.Compute(hrs[0].Desc, hrs[1].Desc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func simState(t *testing.T, root string) *sim.State {
	t.Helper()
	s, err := sim.ReadState(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKill9SimLive kills a real process applying serial 2 on the sim
// driver before each of its live steps (and once after the commit), then
// recovers in a new engine: the emulated kernel and the files are those
// of serial 1 exactly (or of serial 2 after the commit), with the jails
// that were running untouched, and serial 2 then applies cleanly.
func TestKill9SimLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jails with real spiped processes; skipped with -short")
	}
	applytest.NeedSpiped(t)
	bundles := t.TempDir()
	plan := simLiveBundles(t, bundles)
	if len(plan.Steps) < 6 {
		t.Fatalf("plan %q: want the jail's epair, the alias and the mtu", plan.Lines())
	}
	prepare := func(t *testing.T) (simCrashHost, *sim.State) {
		h := simCrashPrepare(t, bundles)
		if err := topotest.WriteSecrets(h.root, h.bundle(t, 2).Manifest.Secrets); err != nil {
			t.Fatal(err)
		}
		return h, simState(t, h.root)
	}
	ref, _ := prepare(t)
	res, err := ref.engine(t).Apply(ctx, ref.bundle(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Live) != len(plan.Steps) {
		t.Fatalf("serial 2 ran %d live steps, want %d", len(res.Live), len(plan.Steps))
	}
	want2 := simState(t, ref.root)
	sim.Shutdown(ref.root)

	type point struct {
		step      string
		i         int
		committed bool
	}
	var points []point
	for i := range plan.Steps {
		points = append(points, point{apply.HookLive, i, false})
	}
	points = append(points, point{apply.HookHealth, 0, false}, point{apply.HookCommitted, 0, true})
	for _, p := range points {
		t.Run(fmt.Sprintf("%s:%d", p.step, p.i), func(t *testing.T) {
			h, want1 := prepare(t)
			kill9.At(t, kill9.Self("^TestSimCrashChild$",
				crashEnv+"="+strings.Join([]string{h.dir, h.root, h.state, p.step, fmt.Sprint(p.i)}, "|")), crashPoint(p.step, p.i))
			eng := h.engine(t)
			r, err := eng.Recover(ctx)
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			if r == nil || r.RolledBack == p.committed {
				t.Errorf("recovery %+v", r)
			}
			want, serial := want1, uint64(1)
			if p.committed {
				want, serial = want2, 2
			}
			got := simState(t, h.root)
			if p.committed {
				// Another boot and other JIDs than the reference host's.
				got.Booted, got.Jails, want.Jails = want.Booted, nil, nil
			}
			for _, d := range got.Diff(want) {
				t.Errorf("not serial %d after recovery: %s", serial, d)
			}
			if s := currentSerial(t, eng); s != serial {
				t.Errorf("current %d, want %d", s, serial)
			}
			if _, err := os.Stat(filepath.Join(h.state, live.JournalName)); err == nil {
				t.Error("live journal left after recovery")
			}
			assertClean(t, h.state)
			if !p.committed && p.i == len(plan.Steps)/2 {
				if _, err := eng.Apply(ctx, h.bundle(t, 2)); err != nil {
					t.Fatalf("serial 2 after recovery: %v", err)
				}
				if d := simState(t, h.root).Files; !maps.Equal(d, want2.Files) {
					t.Errorf("re-applied serial 2: files differ from the reference")
				}
			}
		})
	}
}
