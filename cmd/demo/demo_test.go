package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/cmd/internal/simfleet"
)

// TestEndToEnd runs the demo's scenario with assertions: real binaries,
// a real git server on loopback, two agents on the sim driver with real
// spiped tunnels between their database jails.
func TestEndToEnd(t *testing.T) {
	applytest.NeedSpiped(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../rigger-sim")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var narration bytes.Buffer
	d := &Demo{
		Bin: bin, Infra: "../../testdata/infra/uirig", Work: t.TempDir(), Out: &narration,
		// WaveB outlasts a release (check, build, publish) on a busy machine.
		WaveB: 10 * time.Second, BakeB: 2 * time.Second, HealthTimeout: 20 * time.Second,
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("narration:\n%s", narration.String())
			for _, h := range Hosts {
				t.Logf("%s agent log:\n%s", h, d.Log(h))
			}
		}
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(d.Setup(ctx))
	s1, err := d.Release(ctx)
	must(err)
	must(d.StartAgents(ctx))
	for _, h := range Hosts {
		st, err := d.WaitFor(ctx, h, "serial 1 reboot-required", time.Minute, simfleet.RebootRequired(uint64(s1)))
		must(err)
		if st.State != agent.StateRebootRequired || st.Current != nil {
			t.Errorf("%s: before the boot: state %s, current %+v; want reboot-required and nothing committed", h, st.State, st.Current)
		}
	}
	for _, h := range Hosts {
		must(d.Boot(h))
	}
	for _, h := range Hosts {
		st, err := d.WaitFor(ctx, h, "serial 1", time.Minute, Applied(uint64(s1)))
		must(err)
		if len(st.Current.Signers) != 1 {
			t.Errorf("%s: signers = %v, want the CI key", h, st.Current.Signers)
		}
		var tunnels int
		for _, c := range st.Health {
			if c.Kind == "tunnel" {
				tunnels++
			}
		}
		if tunnels < 2 {
			t.Errorf("%s: %d tunnel checks passed, want N2P and PGC", h, tunnels)
		}
		state, err := sim.ReadKernel(d.Root(h))
		must(err)
		for _, j := range []string{"nginx_j", "node_j", "pg_j"} {
			if js, ok := state.Jails[j]; !ok || js == nil {
				t.Errorf("%s: jail %s not running", h, j)
			}
		}
		assertTree(t, d, h)
	}

	// A table file only: pf-table:xpeers is the one unit activated.
	since := time.Now()
	must(d.Change("rollout: gate serverB on serverA", d.GateChange))
	must(d.Change("pf: let the new admin VPN exit in", GoodChange))
	s2, err := d.Release(ctx)
	must(err)
	stA, err := d.WaitFor(ctx, "serverA", "serial 2", time.Minute, Applied(uint64(s2)))
	must(err)
	stB, err := d.WaitFor(ctx, "serverB", "serial 2", time.Minute, Applied(uint64(s2)))
	must(err)
	// serverB's bundle is not_before build time + WaveB (manifest times are
	// whole seconds); serverA's has no wave and is applied on its next poll.
	if stB.Current.AppliedAt.Before(since.Truncate(time.Second).Add(d.WaveB)) || stB.Current.AppliedAt.Before(stA.Current.AppliedAt.Add(d.BakeB)) {
		t.Errorf("change merged at %s, serverA applied at %s, serverB at %s: want serverB after a wave of %s and %s after serverA (bake)",
			since, stA.Current.AppliedAt, stB.Current.AppliedAt, d.WaveB, d.BakeB)
	}
	for _, h := range Hosts {
		if got := Activated(d.Root(h), since); !slices.Equal(got, []string{"pf-table:xpeers"}) {
			t.Errorf("%s: activated %v, want only pf-table:xpeers", h, got)
		}
		assertTree(t, d, h)
	}
	good := map[string]map[string][32]byte{}
	for _, h := range Hosts {
		good[h] = hashTree(t, d.Root(h), "/jails/pg_j/etc/rc.conf", "/etc/pf.conf")
	}

	// A tunnel broken by a key only one side has: serverA rolls back by
	// itself and is healthy again on serial 2; serverB, gated on serverA,
	// never applies it.
	must(d.Change("spiped: rotate the replication key on one side", BadChange))
	s3, err := d.Release(ctx)
	must(err)
	var reason string
	stB, err = d.WaitFor(ctx, "serverB", "gate failed", time.Minute, GateFailed(uint64(s3), &reason))
	must(err)
	if want := fmt.Sprintf("gate failed: serverA rolled back serial %d: ", s3); !strings.HasPrefix(reason, want) || !strings.Contains(reason, "pgc") {
		t.Errorf("serverB gate: %q, want %q and the PGC check", reason, want+"…")
	}
	if stB.Current == nil || stB.Current.Serial != uint64(s2) || stB.RolledBack != nil {
		t.Errorf("serverB after the gate failed: current %+v, rolled back %+v; want serial %d, never tried", stB.Current, stB.RolledBack, s2)
	}
	if got := hashTree(t, d.Root("serverB"), "/jails/pg_j/etc/rc.conf", "/etc/pf.conf"); !mapsEqual(got, good["serverB"]) {
		t.Error("serverB: files changed although its gate failed")
	}
	for _, h := range Hosts[:1] {
		st, err := d.WaitFor(ctx, h, "rollback of serial 3", time.Minute, RolledBack(uint64(s3)))
		must(err)
		if st.Current == nil || st.Current.Serial != uint64(s2) {
			t.Errorf("%s: current = %+v after rollback, want serial %d", h, st.Current, s2)
		}
		if !strings.Contains(st.RolledBack.Reason, "pgc") {
			t.Errorf("%s: rollback reason %q does not name the PGC tunnel check", h, st.RolledBack.Reason)
		}
		if !slices.ContainsFunc(st.Quarantined, func(q agent.Quarantined) bool { return q.Serial == uint64(s3) }) {
			t.Errorf("%s: serial %d not quarantined: %+v", h, s3, st.Quarantined)
		}
		if got := hashTree(t, d.Root(h), "/jails/pg_j/etc/rc.conf", "/etc/pf.conf"); !mapsEqual(got, good[h]) {
			t.Errorf("%s: files after rollback differ from serial 2", h)
		}
		if !slices.ContainsFunc(st.RolledBack.Health, func(c agent.Health) bool { return c.Kind == "tunnel" && !c.OK }) {
			t.Errorf("%s: rolled_back.health %+v names no failed tunnel check", h, st.RolledBack.Health)
		}
		if _, err := d.WaitFor(ctx, h, "healthy serial 2 again", time.Minute, Healthy(uint64(s2))); err != nil {
			t.Error(err)
		}
	}

	// git revert: a newer serial with the older content.
	must(d.Revert())
	s4, err := d.Release(ctx)
	must(err)
	applied := map[string]time.Time{}
	for _, h := range Hosts {
		st, err := d.WaitFor(ctx, h, "serial 4", time.Minute, Applied(uint64(s4)))
		must(err)
		applied[h] = st.Current.AppliedAt
		if got := hashTree(t, d.Root(h), "/jails/pg_j/etc/rc.conf", "/etc/pf.conf"); !mapsEqual(got, good[h]) {
			t.Errorf("%s: files after the revert differ from serial 2", h)
		}
		assertTree(t, d, h)
	}
	if applied["serverB"].Before(applied["serverA"].Add(d.BakeB)) {
		t.Errorf("revert: serverA applied at %s, serverB at %s: want serverB at least %s later", applied["serverA"], applied["serverB"], d.BakeB)
	}
	var fleet bytes.Buffer
	d.Out = &fleet
	if err := d.PrintFleet(ctx); err != nil {
		t.Errorf("bundler status: %v\n%s", err, fleet.String())
	}
	for _, h := range Hosts {
		if !regexp.MustCompile(`(?m)^  ` + h + ` +4 +4 .* applied +healthy .* ok$`).MatchString(fleet.String()) {
			t.Errorf("bundler status has no healthy line for %s on serial 4:\n%s", h, fleet.String())
		}
	}
}

// assertTree checks that every file of the host's render at the repo's
// current commit is on disk under the host's root, byte for byte.
func assertTree(t *testing.T, d *Demo, host string) {
	t.Helper()
	repo, err := topology.Load(d.Repo())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Render(host)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Files {
		got, err := os.ReadFile(filepath.Join(d.Root(host), f.Path))
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		if !bytes.Equal(got, f.Content) {
			t.Errorf("%s: %s differs from the render", host, f.Path)
		}
	}
}

func hashTree(t *testing.T, root string, paths ...string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		m[p] = sha256.Sum256(b)
	}
	return m
}

func mapsEqual(a, b map[string][32]byte) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
