package apply_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/verify"
)

var ctx = context.Background()

func TestApplyFromNothing(t *testing.T) {
	e := newEnv(t)
	b := mkBundle(1, uirig("v1"), verify.Check{Kind: verify.CheckJail, Name: "pg_j up", Jail: "pg_j"},
		verify.Check{Kind: verify.CheckPF, Name: "pf"})
	res, err := e.eng.Apply(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	assertFiles(t, e.root, b)
	assertClean(t, e.state)
	want := []string{"sysctl", "pf", "jail:nginx_j", "jail:node_j", "jail:pg_j", "service:sshd"}
	if got := e.drv.Activations(); !eq(got, want) {
		t.Errorf("activations %v, want %v", got, want)
	}
	if len(res.Units) != len(want) || len(res.Health) != 2 || !res.Health[0].OK || res.Health[0].Attempts != 1 {
		t.Errorf("result %+v", res)
	}
	if len(res.Changes) != 15 || res.Changes[0].Op != apply.OpAdd {
		t.Errorf("changes: %d, first %+v", len(res.Changes), res.Changes[0].Op)
	}
	if s := currentSerial(t, e.eng); s != 1 {
		t.Errorf("current %d, want 1", s)
	}
	gens, err := e.eng.Generations()
	if err != nil || len(gens) != 1 || gens[0].Signers[0] != "test-key" || len(gens[0].Manifest.Files) != 15 {
		t.Errorf("generations %+v %v", gens, err)
	}
	env, err := os.ReadFile(filepath.Join(e.state, "generations", "1", "manifest.json"))
	if err != nil || string(env) != string(b.Envelope) {
		t.Errorf("kept envelope %q, %v", env, err)
	}
	if d, err := e.eng.Drift(); err != nil || len(d) != 0 {
		t.Errorf("drift after apply: %v %v", d, err)
	}
}

// apply1 applies serial 1 of the uirig set and forgets the driver calls.
func apply1(t *testing.T, e *env, health ...verify.Check) *verify.Bundle {
	t.Helper()
	b := mkBundle(1, uirig("v1"), health...)
	if _, err := e.eng.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	e.drv.Reset()
	return b
}

func TestUnitsOfAChange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  string
		units []string
	}{
		{"pf.conf activates pf only", "/etc/pf.conf", []string{"pf"}},
		{"a table file alone reloads the table", "/etc/pf.blocklist", []string{"pf-table:blocklist"}},
		{"pg_j rc.conf restarts pg_j only", "/jails/pg_j/etc/rc.conf", []string{"jail:pg_j"}},
		{"nginx.conf restarts nginx in nginx_j", "/jails/nginx_j/usr/local/etc/nginx/nginx.conf", []string{"jail-service:nginx_j:nginx"}},
		{"cron needs nothing", "/etc/cron.d/ratelimit", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			apply1(t, e)
			b := mkBundle(2, with(uirig("v1"), tc.path, "changed\n"))
			p, err := e.eng.Plan(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Changes) != 1 || p.Changes[0].Path != tc.path || p.Changes[0].Op != apply.OpModify || string(p.Changes[0].New) != "changed\n" {
				t.Fatalf("plan changes %+v", p.Changes)
			}
			res, err := e.eng.Apply(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.drv.Activations(); !eq(got, tc.units) {
				t.Errorf("activations %v, want %v", got, tc.units)
			}
			if len(res.Units) != len(tc.units) {
				t.Errorf("result units %v", res.Units)
			}
			assertFiles(t, e.root, b)
			if s := currentSerial(t, e.eng); s != 2 {
				t.Errorf("current %d", s)
			}
		})
	}
}

