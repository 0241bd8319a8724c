package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/rigger-bsd/rigger/apply/applytest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
)

// TestCorruptStatusRebuilt (issue 14, item 7): a truncated status.json
// neither stops `status` nor the agent; it is rebuilt, with a warning.
func TestCorruptStatusRebuilt(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	p := filepath.Join(w.cfg.StateDir, fileStatus)
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	st := w.readStatus()
	if len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "status.json is unreadable") {
		t.Fatalf("status of a truncated status.json: warnings %q", st.Warnings)
	}
	w.open()
	if err := w.agent.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.poll(OutcomeUpToDate) // status lost its seen commit: looks again, finds its own serial
	st = w.readStatus()
	if st.Current == nil || st.Current.Serial != 1 || !strings.Contains(strings.Join(st.Warnings, "\n"), "rebuilt") {
		t.Fatalf("after the restart: current %+v warnings %q", st.Current, st.Warnings)
	}
}

// TestUnreadableJournalDegraded (issue 14, item 7): a garbage journal
// after a crash does not stop the agent, nor leave status saying idle:
// it is degraded, says what `agent resume` will do, and does it.
func TestUnreadableJournalDegraded(t *testing.T) {
	w := newWorld(t)
	root := filepath.Join(w.dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	drv := applytest.New()
	open := func() {
		a, err := Open(w.cfg, Options{Driver: drv, Now: func() time.Time { return w.clock }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		w.agent = a
		if err := a.Recover(t.Context()); err != nil {
			t.Fatalf("recover: %v", err)
		}
	}
	open()
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	// A crash mid-install of serial 2 left its file and a torn journal.
	pf := filepath.Join(root, "etc/pf.conf")
	os.WriteFile(pf, []byte("pass all # 2, half installed\n"), 0o600)
	os.WriteFile(filepath.Join(w.cfg.StateDir, "journal.json"), []byte(`{"txn":"2-ab`), 0o600)

	open()
	st := w.readStatus()
	if st.State != StateDegraded || st.Hold == nil || !strings.Contains(st.Hold.Reason, "`agent resume` will set the journal aside") ||
		!strings.Contains(st.Hold.Reason, "serial 1") {
		t.Fatalf("after a torn journal: state %s hold %+v", st.State, st.Hold)
	}
	var text bytes.Buffer
	st.WriteText(&text, w.clock)
	if !strings.Contains(text.String(), "degraded") || !strings.Contains(text.String(), "journal") {
		t.Fatalf("status text:\n%s", text.String())
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.poll(OutcomeHeld)

	if err := w.agent.Store().ClearHold(); err != nil { // agent resume
		t.Fatal(err)
	}
	w.poll(OutcomeApplied)
	if got, _ := os.ReadFile(pf); string(got) != "pass all # 2\n" {
		t.Fatalf("pf.conf = %q", got)
	}
	if aside, _ := filepath.Glob(filepath.Join(w.cfg.StateDir, "journal.json.unreadable-*")); len(aside) != 1 {
		t.Fatalf("journal set aside: %v", aside)
	}
	if st := w.readStatus(); st.State != StateIdle || st.JournalUnreadable != "" {
		t.Fatalf("after resume: %s %q", st.State, st.JournalUnreadable)
	}
}

// TestExpiryInStatus (issue 14, item 7): status shows when the installed
// bundle expires and warns a week before, and after.
func TestExpiryInStatus(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	st := w.readStatus()
	if st.Current.Expires.IsZero() || len(st.Warnings) != 0 {
		t.Fatalf("fresh bundle: expires %v warnings %q", st.Current.Expires, st.Warnings)
	}
	var text bytes.Buffer
	st.WriteText(&text, w.clock)
	if !strings.Contains(text.String(), "expires:") {
		t.Fatalf("status text has no expiry:\n%s", text.String())
	}
	w.clock = st.Current.Expires.Add(-48 * time.Hour)
	w.poll(OutcomeUnchanged)
	if st := w.readStatus(); len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "expires at") {
		t.Fatalf("two days before expiry: %q", st.Warnings)
	}
	w.clock = st.Current.Expires.Add(time.Hour)
	if st := w.readStatus(); len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "expired at") {
		t.Fatalf("after expiry: %q", st.Warnings)
	}
}

// TestLockWhileStatusProbes: "agent status" asks whether an agent runs by
// taking the lock shared for an instant (Locked). An agent starting at
// that instant must not take the probe for another agent and exit: found
// as "state dir ... is in use by another agent" (no pid) in an end-to-end
// run. A real agent holding the lock is still refused at once.
func TestLockWhileStatusProbes(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	// A probe that holds the shared lock until the agent has tried once.
	probe := flock.New(s.path(fileLock))
	if ok, err := probe.TryRLock(); !ok || err != nil {
		t.Fatalf("probe: %v %v", ok, err)
	}
	tried := make(chan struct{})
	lockTried = func() {
		select {
		case <-tried:
		default:
			close(tried)
		}
	}
	defer func() { lockTried = func() {} }()
	go func() {
		<-tried
		probe.Unlock()
	}()
	unlock, err := s.Lock()
	if err != nil {
		t.Fatalf("an agent starting while agent status probes: %v", err)
	}
	if s.LockPID() != os.Getpid() {
		t.Errorf("lock pid %d, want ours", s.LockPID())
	}
	// Held by an agent: refused, without waiting for it.
	var le *LockedError
	if _, err := s.Lock(); !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("second agent: %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if !s.Locked() {
		t.Error("Locked is false while an agent holds the lock")
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if s.Locked() {
		t.Error("Locked is true after the agent let go")
	}
}
