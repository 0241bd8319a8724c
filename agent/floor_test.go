package agent

import (
	"errors"
	"fmt"
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

// TestQuarantineReplayWithoutKey (issue 14, item 1): someone who can push
// to the bundles branch but holds no key pushes more garbage commits than
// the quarantine keeps, then re-publishes the known-bad signed serial. It
// must not be applied again.
func TestQuarantineReplayWithoutKey(t *testing.T) {
	// The attack as reported pushes 50 commits; a bound of 5 shows the
	// same at a tenth of the polls.
	defer func(n int) { maxQuarantine = n }(maxQuarantine)
	maxQuarantine = 5
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.engine.fail = func(b *verify.Bundle) error {
		if b.Manifest.Serial == 2 {
			return &apply.RolledBackError{Serial: 2, Reason: errHealth}
		}
		return nil
	}
	bad := w.bundleFor("serverA", 2, time.Time{})
	w.publish(map[string]*bundle.Built{"serverA": bad})
	w.poll(OutcomeRolledBack)

	for i := range maxQuarantine + 2 {
		garbage := &bundle.Built{Envelope: fmt.Appendf(nil, `{"payloadType":"x","payload":"%d","signatures":[]}`, i), Archive: []byte("junk")}
		w.publish(map[string]*bundle.Built{"serverA": garbage})
		w.poll(OutcomeRejected)
	}
	q, err := w.agent.Store().Quarantine()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(q); n != maxQuarantine+1 {
		t.Fatalf("quarantine holds %d entries, want %d rejected plus the rolled-back serial", n, maxQuarantine+1)
	}
	if !slices.ContainsFunc(q, func(e Quarantined) bool { return e.Verified && e.Serial == 2 }) {
		t.Fatal("the rolled-back serial 2 was pushed out of the quarantine by unsigned entries")
	}

	// The replay: the same signed bytes again, and a fresh signature.
	w.publish(map[string]*bundle.Built{"serverA": bad})
	w.poll(OutcomeQuarantined)
	resigned := w.bundleFor("serverA", 2, time.Time{})
	w.publish(map[string]*bundle.Built{"serverA": resigned, "serverB": w.bundleFor("serverB", 1, time.Time{})})
	w.poll(OutcomeQuarantined)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]: the rolled-back serial was applied again", got)
	}
	// Even with the whole quarantine gone, the floor keeps it out.
	if err := os.Remove(filepath.Join(w.cfg.StateDir, fileQuarantine)); err != nil {
		t.Fatal(err)
	}
	w.publish(map[string]*bundle.Built{"serverA": bad, "serverC": w.bundleFor("serverC", 1, time.Time{})})
	if err := w.poll(OutcomeRejected); !errors.Is(err, verify.ErrRollback) {
		t.Fatalf("replay with the quarantine lost: %v, want ErrRollback", err)
	}
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]", got)
	}
}

