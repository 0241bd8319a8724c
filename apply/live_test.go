package apply_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/apply/live"
	"github.com/rigger-bsd/rigger/apply/live/livetest"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/hostplan/plantest"
	"github.com/rigger-bsd/rigger/verify"
)

// liveDriver is the fake driver with a modelled kernel behind live steps;
// activations are logged in the same order as the live commands.
type liveDriver struct {
	*applytest.Driver
	*livetest.Host
}

func (d *liveDriver) ManagementPath(_ context.Context, src netip.Addr) (*live.Management, error) {
	return &live.Management{Iface: "xnic", Source: src}, nil
}

// liveWeb2RC adds web2_j with its epair on xbridge to plantest.BaseRC.
var liveWeb2RC = plantest.Edit(plantest.BaseRC, plantest.AddWeb2...)

// liveGen1 is plantest.BaseRC; liveGen2 adds web2_j with its epair on xbridge.
func liveGen1(t testing.TB, serial uint64) *verify.Bundle {
	b := mkBundle(serial, []tf{
		{"/etc/rc.conf", "reboot-required", plantest.BaseRC, 0},
		{"/etc/jail.conf.d/pg_j.conf", "jail:pg_j", "pg_j {}\n", 0},
	})
	b.Manifest.HostDesc = plantest.Desc(t, plantest.BaseRC, plantest.BaseJails)
	return b
}

func liveGen2(t testing.TB, serial uint64) *verify.Bundle {
	b := mkBundle(serial, []tf{
		{"/etc/rc.conf", "reboot-required", liveWeb2RC, 0},
		{"/etc/jail.conf.d/pg_j.conf", "jail:pg_j", "pg_j {}\n", 0},
		{"/etc/jail.conf.d/web2_j.conf", "jail:web2_j", "web2_j {}\n", 0},
	})
	b.Manifest.HostDesc = plantest.Desc(t, liveWeb2RC, plantest.Web2Jails)
	return b
}