func TestOrderUnits(t *testing.T) {
	parse := func(ss ...string) []verify.Unit {
		var out []verify.Unit
		for _, s := range ss {
			u, err := verify.ParseUnit(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	for _, tc := range []struct {
		in     []verify.Unit
		allow  []string
		want   string
		reboot bool
	}{
		{parse("wireguard:wg0", "jail:pg_j", "pf", "sysctl", "service:sshd", "netif:em0", "jail-service:node_j:node"), []string{"em0"},
			"sysctl netif:em0 pf jail:pg_j jail-service:node_j:node service:sshd wireguard:wg0", false},
		{parse("pf-table:b", "pf-table:a", "cron", "none"), nil, "pf-table:a pf-table:b", false},
		{parse("pf-table:a", "pf"), nil, "pf", false},
		{parse("jail-service:pg_j:postgresql", "jail:pg_j", "jail:pg_j"), nil, "jail:pg_j", false},
		{parse("netif:em0", "pf"), []string{"em1"}, "pf", true},
		{parse("reboot-required"), nil, "", true},
	} {
		got, reboot := apply.OrderUnits(tc.in, tc.allow)
		var s []string
		for _, u := range got {
			s = append(s, u.String())
		}
		if strings.Join(s, " ") != tc.want || reboot != tc.reboot {
			t.Errorf("%v: got %v reboot %v, want %q reboot %v", tc.in, s, reboot, tc.want, tc.reboot)
		}
	}
}

func TestMetaChangeAndRemoveOwnFilesOnly(t *testing.T) {
	e := newEnv(t)
	// An unmanaged host file the bundle never listed.
	unmanaged := filepath.Join(e.root, "etc", "hosts")
	os.MkdirAll(filepath.Dir(unmanaged), 0o755)
	os.WriteFile(unmanaged, []byte("127.0.0.1 localhost\n"), 0o644)
	apply1(t, e)

	files := uirig("v1")
	files[3].mode = 0o600                   // sysctl.conf: mode only
	files = append(files[:8], files[9:]...) // cron.d/ratelimit leaves the bundle
	b := mkBundle(2, files)
	p, err := e.eng.Plan(b)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for _, c := range p.Changes {
		ops[c.Path] = c.Op
	}
	if len(ops) != 2 || ops["/etc/sysctl.conf"] != apply.OpMeta || ops["/etc/cron.d/ratelimit"] != apply.OpRemove {
		t.Fatalf("plan %v", ops)
	}
	if _, err := e.eng.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	assertFiles(t, e.root, b)
	if _, err := os.Stat(filepath.Join(e.root, "etc/cron.d/ratelimit")); !os.IsNotExist(err) {
		t.Errorf("removed file still there: %v", err)
	}
	if got, _ := os.ReadFile(unmanaged); string(got) != "127.0.0.1 localhost\n" {
		t.Errorf("unmanaged file touched: %q", got)
	}
	if got := e.drv.Activations(); !eq(got, []string{"sysctl"}) {
		t.Errorf("activations %v", got)
	}
}

func TestActivationFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	apply1(t, e, verify.Check{Kind: verify.CheckJail, Name: "pg_j", Jail: "pg_j"})
	before := snapshot(t, e.root)

	files := with(uirig("v1"), "/etc/pf.conf", "pass all\n")
	files = with(files, "/jails/pg_j/etc/rc.conf", "BROKEN\n")
	files = append(files, tf{"/etc/new.conf", "none", "new\n", 0})
	b := mkBundle(2, files)
	// The jail's start fails on the new rc.conf, as jail(8) would.
	e.drv.OnActivate = func(u verify.Unit) error {
		if u.String() != "jail:pg_j" {
			return nil
		}
		rc, _ := os.ReadFile(filepath.Join(e.root, "jails/pg_j/etc/rc.conf"))
		if strings.Contains(string(rc), "BROKEN") {
			return errors.New(`jls -j pg_j: jail "pg_j" not found`)
		}
		return nil
	}
	_, err := e.eng.Apply(ctx, b)
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if rb.Serial != 2 || !strings.Contains(rb.Reason.Error(), "activate jail:pg_j") {
		t.Errorf("reason %v", rb.Reason)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs from before the apply:\n%s", d)
	}
	want := []string{"pf", "jail:pg_j", "pf", "jail:pg_j"}
	if got := e.drv.Activations(); !eq(got, want) {
		t.Errorf("activations %v, want %v", got, want)
	}
	if len(rb.Recheck) != 1 || !rb.Recheck[0].OK {
		t.Errorf("re-check %+v", rb.Recheck)
	}
	if s := currentSerial(t, e.eng); s != 1 {
		t.Errorf("current %d, want 1", s)
	}
	if gens, _ := e.eng.Generations(); len(gens) != 1 {
		t.Errorf("failed generation kept: %d generations", len(gens))
	}
	assertClean(t, e.state)
}

func TestHealthFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	before := snapshot(t, e.root)
	// A port nothing listens on.
	b := mkBundle(2, with(uirig("v1"), "/etc/pf.conf", "pass all\n"),
		verify.Check{Kind: verify.CheckTCP, Name: "db", Addr: closedAddr(t), Timeout: verify.Duration(100e6)})
	e.eng = newEngine(t, e, 700e6)
	_, err := e.eng.Apply(ctx, b)
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if len(rb.Health) != 1 || rb.Health[0].OK || rb.Health[0].Attempts < 2 || rb.Health[0].Error == "" {
		t.Errorf("health %+v", rb.Health)
	}
	if !strings.Contains(rb.Error(), "db (tcp)") {
		t.Errorf("reason %q does not name the check", rb.Error())
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs:\n%s", d)
	}
	if got := e.drv.Activations(); !eq(got, []string{"pf", "pf"}) {
		t.Errorf("activations %v", got)
	}
	assertClean(t, e.state)
}

func TestJailDownAfterStartRollsBack(t *testing.T) {
	e := newEnv(t)
	check := verify.Check{Kind: verify.CheckJail, Name: "pg_j", Jail: "pg_j"}
	apply1(t, e, check)
	before := snapshot(t, e.root)
	// service jail restart exits 0, but the jail is gone a moment later.
	e.drv.OnActivate = func(u verify.Unit) error {
		e.drv.SetJailDown("pg_j", strings.Contains(readRoot(e, "/jails/pg_j/etc/rc.conf"), "BROKEN"))
		return nil
	}
	e.eng = newEngine(t, e, 300e6)
	_, err := e.eng.Apply(ctx, mkBundle(2, with(uirig("v1"), "/jails/pg_j/etc/rc.conf", "BROKEN\n"), check))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if rb.Health[0].OK || !strings.Contains(rb.Health[0].Error, "not running") {
		t.Errorf("health %+v", rb.Health)
	}
	if len(rb.Recheck) != 1 || !rb.Recheck[0].OK {
		t.Errorf("jail not healthy again: %+v", rb.Recheck)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs:\n%s", d)
	}
}

func TestRestoreFailureIsDegraded(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	e.drv.OnActivate = applytest.FailUnit("pf", errors.New("pfctl: DIOCXCOMMIT: Device busy"))
	_, err := e.eng.Apply(ctx, mkBundle(2, with(uirig("v1"), "/etc/pf.conf", "pass all\n")))
	var de *apply.DegradedError
	if !errors.As(err, &de) {
		t.Fatalf("err %v, want *DegradedError (pf cannot be re-activated either)", err)
	}
	if !strings.Contains(de.Err.Error(), "re-activate pf") || !strings.Contains(de.Reason.Error(), "activate pf") {
		t.Errorf("degraded %v", de)
	}
	// Files are back on serial 1 all the same.
	assertFiles(t, e.root, mkBundle(1, uirig("v1")))
}

func TestPrecheckFailureInstallsNothing(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	before := snapshot(t, e.root)
	b := mkBundle(2, with(uirig("v1"), "/etc/pf.conf", "pass al\n"))
	var staged, table string
	e.drv.OnPrecheck = func(stage string, files []verify.File) error {
		staged = readFile(filepath.Join(stage, "etc/pf.conf"))
		table = readFile(filepath.Join(stage, "etc/pf.blocklist")) // unchanged, staged too
		return &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New("/etc/pf.conf:1: syntax error")}
	}
	_, err := e.eng.Apply(ctx, b)
	var pe *apply.PrecheckError
	if !errors.As(err, &pe) || pe.Path != "/etc/pf.conf" || !strings.Contains(err.Error(), ":1: syntax error") {
		t.Fatalf("err %v, want *PrecheckError naming pf.conf:1", err)
	}
	if staged != "pass al\n" || table != string(b.Files["/etc/pf.blocklist"]) {
		t.Errorf("staged tree: pf.conf %q, table %d bytes", staged, len(table))
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host changed:\n%s", d)
	}
	if got := e.drv.Activations(); len(got) != 0 {
		t.Errorf("activations %v", got)
	}
	if gens, _ := e.eng.Generations(); len(gens) != 1 {
		t.Errorf("generations %d", len(gens))
	}
	assertClean(t, e.state)
}

