package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/verify"
)

func TestPollLifecycle(t *testing.T) {
	w := newWorld(t)
	b1 := w.bundleFor("serverA", 1, time.Time{})
	c1 := w.publish(map[string]*bundle.Built{"serverA": b1, "serverB": w.bundleFor("serverB", 1, time.Time{})})

	// First apply.
	w.poll(OutcomeApplied)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("applied %v, want [1]", got)
	}
	if n, ok, _ := w.agent.Store().LastSerial(); !ok || n != 1 {
		t.Fatalf("last_serial = %d, %v; want 1", n, ok)
	}
	st := w.readStatus()
	if st.State != StateIdle || st.Current == nil || st.Current.Serial != 1 || st.Current.BundlesCommit != c1 ||
		len(st.Current.Signers) != 1 || st.Current.Signers[0] != w.signer.KeyID() {
		t.Fatalf("status after first apply: %+v current %+v", st, st.Current)
	}
	if len(st.Health) != 1 || !st.Health[0].OK || st.Health[0].LatencyMS != 12 {
		t.Fatalf("health = %+v", st.Health)
	}

	// Unchanged head: one ref advertisement, no fetch.
	w.srv.ResetCounts()
	w.poll(OutcomeUnchanged)
	if c := w.srv.Counts(); c.InfoRefs != 1 || c.UploadPack != 0 {
		t.Fatalf("unchanged poll cost %+v, want one ref advertisement and no upload-pack", c)
	}

	// Only serverB changed: a new commit, our bundle is the same.
	w.publish(map[string]*bundle.Built{"serverA": b1, "serverB": w.bundleFor("serverB", 2, time.Time{})})
	w.poll(OutcomeUpToDate)

	// New serial: applied.
	c3 := w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.poll(OutcomeApplied)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]", got)
	}

	// Force-push back to the first commit: rejected as a rollback.
	if err := setBranch(w, c1); err != nil {
		t.Fatal(err)
	}
	w.srv.ResetCounts()
	err := w.poll(OutcomeRejected)
	if !errors.Is(err, verify.ErrRollback) {
		t.Fatalf("force-push to serial 1: %v, want ErrRollback", err)
	}
	if c := w.srv.Counts(); c.UploadPack != 0 {
		t.Fatalf("commit already local, yet fetched: %+v", c)
	}
	st = w.readStatus()
	if st.Current.Serial != 2 || len(st.Quarantined) != 1 || st.Quarantined[0].Serial != 1 || st.Quarantined[0].Verified ||
		!strings.Contains(st.Quarantined[0].Reason, "serial not above") {
		t.Fatalf("after force-push: current %+v quarantined %+v", st.Current, st.Quarantined)
	}
	// Not tried again.
	w.poll(OutcomeUnchanged)
	// Forward again to serial 2's commit: up to date.
	if err := setBranch(w, c3); err != nil {
		t.Fatal(err)
	}
	w.poll(OutcomeUpToDate)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]", got)
	}
}

func setBranch(w *world, commit string) error {
	return gittestSetBranch(w.repo, commit)
}

func TestServerDownBacksOff(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.srv.Stop()
	var delays []time.Duration
	for range 5 {
		w.poll(OutcomeError)
		delays = append(delays, w.agent.nextDelay())
	}
	st := w.readStatus()
	if st.State != StateError || st.Current == nil || st.Current.Serial != 1 || st.LastError == nil || st.Failures != 5 {
		t.Fatalf("status while down: state %s current %+v error %+v failures %d", st.State, st.Current, st.LastError, st.Failures)
	}
	if !strings.Contains(st.LastError.Message, "list http://127.0.0.1") {
		t.Fatalf("last error = %q, want the failed list", st.LastError.Message)
	}
	// 1s, 2s, 4s, 8s, 8s (cap), each ±10%.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if d := delays[i]; d < want*9/10 || d > want*11/10 {
			t.Errorf("delay after %d failures = %s, want %s ±10%%", i+1, d, want)
		}
	}
	if err := w.srv.Start(); err != nil {
		t.Fatal(err)
	}
	w.poll(OutcomeUnchanged)
	if st := w.readStatus(); st.Failures != 0 || st.State != StateIdle || st.LastError == nil {
		t.Fatalf("after recovery: failures %d state %s last error %+v (kept for the record)", st.Failures, st.State, st.LastError)
	}
}

func TestOtherHostsBundleRejected(t *testing.T) {
	w := newWorld(t)
	// serverB's valid bundle placed in serverA's folder.
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverB", 5, time.Time{})})
	err := w.poll(OutcomeRejected)
	if !errors.Is(err, verify.ErrWrongHost) {
		t.Fatalf("err = %v, want ErrWrongHost", err)
	}
	if len(w.engine.appliedSerials()) != 0 {
		t.Fatal("applied a bundle for another host")
	}
	// Same bytes under a new commit: recognised as quarantined, not verified again.
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverB", 5, time.Time{}), "serverC": w.bundleFor("serverC", 1, time.Time{})})
	w.poll(OutcomeQuarantined)
}