func newLiveEnv(t *testing.T) (*env, *liveDriver) {
	t.Helper()
	dir := t.TempDir()
	drv := &liveDriver{Driver: applytest.New(), Host: livetest.New(plantest.Desc(t, plantest.BaseRC, plantest.BaseJails))}
	drv.Driver.OnActivate = func(u verify.Unit) error {
		drv.Host.RunLive(context.Background(), "activate", u.String())
		return nil
	}
	e := &env{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	os.MkdirAll(e.root, 0o755)
	return e, drv
}

func liveEngine(t *testing.T, e *env, drv *liveDriver, git func(context.Context) error) *apply.Engine {
	t.Helper()
	eng, err := apply.New(apply.Config{
		Root: e.root, StateDir: e.state, Driver: drv, HealthTimeout: 2 * time.Second, Logger: discard,
		GitCheck: git, ConfirmTimeout: 300 * time.Millisecond,
		ManagementSource: func(context.Context) (netip.Addr, error) { return netip.MustParseAddr("198.51.100.7"), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestEngineLiveAddJail: the second bundle adds a jail; the engine runs
// the live steps after the files are in place and before the jail's unit,
// reports them, and no reboot is asked for the rc.conf change.
func TestEngineLiveAddJail(t *testing.T) {
	e, drv := newLiveEnv(t)
	eng := liveEngine(t, e, drv, nil)
	if _, err := eng.Apply(ctx, liveGen1(t, 1)); err != nil {
		t.Fatal(err)
	}
	drv.Log = nil
	plan, err := eng.Plan(liveGen2(t, 2))
	if err != nil || plan.Live == nil || len(plan.Live.Steps) != 5 || plan.Reboot {
		t.Fatalf("plan %+v err %v", plan, err)
	}
	// The rc.conf change is applied live: no reason to reboot is left
	// (agent status printed "reboot: required" beside the live steps).
	if len(plan.RebootReasons) != 0 {
		t.Errorf("plan reboot reasons %q with a live plan and nothing else to boot for", plan.RebootReasons)
	}
	res, err := eng.Apply(ctx, liveGen2(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RebootReasons) != 0 {
		t.Errorf("result reboot reasons %q", res.RebootReasons)
	}
	want := "ifconfig epair create\nifconfig epair5a name web2_a\nifconfig web2_a up\nifconfig epair5b name web2_b\nifconfig xbridge addm web2_a\nactivate jail:web2_j"
	if got := strings.Join(drv.Log, "\n"); got != want {
		t.Fatalf("commands:\n%s\nwant\n%s", got, want)
	}
	if len(res.Live) != 5 || res.RebootRequired {
		t.Fatalf("result live %d reboot %v", len(res.Live), res.RebootRequired)
	}
	if d := drv.Host.Same(livetest.New(plantest.Desc(t, liveWeb2RC, plantest.Web2Jails))); d != "" && !strings.HasPrefix(d, "jails") {
		t.Fatalf("host: %s", d)
	}
	if _, err := os.Stat(filepath.Join(e.state, live.JournalName)); !os.IsNotExist(err) {
		t.Fatalf("live journal left after commit: %v", err)
	}

	// git revert: serial 3 has gen 1's content; the jail stops before its
	// epair goes, and its unit is not restarted.
	drv.Log = nil
	if _, err := eng.Apply(ctx, liveGen1(t, 3)); err != nil {
		t.Fatal(err)
	}
	want = "service jail stop web2_j\nifconfig xbridge deletem web2_a\nifconfig web2_a destroy"
	if got := strings.Join(drv.Log, "\n"); got != want {
		t.Fatalf("revert commands:\n%s\nwant\n%s", got, want)
	}
	if d := drv.Host.Same(livetest.New(plantest.Desc(t, plantest.BaseRC, plantest.BaseJails))); d != "" {
		t.Fatalf("host after revert: %s", d)
	}
}

// TestEngineLiveFailureUndoes: the new jail's unit fails; the jail is
// stopped, the live steps undone before the files go back.
func TestEngineLiveFailureUndoes(t *testing.T) {
	e, drv := newLiveEnv(t)
	eng := liveEngine(t, e, drv, nil)
	if _, err := eng.Apply(ctx, liveGen1(t, 1)); err != nil {
		t.Fatal(err)
	}
	drv.Log = nil
	drv.Driver.OnActivate = func(u verify.Unit) error {
		drv.Host.RunLive(context.Background(), "activate", u.String())
		if u.Jail == "web2_j" {
			return errors.New("jail did not start")
		}
		return nil
	}
	_, err := eng.Apply(ctx, liveGen2(t, 2))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v", err)
	}
	want := "ifconfig epair create\nifconfig epair5a name web2_a\nifconfig web2_a up\nifconfig epair5b name web2_b\nifconfig xbridge addm web2_a\nactivate jail:web2_j\n" +
		"ifconfig xbridge deletem web2_a\nifconfig web2_b name epair5b\nifconfig web2_a name epair5a\nifconfig epair5a destroy"
	if got := strings.Join(drv.Log, "\n"); got != want {
		t.Fatalf("commands:\n%s\nwant\n%s", got, want)
	}
	if d := drv.Host.Same(livetest.New(plantest.Desc(t, plantest.BaseRC, plantest.BaseJails))); d != "" {
		t.Fatalf("host: %s", d)
	}
}

// TestEngineLiveManagementLost: a new default route cuts the agent off
// its git source; the source does not answer within the confirm deadline,
// the route is changed back and the serial rolled back with the reason.
func TestEngineLiveManagementLost(t *testing.T) {
	e, drv := newLiveEnv(t)
	reachable := true
	git := func(ctx context.Context) error {
		if reachable {
			return nil
		}
		<-ctx.Done()
		return errors.New("git source: " + ctx.Err().Error())
	}
	eng := liveEngine(t, e, drv, git)
	if _, err := eng.Apply(ctx, liveGen1(t, 1)); err != nil {
		t.Fatal(err)
	}
	cutRC := strings.Replace(plantest.BaseRC, `defaultrouter="203.0.113.1"`, `defaultrouter="203.0.113.99"`, 1)
	b := liveGen1(t, 2)
	b.Manifest.Files[0].SHA256 = hexsum([]byte(cutRC))
	b.Manifest.Files[0].Size = int64(len(cutRC))
	b.Files["/etc/rc.conf"] = []byte(cutRC)
	b.Manifest.HostDesc = plantest.Desc(t, cutRC, plantest.BaseJails)
	drv.Log = nil
	reachable = false
	start := time.Now()
	_, err := eng.Apply(ctx, b)
	var ml *live.ManagementLostError
	if !errors.As(err, &ml) || time.Since(start) > 20*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	if got := strings.Join(drv.Log, "\n"); got != "route -n change default 203.0.113.99\nroute -n change default 203.0.113.1" {
		t.Fatalf("commands:\n%s", got)
	}
	if drv.Host.Routes["0 default"] != "203.0.113.1" || currentSerial(t, eng) != 1 {
		t.Fatalf("route %q serial %d", drv.Host.Routes["0 default"], currentSerial(t, eng))
	}
	// With management: forbid the same change is refused before anything.
	b.Manifest.HostDesc.Management = hostdesc.MgmtForbid
	drv.Log = nil
	_, err = eng.Apply(ctx, b)
	var fe *live.ForbiddenError
	if !errors.As(err, &fe) || len(drv.Log) != 0 {
		t.Fatalf("forbid: err %v commands %q", err, drv.Log)
	}
}

// errCrash stands for kill -9: the panic leaves the transaction where it
// is (run defers no rollback), the engine is reopened and recovers.
type crash struct{}

// TestEngineLiveKillEveryStep: a crash before each live step (and after
// the last one, before the units), then Recover: the host model and the
// files are the old generation's exactly.
func TestEngineLiveKillEveryStep(t *testing.T) {
	for i := 0; i <= 5; i++ {
		e, drv := newLiveEnv(t)
		eng := liveEngine(t, e, drv, nil)
		if _, err := eng.Apply(ctx, liveGen1(t, 1)); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, e.root)
		step, at := apply.HookLive, i
		if i == 5 {
			step, at = apply.HookActivate, 0
		}
		apply.SetHook(eng, func(s string, k int) error {
			if s == step && k == at {
				panic(crash{})
			}
			return nil
		})
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(crash); !ok {
						panic(r)
					}
				}
			}()
			eng.Apply(ctx, liveGen2(t, 2))
			t.Fatalf("kill at %d: apply returned", i)
		}()
		eng2 := liveEngine(t, e, drv, nil)
		rec, err := eng2.Recover(ctx)
		if err != nil || rec == nil || !rec.RolledBack {
			t.Fatalf("kill at %d: recover %+v %v", i, rec, err)
		}
		if d := drv.Host.Same(livetest.New(plantest.Desc(t, plantest.BaseRC, plantest.BaseJails))); d != "" {
			t.Fatalf("kill at %d: host %s\n%s", i, d, strings.Join(drv.Log, "\n"))
		}
		if d := diffSnap(before, snapshot(t, e.root)); d != "" {
			t.Fatalf("kill at %d: files %s", i, d)
		}
		if _, err := os.Stat(filepath.Join(e.state, live.JournalName)); !os.IsNotExist(err) {
			t.Fatalf("kill at %d: live journal left", i)
		}
	}
}

// TestEngineLiveDriverWithout: a driver that cannot run live steps keeps
// the old way: files installed, reboot required, nothing run live.
func TestEngineLiveDriverWithout(t *testing.T) {
	e, _ := newLiveEnv(t)
	eng, err := apply.New(apply.Config{Root: e.root, StateDir: e.state, Driver: applytest.New(), HealthTimeout: 2 * time.Second, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, liveGen1(t, 1)); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Apply(ctx, liveGen2(t, 2))
	if err != nil || !res.RebootRequired || len(res.Live) != 0 {
		t.Fatalf("res %+v err %v", res, err)
	}
}