func TestPrecheckSecretsAndChecks(t *testing.T) {
	e := newEnv(t)
	key := "/jails/pg_j/usr/local/etc/spiped/pgs.key"
	b := mkBundle(1, uirig("v1"))
	b.Manifest.Secrets = []string{key}
	_, err := e.eng.Apply(ctx, b)
	var pe *apply.PrecheckError
	if !errors.As(err, &pe) || pe.Path != key || !errors.Is(err, apply.ErrSecretMissing) {
		t.Fatalf("err %v, want the missing secret by name", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "etc")); !os.IsNotExist(err) {
		t.Errorf("something was installed: %v", err)
	}
	assertClean(t, e.state)
	// The driver's checks run beside the engine's: when both fail, the
	// engine's problem is the one reported.
	e.drv.OnPrecheck = func(string, []verify.File) error {
		return &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New("/etc/pf.conf:1: syntax error")}
	}
	if _, err := e.eng.Apply(ctx, b); !errors.As(err, &pe) || pe.Path != key {
		t.Fatalf("err %v, want the missing secret before the driver's problem", err)
	}
	e.drv.OnPrecheck = nil
	p := filepath.Join(e.root, key)
	os.MkdirAll(filepath.Dir(p), 0o700)
	os.WriteFile(p, []byte("secret"), 0o600)

	b.Manifest.Health = []verify.Check{{Kind: verify.CheckTunnel, Name: "pgs", Addr: "127.0.0.1:1", Probe: "telnet"}}
	if _, err := e.eng.Apply(ctx, b); !errors.As(err, &pe) || !strings.Contains(err.Error(), "health check pgs") {
		t.Fatalf("err %v, want the bad check refused", err)
	}
	b.Manifest.Health = nil
	if _, err := e.eng.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFailureMidInstallRollsBack(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	before := snapshot(t, e.root)
	n := 0
	apply.SetHook(e.eng, func(step string, i int) error {
		if step == apply.HookInstall {
			n++
			if i == 3 {
				return errors.New("injected: no space left on device")
			}
		}
		return nil
	})
	_, err := e.eng.Apply(ctx, mkBundle(2, uirig("v2")))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if n != 4 {
		t.Errorf("install reached file %d", n)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs:\n%s", d)
	}
	if got := e.drv.Activations(); len(got) != 0 {
		t.Errorf("nothing was activated, so nothing is re-activated: %v", got)
	}
	assertClean(t, e.state)
}

