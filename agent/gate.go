package agent

import (
	"context"
	"errors"

	"github.com/rigger-bsd/rigger/verify"
)

// GateFailedError: a gating host rolled back or rejected the serial; it
// is quarantined here and only a newer commit moves this host.
type GateFailedError struct {
	Serial uint64
	Reason string
}

func (e *GateFailedError) Error() string { return e.Reason }

// checkGate decides whether a verified bundle may be applied now: the
// gating hosts its manifest names must report its serial (or a later one)
// healthy for the bake time. It returns "" when the bundle may go ahead;
// otherwise the outcome to end the poll with: waiting while the gate is
// closed (looked at again next poll), held for good when a gating host
// rolled back or rejected its serial (quarantined, so only a newer commit
// moves this host).
func (a *Agent) checkGate(ctx context.Context, b *verify.Bundle, bf *BundleFiles) (Outcome, error) {
	commit := bf.Commit
	g := b.Manifest.Gate
	if g == nil {
		return "", nil
	}
	hosts := make([]string, len(g.Hosts))
	for i, h := range g.Hosts {
		hosts[i] = h.Host
	}
	in := map[string]verify.GateInput{}
	got, err := a.rep.remote.Read(ctx, hosts)
	for _, h := range hosts {
		gi := verify.GateInput{Newest: a.rep.newest[h]}
		switch f, ok := got[h]; {
		case err != nil:
			gi.Err = err
		case ok:
			gi.Envelope, gi.Err = f.Envelope, f.Err
		}
		in[h] = gi
	}
	res := verify.CheckGate(g, in)
	for _, h := range res.Hosts {
		if h.Report != nil && h.Report.Time.After(a.rep.newest[h.Host]) {
			a.rep.newest[h.Host] = h.Report.Time
		}
	}
	serial := b.Manifest.Serial
	reason := res.Reason()
	switch res.State {
	case verify.GateOpen:
		a.log.Info("gate open", "serial", serial, "hosts", hosts)
		return "", nil
	case verify.GateFailed:
		a.st.Pending = &Pending{Serial: serial, Commit: commit, Reason: reason}
		// Failed for good, like a rollback: the floor moves above it.
		ferr := a.raiseFloor(serial)
		qerr := a.quarantine(serial, commit, "gate-failed", errors.New(reason), bf)
		return OutcomeHeld, errors.Join(&GateFailedError{Serial: serial, Reason: reason}, ferr, qerr)
	}
	if ctx.Err() != nil {
		return OutcomeError, ctx.Err()
	}
	a.st.Pending = &Pending{Serial: serial, Commit: commit, Reason: reason}
	a.log.Info("waiting for gate", "serial", serial, "reason", reason)
	return OutcomeWaiting, nil
}
