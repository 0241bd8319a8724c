package apply_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/applytest/kill9"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/verify"
)

// simCrashHost is serverA of uirig on the sim driver, with its bundles in
// DIR/b1.json and DIR/b2.json so a re-executed child applies the very
// same bytes (the loopback addresses are random per render).
type simCrashHost struct {
	dir, root, state string
}

func (h simCrashHost) engine(t testing.TB) *apply.Engine {
	t.Helper()
	drv, err := apply.NewDriver("sim", apply.DriverOptions{Root: h.root, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := apply.New(apply.Config{Root: h.root, StateDir: h.state, Driver: drv,
		HealthTimeout: 10 * time.Second, Logger: discard,
		GitCheck: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func (h simCrashHost) bundle(t testing.TB, n int) *verify.Bundle {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("b%d.json", n)))
	if err != nil {
		t.Fatal(err)
	}
	var b verify.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// hostFiles is the host's files without the sim's own run state.
func (h simCrashHost) hostFiles(t testing.TB) map[string]entry {
	s := snapshot(t, h.root)
	for k := range s {
		if k == "var" || strings.HasPrefix(k, "var/") {
			delete(s, k)
		}
	}
	return s
}

// simCrashBundles writes serverA's serial 1 and a serial 2 that changes
// pf.conf and pg_j's rc.conf (units pf and jail:pg_j). The tunnel checks
// are left out: serverB is not running here.
func simCrashBundles(t *testing.T, dir string) {
	hr := renderUIRig(t)["serverA"]
	b1 := renderBundle(hr, 1)
	b1.Manifest.Health = slices.DeleteFunc(b1.Manifest.Health, func(c verify.Check) bool { return c.Kind == verify.CheckTunnel })
	b2 := edit(t, b1, 2, "/etc/pf.conf", func(s string) string { return s + "# v2\n" })
	b2 = edit(t, b2, 2, "/jails/pg_j/etc/rc.conf", func(s string) string { return s + "# v2\n" })
	for n, b := range []*verify.Bundle{b1, b2} {
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("b%d.json", n+1)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func simCrashPrepare(t *testing.T, bundles string) simCrashHost {
	dir := t.TempDir()
	h := simCrashHost{dir: bundles, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	sim.ShutdownOnCleanup(t, h.root)
	b1 := h.bundle(t, 1)
	if err := topotest.WriteSecrets(h.root, b1.Manifest.Secrets); err != nil {
		t.Fatal(err)
	}
	if _, err := applyBooting(h.engine(t), h.root, b1); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSimCrashChild is the process that gets killed; see TestKill9Sim.
func TestSimCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("helper process of TestKill9Sim, runs only when re-executed by it")
	}
	var h simCrashHost
	var step string
	var at int
	parts := strings.Split(spec, "|")
	h.dir, h.root, h.state, step = parts[0], parts[1], parts[2], parts[3]
	fmt.Sscan(parts[4], &at)
	eng := h.engine(t)
	apply.SetHook(eng, func(s string, i int) error {
		if s == step && i == at {
			kill9.Pause(crashPoint(s, i))
		}
		return nil
	})
	_, err := eng.Apply(ctx, h.bundle(t, 2))
	t.Fatalf("not killed at %s:%d; apply returned %v", step, at, err)
}

// TestKill9Sim kills a real process applying serial 2 on the sim driver
// (real jail processes, real spiped) at each step of the install, then
// recovers in a new engine: the host is on exactly one serial, byte for
// byte, with every jail running, and serial 2 applies cleanly after.
func TestKill9Sim(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jails with real spiped processes; skipped with -short")
	}
	applytest.NeedSpiped(t)
	bundles := t.TempDir()
	simCrashBundles(t, bundles)
	ref := simCrashPrepare(t, bundles)
	want1 := ref.hostFiles(t)
	if _, err := ref.engine(t).Apply(ctx, ref.bundle(t, 2)); err != nil {
		t.Fatal(err)
	}
	want2 := ref.hostFiles(t)
	sim.Shutdown(ref.root)

	type point struct {
		step      string
		i         int
		committed bool
	}
	points := []point{
		{apply.HookJournaled, 0, false}, {apply.HookInstall, 0, false}, {apply.HookInstall, 1, false},
		{apply.HookInstalled, 0, false}, {apply.HookActivate, 0, false}, {apply.HookActivate, 1, false},
		{apply.HookHealth, 0, false}, {apply.HookCommitting, 0, false}, {apply.HookCommitted, 0, true},
	}
	for _, p := range points {
		t.Run(fmt.Sprintf("%s:%d", p.step, p.i), func(t *testing.T) {
			h := simCrashPrepare(t, bundles)
			kill9.At(t, kill9.Self("^TestSimCrashChild$",
				crashEnv+"="+strings.Join([]string{h.dir, h.root, h.state, p.step, fmt.Sprint(p.i)}, "|")), crashPoint(p.step, p.i))

			eng := h.engine(t)
			r, err := eng.Recover(ctx)
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			want, serial := want1, uint64(1)
			if p.committed {
				want, serial = want2, 2
			}
			if r == nil || r.RolledBack == p.committed {
				t.Errorf("recovery %+v", r)
			}
			if d := diffSnap(want, h.hostFiles(t)); d != "" {
				t.Fatalf("host is not on serial %d:\n%s", serial, d)
			}
			if s := currentSerial(t, eng); s != serial {
				t.Errorf("current %d, want %d", s, serial)
			}
			assertClean(t, h.state)
			st, err := sim.ReadKernel(h.root)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range []string{"pg_j", "node_j", "nginx_j"} {
				if st.Jails[j] == nil {
					t.Errorf("jail %s not running after recovery", j)
				}
			}
			if !p.committed {
				if _, err := eng.Apply(ctx, h.bundle(t, 2)); err != nil {
					t.Fatalf("serial 2 after recovery: %v", err)
				}
				if d := diffSnap(want2, h.hostFiles(t)); d != "" {
					t.Errorf("re-apply differs:\n%s", d)
				}
			}
		})
	}
}
