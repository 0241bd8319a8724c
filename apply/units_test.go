package apply_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// withUnit returns files with the unit of path replaced.
func withUnit(files []tf, path, unit string) []tf {
	out := append([]tf(nil), files...)
	for i := range out {
		if out[i].path == path {
			out[i].unit = unit
			return out
		}
	}
	panic("no file " + path)
}

// TestBadUnitNeverReachesTheDriver (issue 14, item 5): a bundle whose
// unit is outside the grammar (one that verify refuses, here handed to the
// engine directly) is refused by the plan, before anything is installed
// and before any command; the host stays on serial 1, not degraded.
func TestBadUnitNeverReachesTheDriver(t *testing.T) {
	for _, bad := range []string{"jail:pg_j;touch x;#", "jail:-a"} {
		t.Run(bad, func(t *testing.T) {
			e := newEnv(t)
			check := verify.Check{Kind: verify.CheckJail, Name: "pg_j", Jail: "pg_j"}
			apply1(t, e, check)
			before := snapshot(t, e.root)
			// service(8) would refuse such a name: fail it like the host.
			e.drv.OnActivate = func(u verify.Unit) error {
				if strings.ContainsAny(u.String(), ";#$ ") || strings.Contains(u.String(), ":-") {
					return errors.New("service: illegal jail name")
				}
				return nil
			}
			files := withUnit(uirig("v2"), "/jails/pg_j/etc/rc.conf", bad)
			_, err := e.eng.Apply(ctx, mkBundle(2, files, check))
			var (
				rb *apply.RolledBackError
				dg *apply.DegradedError
			)
			if err == nil || errors.As(err, &rb) || errors.As(err, &dg) || !strings.Contains(err.Error(), "/jails/pg_j/etc/rc.conf") {
				t.Fatalf("err %v, want a refusal naming the file, before any install", err)
			}
			if calls := e.drv.Calls(); len(calls) != 0 {
				t.Errorf("driver calls %v, want none", calls)
			}
			if d := diffSnap(before, snapshot(t, e.root)); d != "" {
				t.Errorf("host differs from serial 1:\n%s", d)
			}
			assertClean(t, e.state)
		})
	}
}

// TestNewUnitNotRetriedInRollback (issue 14, item 5): a unit new in the
// bundle (pg_j's rc.conf now claims a jail that does not exist) fails to
// activate; the rollback re-activates the restored file under the unit
// the previous generation gave it, never the failed one again, and ends
// rolled back.
func TestNewUnitNotRetriedInRollback(t *testing.T) {
	e := newEnv(t)
	check := verify.Check{Kind: verify.CheckJail, Name: "pg_j", Jail: "pg_j"}
	apply1(t, e, check)
	before := snapshot(t, e.root)
	e.drv.OnActivate = func(u verify.Unit) error {
		if u.String() == "jail:pg_new" {
			return errors.New(`jail: "pg_new" not found`)
		}
		return nil
	}
	files := withUnit(uirig("v2"), "/jails/pg_j/etc/rc.conf", "jail:pg_new")
	_, err := e.eng.Apply(ctx, mkBundle(2, files, check))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want *RolledBackError", err)
	}
	n := 0
	for _, a := range e.drv.Activations() {
		if a == "jail:pg_new" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("jail:pg_new activated %d times (%v), want once", n, e.drv.Activations())
	}
	if got := e.drv.Activations(); got[len(got)-1] != "jail:pg_j" {
		t.Errorf("activations %v: want the restored rc.conf re-activated as jail:pg_j", got)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host differs from serial 1:\n%s", d)
	}
	if s := currentSerial(t, e.eng); s != 1 {
		t.Errorf("current %d, want 1", s)
	}
}