func TestWaveDelay(t *testing.T) {
	w := newWorld(t)
	nb := w.clock.Add(10 * time.Minute).Truncate(time.Second)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, nb)})
	w.poll(OutcomeWaiting)
	st := w.readStatus()
	if st.Pending == nil || st.Pending.Serial != 1 || !st.Pending.NotBefore.Equal(nb) || st.State != StateIdle {
		t.Fatalf("pending = %+v state %s", st.Pending, st.State)
	}
	if d := w.agent.nextDelay(); d > 1100*time.Millisecond {
		t.Fatalf("next delay %s longer than the interval", d)
	}
	w.clock = nb.Add(-30 * time.Second)
	if d := w.agent.nextDelay(); d > 1100*time.Millisecond {
		t.Fatalf("next delay %s", d)
	}
	w.srv.ResetCounts()
	w.poll(OutcomeWaiting)
	if c := w.srv.Counts(); c.UploadPack != 0 {
		t.Fatalf("waiting poll fetched again: %+v", c)
	}
	if len(w.engine.appliedSerials()) != 0 {
		t.Fatal("applied before not_before")
	}
	w.clock = nb.Add(time.Second)
	w.poll(OutcomeApplied)
	if st := w.readStatus(); st.Pending != nil || st.Current.Serial != 1 {
		t.Fatalf("after the wave: pending %+v current %+v", st.Pending, st.Current)
	}
}

func TestRolledBackIsQuarantined(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.engine.fail = func(b *verify.Bundle) error {
		if b.Manifest.Serial == 2 {
			return &apply.RolledBackError{Serial: 2, Reason: errHealth, Health: []apply.HealthResult{{Name: "pg_j", Kind: verify.CheckJail, Error: "not running"}},
				Recheck: []apply.HealthResult{{Name: "pg_j", Kind: verify.CheckJail, OK: true}}}
		}
		return nil
	}
	b2 := w.bundleFor("serverA", 2, time.Time{})
	w.publish(map[string]*bundle.Built{"serverA": b2})
	w.poll(OutcomeRolledBack)
	st := w.readStatus()
	if st.State != StateRolledBack || st.Current.Serial != 1 || st.RolledBack == nil || st.RolledBack.Serial != 2 ||
		len(st.Quarantined) != 1 || !st.Quarantined[0].Verified || st.Quarantined[0].Kind != "rolled-back" {
		t.Fatalf("after rollback: %+v %+v %+v", st.State, st.RolledBack, st.Quarantined)
	}
	if len(st.Health) != 1 || !st.Health[0].OK {
		t.Fatalf("health = %+v, want the re-check of serial 1", st.Health)
	}
	if h := st.RolledBack.Health; len(h) != 1 || h[0].OK || h[0].Error != "not running" {
		t.Fatalf("rolled_back.health = %+v, want serial 2's failed check", h)
	}
	// Serial 2 republished (re-signed, new bytes): never retried.
	b2again := w.bundleFor("serverA", 2, time.Time{})
	b2again.Manifest.Created = b2again.Manifest.Created.Add(time.Second)
	w.publish(map[string]*bundle.Built{"serverA": b2again, "serverB": w.bundleFor("serverB", 9, time.Time{})})
	w.poll(OutcomeQuarantined)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]", got)
	}
	// Serial 3 is fine and clears the rolled-back state.
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 3, time.Time{})})
	w.poll(OutcomeApplied)
	if st := w.readStatus(); st.State != StateIdle || st.RolledBack != nil {
		t.Fatalf("after serial 3: %s %+v", st.State, st.RolledBack)
	}
}

func TestDegradedHoldsUntilResume(t *testing.T) {
	w := newWorld(t)
	w.engine.fail = func(b *verify.Bundle) error {
		return &apply.DegradedError{Serial: b.Manifest.Serial, Reason: errHealth, Err: errors.New("restore /etc/pf.conf: disk full")}
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeDegraded)
	if st := w.readStatus(); st.State != StateDegraded || st.Hold == nil {
		t.Fatalf("state %s hold %+v, want degraded with a hold", st.State, st.Hold)
	}
	w.engine.fail = nil
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.poll(OutcomeHeld)
	if st := w.readStatus(); st.Pending == nil || st.Pending.Serial != 2 {
		t.Fatalf("pending %+v", st.Pending)
	}
	if err := w.agent.Store().ClearHold(); err != nil { // agent resume
		t.Fatal(err)
	}
	w.poll(OutcomeApplied)
	if st := w.readStatus(); st.State != StateIdle || st.Current.Serial != 2 {
		t.Fatalf("after resume: %s %+v", st.State, st.Current)
	}
}

