package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/verify"
)

// TestWithApplyEngine runs the agent with the real apply engine over a
// sandbox root and the scriptable fake host driver: files land on disk,
// a failing unit is rolled back, drift is seen and corrected, and an
// operator rollback goes through the engine.
func TestWithApplyEngine(t *testing.T) {
	w := newWorld(t)
	root := filepath.Join(w.dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	drv := applytest.New()
	a, err := Open(w.cfg, Options{Driver: drv, Now: func() time.Time { return w.clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	w.agent = a
	if err := a.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}

	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	got, err := os.ReadFile(filepath.Join(root, "etc/pf.conf"))
	if err != nil || string(got) != "pass all # 1\n" {
		t.Fatalf("pf.conf after serial 1 = %q, %v", got, err)
	}
	if acts := drv.Activations(); !slices.Contains(acts, "pf") {
		t.Fatalf("activations %v, want pf", acts)
	}

	// Serial 2's pf unit fails: the engine restores serial 1.
	failed := false // the new ruleset fails to load once; the old one reloads fine
	drv.OnActivate = func(u verify.Unit) error {
		if u.Kind == verify.UnitPF && !failed {
			failed = true
			return errors.New("pfctl: no route to host")
		}
		return nil
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	err = w.poll(OutcomeRolledBack)
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err = %v, want RolledBackError", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 1\n" {
		t.Fatalf("pf.conf after the rollback = %q, want serial 1's", got)
	}
	st := w.readStatus()
	if st.State != StateRolledBack || st.Current.Serial != 1 || len(st.Quarantined) != 1 || st.Quarantined[0].Serial != 2 {
		t.Fatalf("status: %s current %+v quarantined %+v", st.State, st.Current, st.Quarantined)
	}
	drv.OnActivate = nil

	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 3, time.Time{})})
	w.poll(OutcomeApplied)

	// Drift: someone edits pf.conf by hand; drift: correct puts it back.
	if err := os.WriteFile(filepath.Join(root, "etc/pf.conf"), []byte("block all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.poll(OutcomeUnchanged)
	st = w.readStatus()
	if st.Drift == nil || !st.Drift.Corrected || !slices.Contains(st.Drift.Files, "/etc/pf.conf") {
		t.Fatalf("drift = %+v", st.Drift)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 3\n" {
		t.Fatalf("pf.conf after drift correction = %q", got)
	}

	// Operator rollback to serial 1, pinned.
	res, err := a.Rollback(t.Context(), 1)
	if err != nil || res.Serial != 1 {
		t.Fatalf("Rollback(1) = %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 1\n" {
		t.Fatalf("pf.conf after rollback = %q", got)
	}
	w.poll(OutcomeUnchanged)
	if st := w.readStatus(); st.State != StateRolledBack || st.Pin == nil || st.Current.Serial != 1 {
		t.Fatalf("after rollback: %s pin %+v current %+v", st.State, st.Pin, st.Current)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 1\n" {
		t.Fatalf("pinned generation not kept: %q", got)
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 4, time.Time{})})
	w.poll(OutcomeApplied)
	if st := w.readStatus(); st.Pin != nil || st.Current.Serial != 4 || st.State != StateIdle {
		t.Fatalf("after serial 4: %s pin %+v current %+v", st.State, st.Pin, st.Current)
	}

	// A pre-check failure installs nothing and quarantines the bundle.
	drv.OnPrecheck = func(string, []verify.File) error {
		return &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New("line 1: syntax error")}
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 5, time.Time{})})
	err = w.poll(OutcomeRejected)
	if err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("precheck failure: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 4\n" {
		t.Fatalf("pf.conf after a failed pre-check = %q", got)
	}
}