func TestFailureRestoresUnmanagedFile(t *testing.T) {
	e := newEnv(t)
	rc := filepath.Join(e.root, "etc/rc.conf")
	os.MkdirAll(filepath.Dir(rc), 0o755)
	os.WriteFile(rc, []byte("hostname=\"serverA\"\n"), 0o640)
	before := snapshot(t, e.root)
	e.drv.OnActivate = applytest.FailUnit("jail:pg_j", errors.New("jail: pg_j: mount.devfs: /jails/pg_j/dev: No such file"))
	_, err := e.eng.Apply(ctx, mkBundle(1, uirig("v1")))
	// pg_j's files were all new: the rollback stops it rather than
	// re-activate it with no config, and that succeeds.
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	if calls := e.drv.Calls(); !slices.Contains(calls, "deactivate jail:pg_j") {
		t.Errorf("calls %v: want pg_j deactivated", calls)
	}
	if running, _ := e.drv.JailRunning(ctx, "pg_j"); running {
		t.Error("pg_j still running")
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs from before the first apply:\n%s", d)
	}
	if s := currentSerial(t, e.eng); s != 0 {
		t.Errorf("current %d", s)
	}
}

func TestGenerationsRollbackKeep(t *testing.T) {
	e := newEnv(t)
	bs := map[uint64]*verify.Bundle{}
	for s := uint64(1); s <= 7; s++ {
		bs[s] = mkBundle(s, with(uirig("v1"), "/etc/pf.conf", strings.Repeat("v", int(s))+"\n"))
		if _, err := e.eng.Apply(ctx, bs[s]); err != nil {
			t.Fatal(err)
		}
	}
	gens, err := e.eng.Generations()
	if err != nil || len(gens) != 5 || gens[0].Serial != 7 || gens[4].Serial != 3 {
		t.Fatalf("generations %v %v", serials(gens), err)
	}
	e.drv.Reset()
	res, err := e.eng.Rollback(ctx, 0)
	if err != nil || res.Serial != 6 {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	assertFiles(t, e.root, bs[6])
	if got := e.drv.Activations(); !eq(got, []string{"pf"}) {
		t.Errorf("activations %v", got)
	}
	if _, err := e.eng.Rollback(ctx, 3); err != nil {
		t.Fatal(err)
	}
	assertFiles(t, e.root, bs[3])
	if s := currentSerial(t, e.eng); s != 3 {
		t.Errorf("current %d", s)
	}
	if _, err := e.eng.Rollback(ctx, 2); err == nil {
		t.Error("rollback to a pruned generation succeeded")
	}
	// A failed rollback is rolled back too, and keeps the generation.
	e.drv.OnActivate = applytest.FailUnit("pf", errors.New("boom"))
	e.drv.OnActivate = func(u verify.Unit) error {
		if readRoot(e, "/etc/pf.conf") == "vvvvvvv\n" {
			return errors.New("pfctl: syntax error")
		}
		return nil
	}
	if _, err := e.eng.Rollback(ctx, 7); !errors.As(err, new(*apply.RolledBackError)) {
		t.Fatalf("err %v", err)
	}
	assertFiles(t, e.root, bs[3])
	if gens, _ := e.eng.Generations(); len(gens) != 5 {
		t.Errorf("generations %v", serials(gens))
	}
	// Apply again after all that, and the newest serials are kept.
	e.drv.OnActivate = nil
	if _, err := e.eng.Apply(ctx, mkBundle(8, uirig("v8"))); err != nil {
		t.Fatal(err)
	}
	if gens, _ := e.eng.Generations(); len(gens) != 5 || gens[0].Serial != 8 {
		t.Errorf("generations %v", serials(gens))
	}
}

func TestDriftAndReinstall(t *testing.T) {
	e := newEnv(t)
	b := apply1(t, e)
	os.WriteFile(filepath.Join(e.root, "jails/pg_j/etc/rc.conf"), []byte("edited by hand\n"), 0o644)
	os.Chmod(filepath.Join(e.root, "etc/pf.conf"), 0o644)
	os.Remove(filepath.Join(e.root, "etc/cron.d/ratelimit"))
	d, err := e.eng.Drift()
	want := []string{"/etc/cron.d/ratelimit", "/etc/pf.conf", "/jails/pg_j/etc/rc.conf"}
	if err != nil || !eq(d, want) {
		t.Fatalf("drift %v %v, want %v", d, err, want)
	}
	res, err := e.eng.Reinstall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertFiles(t, e.root, b)
	if got := e.drv.Activations(); !eq(got, []string{"pf", "jail:pg_j"}) {
		t.Errorf("activations %v", got)
	}
	if res.Serial != 1 || currentSerial(t, e.eng) != 1 {
		t.Errorf("serial %d", res.Serial)
	}
	if d, _ := e.eng.Drift(); len(d) != 0 {
		t.Errorf("drift after reinstall %v", d)
	}
	assertClean(t, e.state)
}

func TestUnfinishedJournalBlocksApply(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(e.state, 0o700)
	os.WriteFile(filepath.Join(e.state, "journal.json"), []byte(`{"txn":"x","serial":9,"step":"install"}`), 0o600)
	if _, err := e.eng.Apply(ctx, mkBundle(1, uirig("v1"))); !errors.Is(err, apply.ErrUnfinished) {
		t.Fatalf("err %v", err)
	}
	r, err := e.eng.Recover(ctx)
	if err != nil || r == nil || !r.RolledBack || r.Serial != 9 {
		t.Fatalf("recover %+v %v", r, err)
	}
	if _, err := e.eng.Apply(ctx, mkBundle(1, uirig("v1"))); err != nil {
		t.Fatal(err)
	}
	if r, err := e.eng.Recover(ctx); r != nil || err != nil {
		t.Errorf("nothing to recover, got %+v %v", r, err)
	}
}

func serials(gs []apply.Generation) []uint64 {
	var out []uint64
	for _, g := range gs {
		out = append(out, g.Serial)
	}
	return out
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func readRoot(e *env, p string) string { return readFile(filepath.Join(e.root, p)) }

// The reason a reboot is needed names the file and why: an rc.conf that
// changes an interface the topology does not let the agent restart is not
// "a loader file".
func TestRebootReasons(t *testing.T) {
	e := newEnv(t)
	b := mkBundle(1, []tf{
		{"/etc/rc.conf", "netif:em0", "ifconfig_em0=\"inet 192.0.2.1/24\"\n", 0},
		{"/etc/pf.conf", "pf", "pass all\n", 0},
	})
	p, err := e.eng.Plan(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/rc.conf: interface em0 changes and the topology does not allow restarting it live (netif_restart)"}
	if !p.Reboot || !slices.Equal(p.RebootReasons, want) {
		t.Errorf("reboot %v %q, want %q", p.Reboot, p.RebootReasons, want)
	}

	b = mkBundle(1, []tf{{"/boot/loader.conf", "reboot-required", "kern.racct.enable=1\n", 0}})
	b.Manifest.NetifRestart = []string{"em0"}
	if p, err = e.eng.Plan(b); err != nil {
		t.Fatal(err)
	}
	want = []string{"/boot/loader.conf: loader settings take effect at the next boot"}
	if !p.Reboot || !slices.Equal(p.RebootReasons, want) {
		t.Errorf("reboot %v %q, want %q", p.Reboot, p.RebootReasons, want)
	}

	// The host rc.conf of a bundle without a host description waits for
	// the boot: /etc/rc reads it, and it is no loader file.
	b = mkBundle(1, []tf{{"/etc/rc.conf", "reboot-required", "hostname=\"a\"\n", 0}})
	if p, err = e.eng.Plan(b); err != nil {
		t.Fatal(err)
	}
	want = []string{"/etc/rc.conf: read by /etc/rc at boot (the bundle does not describe the host, so no live steps apply it)"}
	if !p.Reboot || !slices.Equal(p.RebootReasons, want) {
		t.Errorf("reboot %v %q, want %q", p.Reboot, p.RebootReasons, want)
	}

	b = mkBundle(1, []tf{{"/etc/rc.conf", "netif:em0", "ifconfig_em0=up\n", 0}})
	b.Manifest.NetifRestart = []string{"em0"}
	if p, err = e.eng.Plan(b); err != nil {
		t.Fatal(err)
	}
	if p.Reboot || len(p.RebootReasons) != 0 {
		t.Errorf("allowed netif restart: reboot %v %q", p.Reboot, p.RebootReasons)
	}
}

// TestRollbackLogsWhatItRestores: a rollback says, file by file, what it
// put back and from where (the previous generation, backup.tar for a file
// that had drifted, removal for a file the apply created), then the
// result.
func TestRollbackLogsWhatItRestores(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	var buf bytes.Buffer
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: e.drv, HealthTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Drift: the host's sysctl.conf is no longer the generation's.
	if err := os.WriteFile(filepath.Join(e.root, "etc/sysctl.conf"), []byte("drifted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := with(uirig("v1"), "/etc/pf.conf", "pass all\n")
	files = with(files, "/etc/sysctl.conf", "kern.x=1\n")
	files = append(files, tf{"/etc/new.conf", "none", "new\n", 0})
	e.drv.OnActivate = func(u verify.Unit) error {
		if conf, _ := os.ReadFile(filepath.Join(e.root, "etc/pf.conf")); u.String() == "pf" && string(conf) == "pass all\n" {
			return errors.New("pfctl: syntax error")
		}
		return nil
	}
	if _, err := eng.Apply(ctx, mkBundle(2, files)); !errors.As(err, new(*apply.RolledBackError)) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	type line struct {
		Msg, Path, How string
		Serial         uint64
		Previous       *uint64
		Files          int
	}
	how := map[string]string{}
	var restored *line
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var ln line
		if err := json.Unmarshal([]byte(l), &ln); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		switch ln.Msg {
		case "file restored":
			if ln.Serial != 2 || ln.Previous == nil || *ln.Previous != 1 {
				t.Errorf("file line without serial 2 and previous 1: %s", l)
			}
			how[ln.Path] = ln.How
		case "restored":
			restored = &ln
		}
	}
	for path, want := range map[string]string{
		"/etc/pf.conf":     "rewritten from generation 1",
		"/etc/sysctl.conf": "rewritten from backup.tar",
		"/etc/new.conf":    "removed: the apply created it",
	} {
		if how[path] != want {
			t.Errorf("log for %s: %q, want %q\nlog:\n%s", path, how[path], want, buf.String())
		}
	}
	if restored == nil || restored.Serial != 2 || restored.Previous == nil || *restored.Previous != 1 || restored.Files != 3 {
		t.Errorf("no final restored line for serial 2, previous 1, 3 files:\n%s", buf.String())
	}
}

// TestKeptGenerationFollowsCurrent: an engine keeps the current generation
// in memory between transactions; whatever else moves StateDir/current
// (another engine on the same state dir, as `agent rollback` beside the
// running agent, or Recover) must be seen at the next plan and apply.
func TestKeptGenerationFollowsCurrent(t *testing.T) {
	e := newEnv(t)
	v1 := mkBundle(1, uirig("v1"))
	v2 := mkBundle(2, with(uirig("v1"), "/etc/pf.conf", "pass all\n"))
	for _, b := range []*verify.Bundle{v1, v2} {
		if _, err := e.eng.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := e.eng.Plan(v2); err != nil || len(p.Changes) != 0 {
		t.Fatalf("plan of the current bundle: %+v %v", p, err)
	}
	other := newEngine(t, e, 2*time.Second)
	if _, err := other.Rollback(ctx, 1); err != nil {
		t.Fatal(err)
	}
	p, err := e.eng.Plan(v2)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 1 || p.Changes[0].Path != "/etc/pf.conf" {
		t.Fatalf("plan of serial 2 after another engine rolled back to 1: %+v", p.Changes)
	}
	if s := currentSerial(t, e.eng); s != 1 {
		t.Errorf("current %d, want 1", s)
	}
	e.drv.Reset()
	v3 := mkBundle(3, with(uirig("v1"), "/etc/pf.conf", "pass all\n"))
	if _, err := e.eng.Apply(ctx, v3); err != nil {
		t.Fatal(err)
	}
	assertFiles(t, e.root, v3)
	if got := e.drv.Activations(); !eq(got, []string{"pf"}) {
		t.Errorf("activations %v, want pf (from serial 1)", got)
	}
	// The kept generation is the one on disk, AppliedAt included.
	gens, err := e.eng.Generations()
	if err != nil || len(gens) == 0 || gens[0].Serial != 3 {
		t.Fatalf("generations %v %v", serials(gens), err)
	}
	if st, err := e.eng.Current(); err != nil || st == nil || !st.AppliedAt.Equal(gens[0].AppliedAt) {
		t.Errorf("current %+v (%v), on disk applied at %v", st, err, gens[0].AppliedAt)
	}
}
