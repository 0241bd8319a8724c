package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// Poll does one round: ask for the branch head, fetch if it moved, verify,
// apply, and check drift. The returned error, if any, is what made the
// outcome. Cancelling ctx stops the poll between steps, never inside an
// install: the apply runs to its end with ctx's values but not its
// cancellation.
func (a *Agent) Poll(ctx context.Context) (Outcome, error) {
	start := a.now()
	a.st.Pending = nil
	r := a.poll(ctx)
	if r.commit != "" && settled(r.out, r.err) {
		a.st.SeenCommit = r.commit
	}
	out, commit, serial, err := r.out, r.commit, r.serial, r.err
	if out != OutcomeApplied && out != OutcomeRolledBack && out != OutcomeDegraded && a.st.RebootPending == nil && ctx.Err() == nil {
		a.checkDrift(ctx)
	}
	dur := a.now().Sub(start)
	if out == OutcomeError && ctx.Err() != nil {
		// Stopped (SIGTERM) between steps: not a failure of the source.
		a.log.Info("poll interrupted", "duration", dur.Round(time.Microsecond))
		return out, ctx.Err()
	}
	a.st.LastPoll = &PollInfo{At: start.UTC(), Outcome: out, DurationMS: dur.Milliseconds(), Commit: commit, Serial: serial}
	if out == OutcomeError {
		a.st.Failures++
	} else {
		a.st.Failures = 0
	}
	if err != nil {
		a.st.LastError = &ErrorInfo{At: a.now().UTC(), Message: err.Error()}
	}
	attrs := []any{"outcome", string(out), "duration", dur.Round(time.Microsecond)}
	if commit != "" {
		attrs = append(attrs, "commit", short(commit))
	}
	if serial != 0 {
		attrs = append(attrs, "serial", serial)
	}
	switch {
	case err != nil && out == OutcomeError:
		a.log.Error("poll", append(attrs, "err", err, "failures", a.st.Failures)...)
	case err != nil:
		a.log.Warn("poll", append(attrs, "err", err)...)
	default:
		a.log.Info("poll", attrs...)
	}
	write := a.writeStatus
	if out == OutcomeUnchanged && (a.st.Drift == nil || len(a.st.Drift.Files) == 0) {
		write = a.writeStatusFast
	}
	a.afterPoll(ctx, out, serial, err)
	if werr := write(); werr != nil && err == nil {
		return OutcomeError, werr
	}
	return out, err
}

// settled is the one place that decides, from how a poll ended, whether
// its commit is dealt with for good (the next poll asks for a new branch
// head and does nothing until it moves) or is tried again at the next
// poll. Transient failures (source, I/O, clock) and verdicts that change
// with time (not_before, a hold, a closed gate, a reboot still to come)
// are tried again; what the bundle itself earned (applied, rejected,
// quarantined, rolled back, a failed gate) stands.
func settled(out Outcome, err error) bool {
	switch out {
	case OutcomeUnchanged, OutcomeUpToDate, OutcomeApplied, OutcomeRejected, OutcomeQuarantined,
		OutcomeRolledBack, OutcomeDegraded:
		return true
	case OutcomeHeld:
		// Held by the operator: applied once the hold is lifted. Held by
		// a gating host that failed the serial: quarantined.
		return errors.As(err, new(*GateFailedError))
	case OutcomeRebootRequired:
		// Installed by this poll (no error); one still waiting for the
		// boot is looked at again.
		return err == nil
	case OutcomeError:
		// The commit has no usable bundle for this host: nothing to retry
		// until the branch moves.
		return errors.As(err, new(*BundleFileError))
	}
	return false // waiting (not_before, gate)
}

// pollResult is how a poll ended: the outcome, the commit and serial it
// was about (either may be unknown), and the error that made it.
type pollResult struct {
	out    Outcome
	commit string
	serial uint64
	err    error
}

func ended(out Outcome, commit string, serial uint64, err error) *pollResult {
	return &pollResult{out, commit, serial, err}
}

// poll runs the stages of one poll; each either hands on to the next or
// ends the poll. None decides whether the commit is dealt with: Poll does
// (settled).
func (a *Agent) poll(ctx context.Context) pollResult {
	if r := a.prepare(ctx); r != nil {
		return *r
	}
	commit, r := a.head(ctx)
	if r != nil {
		return *r
	}
	if r := a.screen(commit); r != nil {
		return *r
	}
	bf, r := a.readBundle(ctx, commit)
	if r != nil {
		return *r
	}
	b, r := a.verifyBundle(bf)
	if r != nil {
		return *r
	}
	if r := a.admit(ctx, b, bf); r != nil {
		return *r
	}
	return a.install(ctx, b, bf)
}