func TestHoldForExpires(t *testing.T) {
	w := newWorld(t)
	if err := w.agent.Store().SetHold(Hold{Since: w.clock, Until: w.clock.Add(time.Hour), Reason: "change freeze"}); err != nil {
		t.Fatal(err)
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeHeld)
	if st := w.readStatus(); st.State != StateHeld || st.Hold.Reason != "change freeze" {
		t.Fatalf("state %s hold %+v", st.State, st.Hold)
	}
	w.clock = w.clock.Add(2 * time.Hour)
	w.poll(OutcomeApplied)
}

func TestDriftCorrectAndReport(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.engine.drift = []string{"/etc/pf.conf"}
	w.poll(OutcomeUnchanged)
	st := w.readStatus()
	if w.engine.reinstalls != 1 || st.Drift == nil || !st.Drift.Corrected || !slices.Equal(st.Drift.Files, []string{"/etc/pf.conf"}) {
		t.Fatalf("drift correct: reinstalls %d drift %+v", w.engine.reinstalls, st.Drift)
	}
	w.cfg.Drift = "report"
	w.engine.drift = []string{"/etc/rc.conf"}
	w.poll(OutcomeUnchanged)
	st = w.readStatus()
	if w.engine.reinstalls != 1 || st.Drift.Corrected || !slices.Equal(st.Drift.Files, []string{"/etc/rc.conf"}) {
		t.Fatalf("drift report: reinstalls %d drift %+v", w.engine.reinstalls, st.Drift)
	}
}

func TestRollbackPinsUntilNewerSerial(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.poll(OutcomeApplied)
	res, err := w.agent.Rollback(context.Background(), 0)
	if err != nil || res.Serial != 1 {
		t.Fatalf("Rollback = %+v, %v", res, err)
	}
	st := w.readStatus()
	if st.State != StateRolledBack || st.Pin == nil || st.Pin.Serial != 1 || st.Pin.Above != 2 || st.Current.Serial != 1 {
		t.Fatalf("after rollback: %s pin %+v current %+v", st.State, st.Pin, st.Current)
	}
	// Restart; serial 2 republished under a new commit: stays pinned.
	w.open()
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{}), "serverB": w.bundleFor("serverB", 1, time.Time{})})
	w.poll(OutcomeUpToDate)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v", got)
	}
	// Serial 3 lifts the pin.
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 3, time.Time{})})
	w.poll(OutcomeApplied)
	if st := w.readStatus(); st.Pin != nil || st.State != StateIdle {
		t.Fatalf("after serial 3: pin %+v state %s", st.Pin, st.State)
	}
}

func TestPlanChangesNothing(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	res, err := w.agent.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Bundle.Manifest.Serial != 1 || len(res.Plan.Changes) != 2 {
		t.Fatalf("plan = %+v", res.Plan)
	}
	if len(w.engine.appliedSerials()) != 0 {
		t.Fatal("plan applied")
	}
	if w.agent.Store().LastSerialOrZero() != 0 {
		t.Fatal("plan moved last_serial")
	}
	w.poll(OutcomeApplied)
	res, err = w.agent.Plan(context.Background())
	if err != nil || !res.UpToDate {
		t.Fatalf("plan after apply = %+v, %v; want up to date", res, err)
	}
}

func TestClockBehindLastApply(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.clock = w.clock.Add(-time.Hour)
	err := w.poll(OutcomeError)
	if err == nil || !strings.Contains(err.Error(), "clock is behind the last apply") {
		t.Fatalf("err = %v", err)
	}
	w.clock = w.clock.Add(time.Hour + time.Second)
	w.poll(OutcomeApplied)
}

// TestNewKeysRetryRejected: a bundle refused under the old trust config is
// looked at again once the config pins the key that signed it.
func TestNewKeysRetryRejected(t *testing.T) {
	w := newWorld(t)
	other, err := bundle.GenerateSigner(bundle.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	b := w.bundleFor("serverA", 1, time.Time{})
	b.Envelope = nil
	if err := b.Sign(other); err != nil {
		t.Fatal(err)
	}
	w.publish(map[string]*bundle.Built{"serverA": b})
	if err := w.poll(OutcomeRejected); !errors.Is(err, verify.ErrThreshold) && !errors.Is(err, verify.ErrBadSignature) {
		t.Fatalf("unknown signer: %v", err)
	}
	w.poll(OutcomeUnchanged)

	pub, _ := other.PublicPEM()
	p := filepath.Join(w.dir, "other.pub")
	os.WriteFile(p, pub, 0o644)
	cfg := *w.cfg
	cfg.Trust.Keys = append(slices.Clone(cfg.Trust.Keys), p)
	if err := w.agent.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	w.poll(OutcomeApplied)
}
