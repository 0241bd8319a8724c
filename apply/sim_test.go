package apply_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/sim"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/bundler/topology/topotest"
	"github.com/rigger-bsd/rigger/verify"
)

func TestMain(m *testing.M) {
	sim.ServiceMain() // the sim's stand-in services re-execute this binary
	os.Exit(m.Run())
}

// renderUIRig renders the uirig example moved onto loopback addresses.
func renderUIRig(t testing.TB) map[string]*topology.HostRender {
	t.Helper()
	dst := t.TempDir()
	if _, err := topotest.Loopback("../testdata/infra/uirig", dst); err != nil {
		t.Fatal(err)
	}
	r, err := topology.Load(dst)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*topology.HostRender{}
	for _, h := range r.Hosts() {
		if out[h], err = r.Render(h); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// renderBundle makes the verified bundle the agent would get for hr.
func renderBundle(hr *topology.HostRender, serial uint64) *verify.Bundle {
	b := &verify.Bundle{
		Manifest: verify.Manifest{Schema: verify.Schema, Host: hr.Host, Serial: serial, Health: hr.Health,
			Secrets: hr.Secrets, NetifRestart: hr.NetifRestart},
		Files:   map[string][]byte{},
		Signers: []string{"test-key"},
	}
	for _, f := range hr.Files {
		b.Manifest.Files = append(b.Manifest.Files, verify.File{Path: f.Path, Mode: f.Mode, Owner: f.Owner, Group: f.Group,
			SHA256: hexsum(f.Content), Size: int64(len(f.Content)), Unit: f.Unit})
		b.Files[f.Path] = f.Content
	}
	return b
}

// edit returns a copy of b with serial and path's contents changed by fn.
func edit(t testing.TB, b *verify.Bundle, serial uint64, path string, fn func(string) string) *verify.Bundle {
	t.Helper()
	nb := *b
	nb.Manifest.Serial = serial
	nb.Manifest.Files = append([]verify.File(nil), b.Manifest.Files...)
	nb.Files = map[string][]byte{}
	for k, v := range b.Files {
		nb.Files[k] = v
	}
	old := string(b.Files[path])
	data := fn(old)
	if data == old {
		t.Fatalf("edit of %s changed nothing", path)
	}
	nb.Files[path] = []byte(data)
	for i := range nb.Manifest.Files {
		if nb.Manifest.Files[i].Path == path {
			nb.Manifest.Files[i].SHA256, nb.Manifest.Files[i].Size = hexsum([]byte(data)), int64(len(data))
		}
	}
	return &nb
}

type simHost struct {
	root string
	eng  *apply.Engine
}

func newSimHost(t *testing.T, hr *topology.HostRender) *simHost {
	t.Helper()
	dir := t.TempDir()
	h := &simHost{root: filepath.Join(dir, "root")}
	if err := topotest.WriteSecrets(h.root, hr.Secrets); err != nil {
		t.Fatal(err)
	}
	drv, err := apply.NewDriver("sim", apply.DriverOptions{Root: h.root, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	sim.ShutdownOnCleanup(t, h.root)
	h.eng, err = apply.New(apply.Config{Root: h.root, StateDir: filepath.Join(dir, "state"), Driver: drv,
		HealthTimeout: 15 * time.Second, Logger: discard,
		GitCheck: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// applyBooting applies b; when it needs a reboot (a first bundle, a host
// rc.conf change) the sim host at root is booted, as an operator would,
// and the engine resumes: health check, then commit or rollback.
func applyBooting(eng *apply.Engine, root string, b *verify.Bundle) (*apply.Result, error) {
	res, err := eng.Apply(ctx, b)
	var rr *apply.RebootRequiredError
	if !errors.As(err, &rr) {
		return res, err
	}
	if out, err := sim.Boot(root); err != nil {
		return nil, fmt.Errorf("boot: %w\n%s", err, out)
	}
	return eng.Resume(ctx)
}

// hostFiles snapshots the host's files, without the sim's own run state.
func (h *simHost) hostFiles(t *testing.T) map[string]entry {
	s := snapshot(t, h.root)
	for k := range s {
		if k == "var" || strings.HasPrefix(k, "var/") {
			delete(s, k)
		}
	}
	return s
}

func allOK(rs []apply.HealthResult) bool {
	for _, r := range rs {
		if !r.OK {
			return false
		}
	}
	return len(rs) > 0
}

func unitNames(us []verify.Unit) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// TestSimUIRig applies uirig's serverA and serverB from nothing on the sim
// driver (real spiped processes between them on loopback), then changes
// serverA and checks what is activated, what is refused and what is
// rolled back.
func TestSimUIRig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jails with real spiped processes; skipped with -short")
	}
	applytest.NeedSpiped(t)
	hrs := renderUIRig(t)
	hosts := map[string]*simHost{}
	bundles := map[string]*verify.Bundle{}
	for _, name := range []string{"serverA", "serverB"} {
		hosts[name] = newSimHost(t, hrs[name])
		bundles[name] = renderBundle(hrs[name], 1)
	}

	// From nothing. Each host's tunnels end on the other, so they apply
	// at once, as a fleet does; health checks retry until both are up.
	var wg sync.WaitGroup
	results := map[string]*apply.Result{}
	errs := map[string]error{}
	var mu sync.Mutex
	for name, h := range hosts {
		wg.Go(func() {
			res, err := applyBooting(h.eng, h.root, bundles[name])
			mu.Lock()
			results[name], errs[name] = res, err
			mu.Unlock()
		})
	}
	wg.Wait()
	for name := range hosts {
		if errs[name] != nil {
			t.Fatalf("%s from nothing: %v", name, errs[name])
		}
		res := results[name]
		if !allOK(res.Health) || len(res.Health) != 8 || !res.RebootRequired {
			t.Errorf("%s: health %+v, reboot %v", name, res.Health, res.RebootRequired)
		}
		st, err := sim.ReadKernel(hosts[name].root)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range []string{"pg_j", "node_j", "nginx_j"} {
			if st.Jails[j] == nil {
				t.Errorf("%s: jail %s not running", name, j)
			}
		}
		assertFiles(t, hosts[name].root, bundles[name])
	}
	a, b1 := hosts["serverA"], bundles["serverA"]
	serial := uint64(1)
	next := func() uint64 { serial++; return serial }

	t.Run("pf.conf change activates pf only", func(t *testing.T) {
		nb := edit(t, b1, next(), "/etc/pf.conf", func(s string) string { return s + "# reviewed\n" })
		res, err := a.eng.Apply(ctx, nb)
		if err != nil {
			t.Fatal(err)
		}
		if got := unitNames(res.Units); !eq(got, []string{"pf"}) {
			t.Errorf("units %v", got)
		}
		b1 = nb
	})
	t.Run("pg_j rc.conf change restarts pg_j only", func(t *testing.T) {
		before, _ := sim.ReadKernel(a.root)
		nb := edit(t, b1, next(), "/jails/pg_j/etc/rc.conf", func(s string) string { return s + "# reviewed\n" })
		res, err := a.eng.Apply(ctx, nb)
		if err != nil {
			t.Fatal(err)
		}
		if got := unitNames(res.Units); !eq(got, []string{"jail:pg_j"}) {
			t.Errorf("units %v", got)
		}
		after, _ := sim.ReadKernel(a.root)
		if after.Jails["pg_j"].JID == before.Jails["pg_j"].JID || after.Jails["node_j"].JID != before.Jails["node_j"].JID {
			t.Errorf("jids pg_j %d→%d node_j %d→%d: want pg_j restarted only", before.Jails["pg_j"].JID, after.Jails["pg_j"].JID,
				before.Jails["node_j"].JID, after.Jails["node_j"].JID)
		}
		if !allOK(res.Health) {
			t.Errorf("health %+v", res.Health)
		}
		b1 = nb
	})

	// rolledBack applies nb to serverA and wants it rolled back with the
	// files as before and every check passing again.
	rolledBack := func(t *testing.T, nb *verify.Bundle, failing string) *apply.RolledBackError {
		t.Helper()
		before := a.hostFiles(t)
		_, err := a.eng.Apply(ctx, nb)
		var rb *apply.RolledBackError
		if !errors.As(err, &rb) {
			t.Fatalf("err %v, want *RolledBackError", err)
		}
		if d := diffSnap(before, a.hostFiles(t)); d != "" {
			t.Errorf("host files differ from before:\n%s", d)
		}
		if !allOK(rb.Recheck) {
			t.Errorf("not healthy again after the rollback: %+v", rb.Recheck)
		}
		if failing != "" {
			found := false
			for _, h := range rb.Health {
				if h.Name == failing && !h.OK {
					found = true
				}
			}
			if !found || !strings.Contains(rb.Reason.Error(), failing) {
				t.Errorf("reason %v, health %+v: want %s failed", rb.Reason, rb.Health, failing)
			}
		}
		if g, _ := a.eng.Current(); g.Serial != b1.Manifest.Serial {
			t.Errorf("current %d, want %d", g.Serial, b1.Manifest.Serial)
		}
		return rb
	}
	t.Run("broken tunnel port is rolled back", func(t *testing.T) {
		nb := edit(t, b1, next(), "/jails/pg_j/etc/rc.conf", func(s string) string {
			i := strings.Index(s, `spiped_pipe_PGC_target=`)
			return s[:i] + strings.Replace(s[i:], `:5434"`, `:5499"`, 1)
		})
		rolledBack(t, nb, "pgc-to-serverB")
	})
	t.Run("broken tunnel key is rolled back", func(t *testing.T) {
		// A key that exists but is not the peer's: spiped accepts the
		// connection and resets it.
		if err := os.WriteFile(filepath.Join(a.root, "jails/pg_j/etc/other.key"), []byte("not the shared key"), 0o600); err != nil {
			t.Fatal(err)
		}
		nb := edit(t, b1, next(), "/jails/pg_j/etc/rc.conf", func(s string) string {
			return strings.Replace(s, `spiped_pipe_PGC_key="/etc/spiped.key"`, `spiped_pipe_PGC_key="/etc/other.key"`, 1)
		})
		rolledBack(t, nb, "pgc-to-serverB")
	})
	t.Run("jail that fails to start is rolled back", func(t *testing.T) {
		nb := edit(t, b1, next(), "/etc/jail.conf.d/pg_j.conf", func(s string) string {
			return strings.Replace(s, "ipg_b;", "ipg_b, bogus_b;", 1)
		})
		rb := rolledBack(t, nb, "")
		if !strings.Contains(rb.Reason.Error(), "activate jail:pg_j") {
			t.Errorf("reason %v", rb.Reason)
		}
	})
	t.Run("write failure mid-install is rolled back", func(t *testing.T) {
		nb := edit(t, b1, next(), "/etc/pf.conf", func(s string) string { return s + "# v-write\n" })
		nb = edit(t, nb, nb.Manifest.Serial, "/jails/pg_j/etc/rc.conf", func(s string) string { return s + "# v-write\n" })
		apply.SetHook(a.eng, func(step string, i int) error {
			if step == apply.HookInstall && i == 1 {
				return errors.New("injected: no space left on device")
			}
			return nil
		})
		defer apply.SetHook(a.eng, nil)
		rb := rolledBack(t, nb, "")
		if !strings.Contains(rb.Reason.Error(), "no space left on device") {
			t.Errorf("reason %v", rb.Reason)
		}
	})
	t.Run("pf syntax error is refused at pre-check", func(t *testing.T) {
		before := a.hostFiles(t)
		nb := edit(t, b1, next(), "/etc/pf.conf", func(s string) string { return s + "pass al\n" })
		_, err := a.eng.Apply(ctx, nb)
		var pe *apply.PrecheckError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "pf.conf") {
			t.Fatalf("err %v, want *PrecheckError naming pf.conf", err)
		}
		if d := diffSnap(before, a.hostFiles(t)); d != "" {
			t.Errorf("host files changed:\n%s", d)
		}
	})
}

// TestSimFirstInstallRolledBack: a host's very first bundle fails its
// health checks (serverA alone: its tunnels' far ends are not there).
// Rolling back leaves the host as it was before Rigger came: no managed
// file, no jail running, and the outcome is a rollback, not degraded.
func TestSimFirstInstallRolledBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jails with real spiped processes; skipped with -short")
	}
	hrs := renderUIRig(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := topotest.WriteSecrets(root, hrs["serverA"].Secrets); err != nil {
		t.Fatal(err)
	}
	drv, err := apply.NewDriver("sim", apply.DriverOptions{Root: root, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	sim.ShutdownOnCleanup(t, root)
	eng, err := apply.New(apply.Config{Root: root, StateDir: filepath.Join(dir, "state"), Driver: drv,
		HealthTimeout: 2 * time.Second, Logger: discard,
		GitCheck: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	h := &simHost{root: root, eng: eng}
	before := h.hostFiles(t)
	_, err = applyBooting(eng, root, renderBundle(hrs["serverA"], 1))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if !strings.Contains(rb.Reason.Error(), "to-serverB") {
		t.Errorf("reason %v, want a tunnel to serverB", rb.Reason)
	}
	if d := diffSnap(before, h.hostFiles(t)); d != "" {
		t.Errorf("host files differ from before the first install:\n%s", d)
	}
	st, err := sim.ReadKernel(root)
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.Jails {
		t.Errorf("jail %s still running after the first install was rolled back", name)
	}
	if g, _ := eng.Current(); g != nil && g.Serial != 0 {
		t.Errorf("current generation %d, want none", g.Serial)
	}
}
