package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// TestSettled is the table of how a poll's end decides between trying the
// same commit again next poll (false) and waiting for the branch to move
// (true).
func TestSettled(t *testing.T) {
	fetchErr := &SourceError{Op: "fetch", URL: "https://git.example/infra", Err: context.DeadlineExceeded}
	rejected := &verify.RejectError{Reason: verify.ErrBadSignature}
	for _, c := range []struct {
		name string
		out  Outcome
		err  error
		want bool
	}{
		{"branch head as last seen", OutcomeUnchanged, nil, true},
		{"transient fetch failure", OutcomeError, fetchErr, false},
		{"state I/O error", OutcomeError, errors.New("read hold: permission denied"), false},
		{"stopped between steps", OutcomeError, context.Canceled, false},
		{"clock behind the last apply", OutcomeError, errors.New("clock is behind the last apply"), false},
		{"no usable bundle in the commit", OutcomeError, fmt.Errorf("read: %w", &BundleFileError{Commit: "c0ffee", Path: "serverA/manifest.json", Err: errors.New("missing")}), true},
		{"apply failed with no verdict", OutcomeError, errors.New("apply serial 7: disk full"), false},
		{"bundle is the applied one", OutcomeUpToDate, nil, true},
		{"rejected bundle", OutcomeRejected, rejected, true},
		{"rejected at pre-check", OutcomeRejected, &apply.PrecheckError{Path: "/etc/pf.conf", Err: errors.New("syntax")}, true},
		{"quarantined before", OutcomeQuarantined, errors.New("serial 7 is quarantined: health"), true},
		{"applied", OutcomeApplied, nil, true},
		{"failed health, rolled back", OutcomeRolledBack, errors.New("rolled back: health"), true},
		{"rollback failed too", OutcomeDegraded, errors.New("restore failed"), true},
		{"installed, waits for a reboot", OutcomeRebootRequired, nil, true},
		{"earlier install still waits for the boot", OutcomeRebootRequired, &apply.RebootRequiredError{Serial: 7, Waiting: true}, false},
		{"not_before in the future", OutcomeWaiting, nil, false},
		{"gate closed", OutcomeWaiting, nil, false},
		{"operator hold", OutcomeHeld, nil, false},
		{"gating host failed the serial", OutcomeHeld, errors.Join(&GateFailedError{Serial: 7, Reason: "serverB rolled back 7"}, nil), true},
	} {
		if got := settled(c.out, c.err); got != c.want {
			t.Errorf("%s (%s, %v): settled %v, want %v", c.name, c.out, c.err, got, c.want)
		}
	}
}