// prepare reads the hold and the rollback pin, deals with an unreadable
// journal set aside by `agent resume`, and finishes a bundle that waited
// for a reboot (which ends the poll).
func (a *Agent) prepare(ctx context.Context) *pollResult {
	hold, err := a.store.Hold()
	if err != nil {
		return ended(OutcomeError, "", 0, err)
	}
	a.st.Hold = nil
	if hold.Active(a.now()) {
		a.st.Hold = hold
	}
	if a.st.Pin, err = a.store.Pin(); err != nil {
		return ended(OutcomeError, "", 0, err)
	}
	if _, err := a.resumeJournal(ctx); err != nil {
		return ended(OutcomeError, "", 0, err)
	}
	if out, serial, err, done := a.resume(ctx); done {
		return ended(out, "", serial, err)
	}
	return nil
}

// head asks for the branch head and fetches it if the local store does not
// have it yet. A head already dealt with ends the poll: unchanged.
func (a *Agent) head(ctx context.Context) (string, *pollResult) {
	head, err := a.src.Head(ctx)
	if err != nil {
		return "", ended(OutcomeError, "", 0, err)
	}
	if head == a.st.SeenCommit {
		return "", ended(OutcomeUnchanged, head, 0, nil)
	}
	if a.src.Has(head) {
		return head, nil
	}
	if ctx.Err() != nil {
		return "", ended(OutcomeError, head, 0, ctx.Err())
	}
	fstart := a.now()
	commit, err := a.src.Fetch(ctx)
	if err != nil {
		return "", ended(OutcomeError, head, 0, err)
	}
	a.log.Info("fetched", "commit", short(commit), "duration", since(fstart))
	return commit, nil
}

// screen compares the host's blob ids with the applied bundle and the
// quarantine before anything is read or verified.
func (a *Agent) screen(commit string) *pollResult {
	mblob, ablob, err := a.src.BlobIDs(commit, a.cfg.Host)
	if err != nil {
		return nil // read reports it
	}
	if c := a.st.Current; c != nil && c.ManifestBlob == mblob && c.ArchiveBlob == ablob {
		return ended(OutcomeUpToDate, commit, c.Serial, nil)
	}
	q, err := a.store.Quarantine()
	if err != nil {
		return ended(OutcomeError, commit, 0, err)
	}
	for _, e := range q {
		// A rejection stands only for the trust config that made it:
		// new keys may accept what old ones refused.
		if e.Manifest == mblob && e.Archive == ablob && (e.Kind != "rejected" || e.Trust == a.trustID()) {
			return ended(OutcomeQuarantined, commit, e.Serial, fmt.Errorf("serial %d is quarantined: %s", e.Serial, e.Reason))
		}
	}
	return nil
}

// readBundle reads the host's two bundle files from the commit, within verify's
// size limits.
func (a *Agent) readBundle(ctx context.Context, commit string) (*BundleFiles, *pollResult) {
	lim := verify.DefaultLimits()
	bf, err := a.src.Read(commit, a.cfg.Host, lim.ManifestSize, lim.ArchiveSize)
	if err != nil {
		return nil, ended(OutcomeError, commit, 0, err)
	}
	if ctx.Err() != nil {
		return nil, ended(OutcomeError, commit, 0, ctx.Err())
	}
	return bf, nil
}