// TestLostStateFailsClosed (issue 14, item 2): with last_serial and the
// engine's current record deleted, the kept generations and status.json
// still say 197; an older signed serial (151) must be refused. With every
// record gone but state left behind, the agent refuses to start.
func TestLostStateFailsClosed(t *testing.T) {
	w := newWorld(t)
	root := filepath.Join(w.dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	drv := applytest.New()
	openReal := func() (*Agent, error) {
		a, err := Open(w.cfg, Options{Driver: drv, Now: func() time.Time { return w.clock }})
		if err == nil {
			w.agent = a
			t.Cleanup(func() { a.Close() })
			err = a.Recover(t.Context())
		}
		return a, err
	}
	if _, err := openReal(); err != nil {
		t.Fatal(err)
	}
	old := w.bundleFor("serverA", 151, time.Time{})
	w.publish(map[string]*bundle.Built{"serverA": old})
	w.poll(OutcomeApplied)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 197, time.Time{})})
	w.poll(OutcomeApplied)

	state := w.cfg.StateDir
	for _, f := range []string{fileLastSerial, "current"} {
		if err := os.Remove(filepath.Join(state, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := openReal(); err != nil {
		t.Fatal(err)
	}
	if n, ok, _ := w.agent.Store().LastSerial(); !ok || n != 197 {
		t.Fatalf("last_serial after restart = %d, %v; want 197 rebuilt from the other records", n, ok)
	}
	w.publish(map[string]*bundle.Built{"serverA": old, "serverB": w.bundleFor("serverB", 1, time.Time{})})
	if err := w.poll(OutcomeRejected); !errors.Is(err, verify.ErrRollback) {
		t.Fatalf("serial 151 after losing last_serial and current: %v, want ErrRollback", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 197\n" {
		t.Fatalf("pf.conf = %q, want serial 197's", got)
	}

	// Every record gone, the quarantine and the clone left: refuse.
	w.agent.Close()
	for _, f := range []string{fileLastSerial, "current", fileStatus, "generations"} {
		if err := os.RemoveAll(filepath.Join(state, f)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := openReal()
	var nf *NoFloorError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "re-initialise") || !strings.Contains(err.Error(), "quarantine.json") {
		t.Fatalf("open with no floor record: %v, want NoFloorError saying how to re-initialise", err)
	}
	// The operator writes the floor back: the agent starts and refuses 151.
	if err := os.WriteFile(filepath.Join(state, fileLastSerial), []byte("197\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openReal(); err != nil {
		t.Fatal(err)
	}
	w.publish(map[string]*bundle.Built{"serverA": old, "serverC": w.bundleFor("serverC", 1, time.Time{})})
	w.poll(OutcomeQuarantined) // rejected before, under the same trust
	if got, _ := os.ReadFile(filepath.Join(root, "etc/pf.conf")); string(got) != "pass all # 197\n" {
		t.Fatalf("pf.conf = %q, want serial 197's", got)
	}
}

// TestFloorAfterCrashBeforeLastSerial (issue 14, item 4): a kill -9 right
// after the engine committed ("applied") leaves last_serial one behind
// the current generation. An operator rollback then pins the older
// generation; the rolled-back serial must not be applied again when the
// branch head moves.
func TestFloorAfterCrashBeforeLastSerial(t *testing.T) {
	w := newWorld(t)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{})})
	w.poll(OutcomeApplied)
	// The state a kill between the engine's commit and last_serial leaves.
	if err := w.agent.Store().SetLastSerial(1); err != nil {
		t.Fatal(err)
	}
	w.open()
	if _, err := w.agent.Rollback(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if st := w.readStatus(); st.Pin == nil || st.Pin.Serial != 1 || st.Pin.Above != 2 {
		t.Fatalf("pin = %+v, want serial 1 above 2", st.Pin)
	}
	// Restarted again, the branch head moves (serverB's bundle changes;
	// serial 2 is still published for serverA).
	w.open()
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 2, time.Time{}), "serverB": w.bundleFor("serverB", 1, time.Time{})})
	w.poll(OutcomeUpToDate)
	if got := w.engine.appliedSerials(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]: the rolled-back serial was applied again", got)
	}
	if n := w.agent.Store().LastSerialOrZero(); n != 2 {
		t.Fatalf("last_serial = %d, want 2", n)
	}
}

// TestFloorMovesAboveFailedSerials: a serial that failed its pre-check
// or was rolled back raises the floor, so only a newer one is tried.
func TestFloorMovesAboveFailedSerials(t *testing.T) {
	w := newWorld(t)
	w.engine.fail = func(b *verify.Bundle) error {
		return &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New("line 1: syntax error")}
	}
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 3, time.Time{})})
	w.poll(OutcomeRejected)
	if n := w.agent.Store().LastSerialOrZero(); n != 3 {
		t.Fatalf("last_serial after a failed pre-check = %d, want 3", n)
	}
	w.engine.fail = nil
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 4, time.Time{})})
	w.poll(OutcomeApplied)
}