// verifyBundle checks the bundle against the trust config and the serial floor,
// and sorts a rejection: the bundle a rollback pin holds back, a
// quarantined serial republished, our own serial under a new commit, or a
// new rejection (quarantined).
func (a *Agent) verifyBundle(bf *BundleFiles) (*verify.Bundle, *pollResult) {
	commit := bf.Commit
	last, err := a.lastSerial()
	if err != nil {
		return nil, ended(OutcomeError, commit, 0, err)
	}
	// Expiry and not_before mean nothing on a clock that went backwards.
	if c := a.st.Current; c != nil && !c.AppliedAt.IsZero() && a.now().Before(c.AppliedAt.Add(-clockSkew)) {
		return nil, ended(OutcomeError, commit, 0, fmt.Errorf("clock is behind the last apply (%s); fix the time (NTP) before bundles are accepted", c.AppliedAt.Format(time.RFC3339)))
	}
	b, err := verify.Verify(bf.Manifest, bytes.NewReader(bf.Archive), a.verifyOptions(last))
	if err == nil {
		a.lastManifest = &b.Manifest
		return b, nil
	}
	var rej *verify.RejectError
	if !errors.As(err, &rej) {
		return nil, ended(OutcomeError, commit, 0, fmt.Errorf("verify: %w", err))
	}
	claimed := claimedSerial(bf.Manifest)
	rollback := errors.Is(err, verify.ErrRollback)
	switch {
	case rollback && a.st.Pin != nil && claimed <= a.st.Pin.Above:
		// Pinned by `agent rollback`: the bundle we rolled back from
		// stays published until a newer one arrives.
		return nil, ended(OutcomeUpToDate, commit, claimed, nil)
	case rollback && a.quarantinedSerial(claimed) != nil:
		// A signed serial that failed here before, republished: the
		// floor is above it now; it stays quarantined.
		e := a.quarantinedSerial(claimed)
		return nil, ended(OutcomeQuarantined, commit, claimed, fmt.Errorf("serial %d is quarantined: %s", claimed, e.Reason))
	case rollback && a.st.Current != nil && claimed == a.st.Current.Serial:
		// Our own serial under a new commit: status.json was lost, or
		// the bundle was re-signed (bundler sign adds a signature).
		// Nothing to do either way; different bytes are worth a word.
		if a.st.Current.ManifestBlob != "" && a.st.Current.ManifestBlob != bf.ManifestBlob {
			a.log.Warn("applied serial republished with different bytes; keeping the applied one", "serial", claimed, "commit", short(commit))
		}
		a.st.Current.ManifestBlob, a.st.Current.ArchiveBlob = bf.ManifestBlob, bf.ArchiveBlob
		return nil, ended(OutcomeUpToDate, commit, claimed, nil)
	}
	qerr := a.store.AddQuarantine(Quarantined{
		Serial: claimed, Commit: commit, Reason: err.Error(), Kind: "rejected", At: a.now().UTC(),
		Manifest: bf.ManifestBlob, Archive: bf.ArchiveBlob, Trust: a.trustID(),
	})
	return nil, ended(OutcomeRejected, commit, claimed, errors.Join(err, qerr))
}

// admit decides whether a verified bundle is installed now: not if its
// serial is quarantined, its not_before has not come, applies are held or
// its gate is not open.
func (a *Agent) admit(ctx context.Context, b *verify.Bundle, bf *BundleFiles) *pollResult {
	serial, commit := b.Manifest.Serial, bf.Commit
	q, err := a.store.Quarantine()
	if err != nil {
		return ended(OutcomeError, commit, serial, err)
	}
	for _, e := range q {
		if e.Verified && e.Serial == serial {
			return ended(OutcomeQuarantined, commit, serial, fmt.Errorf("serial %d is quarantined: %s", serial, e.Reason))
		}
	}
	if nb := b.Manifest.NotBefore; !nb.IsZero() && a.now().Before(nb) {
		a.st.Pending = &Pending{Serial: serial, Commit: commit, NotBefore: nb.UTC(), Reason: "not_before"}
		return ended(OutcomeWaiting, commit, serial, nil)
	}
	if a.st.Hold != nil {
		a.st.Pending = &Pending{Serial: serial, Commit: commit, Reason: "held: " + a.st.Hold.Reason}
		return ended(OutcomeHeld, commit, serial, nil)
	}
	if out, err := a.checkGate(ctx, b, bf); out != "" {
		return ended(out, commit, serial, err)
	}
	if ctx.Err() != nil {
		return ended(OutcomeError, commit, serial, ctx.Err())
	}
	return nil
}

// install applies a verified bundle and records the result.
func (a *Agent) install(ctx context.Context, b *verify.Bundle, bf *BundleFiles) pollResult {
	serial, commit := b.Manifest.Serial, bf.Commit
	a.st.Applying = true
	if err := a.writeStatus(); err != nil {
		a.st.Applying = false
		return pollResult{OutcomeError, commit, serial, err}
	}
	a.log.Info("applying", "serial", serial, "commit", short(commit), "files", len(b.Manifest.Files))
	// An install always runs to its end: SIGTERM waits for it.
	res, err := a.engine.Apply(context.WithoutCancel(ctx), b)
	a.st.Applying = false
	now := a.now().UTC()
	var (
		pre *apply.PrecheckError
		rb  *apply.RolledBackError
		dg  *apply.DegradedError
		rr  *apply.RebootRequiredError
	)
	if err == nil || errors.As(err, &pre) || errors.As(err, &rb) || errors.As(err, &dg) {
		// Applied, or failed for good: the floor moves above it, so that
		// neither a lost quarantine entry nor a pin can let it in again.
		// (An interrupted install is not recorded: after recovery it may
		// be retried, SECURITY.md 3.2.)
		if ferr := a.raiseFloor(serial); ferr != nil {
			return pollResult{OutcomeError, commit, serial, errors.Join(err, ferr)}
		}
	}
	switch {
	case err == nil:
		if err := a.store.ClearPin(); err != nil {
			return pollResult{OutcomeError, commit, serial, err}
		}
		a.st.Pin, a.st.RolledBack = nil, nil
		a.st.Current = &Current{
			Serial: serial, SourceCommit: b.Manifest.Source.Commit, BundlesCommit: commit,
			Signers: slices.Clone(b.Signers), AppliedAt: now, RebootRequired: res.RebootRequired, RebootReasons: res.RebootReasons, Expires: b.Manifest.Expires,
			ManifestBlob: bf.ManifestBlob, ArchiveBlob: bf.ArchiveBlob,
		}
		for _, s := range res.Live {
			a.st.Current.Live = append(a.st.Current.Live, strings.Join(s.Do, " "))
		}
		a.st.Health = healthOf(res.Health)
		a.st.Drift = &Drift{CheckedAt: now, Files: []string{}, Mode: a.cfg.Drift}
		units := make([]string, len(res.Units))
		for i, u := range res.Units {
			units[i] = u.String()
		}
		a.log.Info("applied", "serial", serial, "units", units, "reboot_required", res.RebootRequired, "duration", res.Duration)
		return pollResult{OutcomeApplied, commit, serial, nil}
	case errors.As(err, &rr) && !rr.Waiting:
		// Installed: the floor moves above it, as for an applied serial.
		if err := a.raiseFloor(serial); err != nil {
			return pollResult{OutcomeError, commit, serial, err}
		}
		a.st.RebootPending = &Current{
			Serial: serial, SourceCommit: b.Manifest.Source.Commit, BundlesCommit: commit,
			Signers: slices.Clone(b.Signers), AppliedAt: now, RebootRequired: true,
			ManifestBlob: bf.ManifestBlob, ArchiveBlob: bf.ArchiveBlob,
		}
		a.log.Warn("reboot required: installed, nothing activated; health check and commit after the next boot", "serial", serial)
		return pollResult{OutcomeRebootRequired, commit, serial, nil}
	case errors.As(err, &rr):
		return pollResult{OutcomeRebootRequired, commit, rr.Serial, err}
	case errors.As(err, &pre):
		qerr := a.quarantine(serial, commit, "precheck", err, bf)
		return pollResult{OutcomeRejected, commit, serial, errors.Join(err, qerr)}
	case errors.As(err, &rb):
		a.st.Health = healthOf(rb.Recheck)
		a.st.RolledBack = &RolledBack{Serial: serial, Reason: rb.Reason.Error(), At: now, Health: healthOf(rb.Health)}
		qerr := a.quarantine(serial, commit, "rolled-back", rb.Reason, bf) // the kind says it was rolled back
		return pollResult{OutcomeRolledBack, commit, serial, errors.Join(err, qerr)}
	case errors.As(err, &dg):
		h := Hold{Since: now, Reason: holdDegraded + err.Error()}
		herr := a.store.SetHold(h)
		a.st.Hold = &h
		qerr := a.quarantine(serial, commit, "rolled-back", err, bf)
		a.log.Error("DEGRADED: the previous generation could not be restored; applies are held until `agent resume`", "serial", serial, "err", err)
		return pollResult{OutcomeDegraded, commit, serial, errors.Join(err, herr, qerr)}
	}
	return pollResult{OutcomeError, commit, serial, fmt.Errorf("apply serial %d: %w", serial, err)}
}

// quarantinedSerial returns the quarantine entry of a signed serial that
// failed or was rolled back, or nil.
func (a *Agent) quarantinedSerial(serial uint64) *Quarantined {
	q, err := a.store.Quarantine()
	if err != nil {
		return nil
	}
	for i := range q {
		if q[i].Verified && q[i].Serial == serial {
			return &q[i]
		}
	}
	return nil
}

// resume finishes a bundle that waited for a reboot (apply.Engine.Resume):
// done is false when there is none, so the poll goes on.
func (a *Agent) resume(ctx context.Context) (out Outcome, serial uint64, err error, done bool) {
	res, err := a.engine.Resume(context.WithoutCancel(ctx))
	if err == nil && res == nil {
		a.st.RebootPending = nil
		return "", 0, nil, false
	}
	p := a.st.RebootPending
	var rr *apply.RebootRequiredError
	if errors.As(err, &rr) {
		if p == nil || p.Serial != rr.Serial {
			a.st.RebootPending = &Current{Serial: rr.Serial, RebootRequired: true}
		}
		return OutcomeRebootRequired, rr.Serial, nil, true
	}
	if p == nil {
		p = &Current{}
	}
	a.st.RebootPending = nil
	now := a.now().UTC()
	var (
		rb *apply.RolledBackError
		dg *apply.DegradedError
	)
	bf := &BundleFiles{Commit: p.BundlesCommit, ManifestBlob: p.ManifestBlob, ArchiveBlob: p.ArchiveBlob}
	switch {
	case err == nil:
		if err := a.store.ClearPin(); err != nil {
			return OutcomeError, res.Serial, err, true
		}
		c := *p
		c.Serial, c.AppliedAt, c.RebootRequired = res.Serial, now, false
		a.st.Pin, a.st.RolledBack, a.st.Current = nil, nil, &c
		a.st.Health = healthOf(res.Health)
		a.log.Info("applied after reboot", "serial", res.Serial)
		return OutcomeApplied, res.Serial, nil, true
	case errors.As(err, &rb):
		a.st.Health = healthOf(rb.Recheck)
		a.st.RolledBack = &RolledBack{Serial: rb.Serial, Reason: rb.Reason.Error(), At: now, Health: healthOf(rb.Health)}
		qerr := a.quarantine(rb.Serial, p.BundlesCommit, "rolled-back", rb.Reason, bf)
		return OutcomeRolledBack, rb.Serial, errors.Join(err, qerr, a.syncCurrent()), true
	case errors.As(err, &dg):
		h := Hold{Since: now, Reason: holdDegraded + err.Error()}
		herr := a.store.SetHold(h)
		a.st.Hold = &h
		qerr := a.quarantine(dg.Serial, p.BundlesCommit, "rolled-back", err, bf)
		return OutcomeDegraded, dg.Serial, errors.Join(err, herr, qerr), true
	}
	a.st.RebootPending = p
	return OutcomeError, p.Serial, err, true
}

func (a *Agent) quarantine(serial uint64, commit, kind string, err error, bf *BundleFiles) error {
	return a.store.AddQuarantine(Quarantined{
		Serial: serial, Verified: true, Commit: commit, Reason: err.Error(), Kind: kind, At: a.now().UTC(),
		Manifest: bf.ManifestBlob, Archive: bf.ArchiveBlob,
	})
}

// checkDrift hashes the managed files and, with drift: correct, puts the
// current generation back. It never acts while applies are held.
func (a *Agent) checkDrift(ctx context.Context) {
	if a.st.Current == nil {
		return
	}
	files, err := a.engine.Drift()
	d := &Drift{CheckedAt: a.now().UTC(), Files: files, Mode: a.cfg.Drift}
	if d.Files == nil {
		d.Files = []string{}
	}
	if err != nil {
		d.Error = err.Error()
		a.log.Warn("drift check failed", "err", err)
		a.st.Drift = d
		return
	}
	changed := a.st.Drift == nil || !slices.Equal(a.st.Drift.Files, d.Files)
	if len(files) > 0 && a.cfg.Drift == "correct" && a.st.Hold == nil {
		a.log.Warn("drift: reinstalling the current generation", "files", files)
		res, err := a.engine.Reinstall(context.WithoutCancel(ctx))
		if err != nil {
			d.Error = "reinstall: " + err.Error()
			a.log.Error("drift correction failed", "err", err)
		} else {
			d.Corrected = true
			a.st.Health = healthOf(res.Health)
		}
	} else if len(files) > 0 && changed {
		a.log.Warn("drift: managed files changed on disk", "files", files)
	}
	a.st.Drift = d
}
