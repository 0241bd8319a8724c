// Package agent is the loop that runs on every host: it follows the
// bundles branch through a git Source, verifies the host's bundle
// (package verify), hands it to the apply engine (package apply), and keeps
// the state an operator needs (status, last accepted serial, quarantine,
// hold, rollback pin) in the state dir. It owns scheduling (interval,
// jitter, backoff, rollout waves), the one-agent-per-state-dir lock and
// the operator commands' logic; package agent/cli is the command line.
package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

// clockSkew is how far the clock may be behind the last apply before the
// agent stops accepting bundles.
const clockSkew = 5 * time.Minute

// Outcome is what one poll came to.
type Outcome string

// Poll outcomes (Status.LastPoll.Outcome, and one log line each).
const (
	OutcomeUnchanged   Outcome = "unchanged"   // branch head as last seen: one ref advertisement, nothing else
	OutcomeUpToDate    Outcome = "up-to-date"  // new commit, but this host's bundle is the applied one
	OutcomeApplied     Outcome = "applied"     // a new bundle was installed and is healthy
	OutcomeWaiting     Outcome = "waiting"     // verified, but its not_before (rollout wave) is in the future
	OutcomeHeld        Outcome = "held"        // verified, but applies are on hold
	OutcomeRejected    Outcome = "rejected"    // verification or pre-check refused the bundle; quarantined
	OutcomeQuarantined Outcome = "quarantined" // the bundle was quarantined before; not tried again
	OutcomeRolledBack  Outcome = "rolled-back" // installed, failed, previous generation restored; quarantined
	OutcomeDegraded    Outcome = "degraded"    // the restore failed too; applies held
	OutcomeError       Outcome = "error"       // the poll failed (source, I/O); retried with backoff
	// OutcomeRebootRequired: the bundle is installed and waits for a
	// reboot; the first poll after the boot health-checks and commits it.
	OutcomeRebootRequired Outcome = "reboot-required"
)

// Engine is the apply engine as the agent uses it; *apply.Engine is the
// implementation, tests may substitute their own.
type Engine interface {
	Recover(ctx context.Context) (*apply.Recovery, error)
	Resume(ctx context.Context) (*apply.Result, error)
	Plan(b *verify.Bundle) (*apply.Plan, error)
	Apply(ctx context.Context, b *verify.Bundle) (*apply.Result, error)
	Rollback(ctx context.Context, serial uint64) (*apply.Result, error)
	Reinstall(ctx context.Context) (*apply.Result, error)
	Drift() ([]string, error)
	Current() (*apply.Generation, error)
	Generations() ([]apply.Generation, error)
}

var _ Engine = (*apply.Engine)(nil)

// Options are the parts of an Agent that are not configuration.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Engine replaces the apply engine built from the config (tests).
	Engine Engine
	// Driver replaces the host driver named by the config (tests); the
	// real engine is built around it.
	Driver apply.Driver
}

// Agent polls one source for one host. It is not safe for concurrent use;
// the caller holds the state dir lock (Store.Lock) for its lifetime.
type Agent struct {
	cfg    *Config
	store  Store
	src    *Source
	engine Engine
	driver apply.Driver
	keys   []verify.PublicKey
	log    *slog.Logger
	now    func() time.Time
	st     *Status
	// warnings found at start (a rebuilt status.json), shown in status.
	warnings []string
	rep      *reporter
	// lastManifest is the last bundle verified, for the status report.
	lastManifest *verify.Manifest
}

// Open prepares an agent: state dir, git repository, trust keys, driver
// and engine. It does not poll and does not take the lock.
func Open(cfg *Config, opts Options) (*Agent, error) {
	a := &Agent{cfg: cfg, store: Store{Dir: cfg.StateDir}, log: opts.Logger, now: opts.Now}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if err := a.store.Init(); err != nil {
		return nil, err
	}
	var err error
	if a.keys, err = LoadKeys(cfg.Trust.Keys); err != nil {
		return nil, err
	}
	if a.src, err = OpenSource(a.store.path(dirGit), cfg.Source); err != nil {
		return nil, err
	}
	if a.rep, err = openReporter(cfg); err != nil {
		return nil, err
	}
	a.engine = opts.Engine
	if a.engine == nil {
		a.driver = opts.Driver
		if a.driver == nil {
			a.driver, err = apply.NewDriver(cfg.Driver, apply.DriverOptions{Root: cfg.Root, Logger: a.log})
			if err != nil {
				return nil, err
			}
		}
		eng, err := apply.New(apply.Config{
			Root:          cfg.Root,
			StateDir:      cfg.StateDir,
			Driver:        a.driver,
			HealthTimeout: cfg.Health.Timeout,
			Logger:        a.log,
			GitCheck:      a.src.Check,
			// Live host steps on the path to the source are confirmed
			// by it answering, or undone (apply/live).
			ManagementSource: a.src.Addr,
		})
		if err != nil {
			a.driver.Close()
			return nil, err
		}
		a.engine = eng
	}
	st, err := a.store.Status()
	if err != nil {
		// A report, not a record that must be trusted: rebuild it from
		// the engine's generations and the other state files.
		a.log.Warn("status.json is unreadable; rebuilding it from the other state records", "err", err)
		a.warnings = append(a.warnings, "status.json was unreadable and has been rebuilt: "+err.Error())
		st = nil
	}
	var stSerial uint64
	if st != nil && st.Current != nil {
		stSerial = st.Current.Serial
	}
	if err := a.initFloor(stSerial, st != nil); err != nil {
		a.Close()
		return nil, err
	}
	if st == nil {
		st = &Status{}
	}
	st.Schema = StatusSchema
	st.Host = cfg.Host
	st.Source = RedactURL(cfg.Source.URL) + "#" + cfg.Source.Branch
	st.Applying = false
	a.st = st
	a.noteTrust()
	return a, nil
}

// trustID fingerprints the trust config (key ids and threshold).
func (a *Agent) trustID() string {
	ids := make([]string, len(a.keys))
	for i, k := range a.keys {
		ids[i] = k.ID
	}
	slices.Sort(ids)
	sum := sha256.Sum256(fmt.Appendf(nil, "%d:%s", a.cfg.Trust.Threshold, strings.Join(ids, ",")))
	return hex.EncodeToString(sum[:8])
}

// noteTrust records the trust config; when it changed, the branch head is
// looked at again even if unchanged (a bundle rejected under the old keys
// may pass now).
func (a *Agent) noteTrust() {
	if id := a.trustID(); id != a.st.Trust {
		a.st.Trust = id
		a.st.SeenCommit = ""
	}
}

// Close releases what the driver started.
func (a *Agent) Close() error {
	if a.driver != nil {
		return a.driver.Close()
	}
	return nil
}

// Store returns the agent's state store.
func (a *Agent) Store() Store { return a.store }

// LoadKeys reads the pinned public keys. Each file must be private to its
// owner like the config itself.
func LoadKeys(paths []string) ([]verify.PublicKey, error) {
	var keys []verify.PublicKey
	for i, p := range paths {
		if err := checkPrivate(p); err != nil {
			return nil, &ConfigError{Key: fmt.Sprintf("trust.keys[%d]", i), Err: fmt.Errorf("%s: %w", p, err)}
		}
		k, err := verify.LoadPublicKeyFile(p)
		if err != nil {
			return nil, &ConfigError{Key: fmt.Sprintf("trust.keys[%d]", i), Err: err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Reload switches to a new configuration (SIGHUP). Host and state dir
// cannot change under a running agent; trust keys and the source can.
func (a *Agent) Reload(cfg *Config) error {
	if cfg.Host != a.cfg.Host || cfg.StateDir != a.cfg.StateDir || cfg.Root != a.cfg.Root || cfg.Driver != a.cfg.Driver {
		return errors.New("host, root, state_dir and driver need a restart, not a reload")
	}
	keys, err := LoadKeys(cfg.Trust.Keys)
	if err != nil {
		return err
	}
	src, err := OpenSource(a.store.path(dirGit), cfg.Source)
	if err != nil {
		return err
	}
	rep, err := openReporter(cfg)
	if err != nil {
		return err
	}
	rep.event, rep.last, rep.lastPush, rep.newest = a.rep.event, a.rep.last, a.rep.lastPush, a.rep.newest
	a.rep = rep
	if cfg.Source.URL != a.cfg.Source.URL || cfg.Source.Branch != a.cfg.Source.Branch {
		a.st.SeenCommit = "" // a different branch: look again
	}
	*a.src = *src // the engine's git check follows the new source
	a.keys, a.cfg = keys, cfg
	a.noteTrust()
	a.st.Source = RedactURL(cfg.Source.URL) + "#" + cfg.Source.Branch
	return nil
}

// Recover lets the apply engine finish or undo an install that a crash
// interrupted. Call it before the first poll.
func (a *Agent) Recover(ctx context.Context) error {
	if acted, err := a.resumeJournal(ctx); acted || err != nil {
		return err
	}
	rec, err := a.engine.Recover(ctx)
	if je, ok := errors.AsType[*apply.JournalError](err); ok {
		return a.journalUnreadable(je)
	}
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if rec != nil {
		a.log.Warn("recovered an interrupted install", "serial", rec.Serial, "rolled_back", rec.RolledBack, "reason", rec.Reason)
		if rec.RolledBack {
			a.st.RolledBack = &RolledBack{Serial: rec.Serial, Reason: "interrupted install: " + rec.Reason, At: a.now()}
		}
	}
	return a.syncCurrent()
}

// syncCurrent refreshes Status.Current from the engine's current
// generation, keeping what only the agent knows (commit, blobs).
func (a *Agent) syncCurrent() error {
	gen, err := a.engine.Current()
	if err != nil {
		return fmt.Errorf("current generation: %w", err)
	}
	if gen == nil {
		a.st.Current = nil
		return nil
	}
	c := a.st.Current
	if c == nil || c.Serial != gen.Serial {
		c = &Current{}
	}
	c.Serial = gen.Serial
	c.Expires = gen.Manifest.Expires
	c.SourceCommit = gen.Manifest.Source.Commit
	c.Signers = slices.Clone(gen.Signers)
	c.AppliedAt = gen.AppliedAt
	a.st.Current = c
	return nil
}

// lastSerial is the serial floor: the highest serial accepted so far by
// any record in memory (last_serial, the current generation, the serial
// a rollback pin holds back).
func (a *Agent) lastSerial() (uint64, error) {
	n, _, err := a.store.LastSerial()
	if err != nil {
		return 0, err
	}
	if c := a.st.Current; c != nil {
		n = max(n, c.Serial)
	}
	if p := a.st.Pin; p != nil {
		n = max(n, p.Above)
	}
	return n, nil
}

func (a *Agent) verifyOptions(last uint64) verify.Options {
	return verify.Options{
		Keys:       a.keys,
		Threshold:  a.cfg.Trust.Threshold,
		Host:       a.cfg.Host,
		LastSerial: last,
		Now:        a.now,
		Limits:     a.limits(),
		Paths:      policy.Paths{Roots: append(policy.DefaultRoots(), a.cfg.Policy.Roots...)},
	}
}

// limits are verify's defaults with this host's configured file count.
func (a *Agent) limits() verify.Limits {
	lim := verify.DefaultLimits()
	if a.cfg.Policy.MaxFiles > 0 {
		lim.MaxFiles = a.cfg.Policy.MaxFiles
	}
	return lim
}

// Poll does one round: ask for the branch head, fetch if it moved, verify,
// apply, and check drift. The returned error, if any, is what made the
// outcome. Cancelling ctx stops the poll between steps, never inside an
// install: the apply runs to its end with ctx's values but not its
// cancellation.
func (a *Agent) Poll(ctx context.Context) (Outcome, error) {
	start := a.now()
	a.st.Pending = nil
	out, commit, serial, err := a.poll(ctx)
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

func (a *Agent) poll(ctx context.Context) (out Outcome, commit string, serial uint64, err error) {
	hold, err := a.store.Hold()
	if err != nil {
		return OutcomeError, "", 0, err
	}
	a.st.Hold = nil
	if hold.Active(a.now()) {
		a.st.Hold = hold
	}
	if a.st.Pin, err = a.store.Pin(); err != nil {
		return OutcomeError, "", 0, err
	}
	if _, err := a.resumeJournal(ctx); err != nil {
		return OutcomeError, "", 0, err
	}
	if out, serial, err, done := a.resume(ctx); done {
		return out, "", serial, err
	}

	head, err := a.src.Head(ctx)
	if err != nil {
		return OutcomeError, "", 0, err
	}
	if head == a.st.SeenCommit {
		return OutcomeUnchanged, head, 0, nil
	}
	commit = head
	if !a.src.Has(head) {
		if ctx.Err() != nil {
			return OutcomeError, commit, 0, ctx.Err()
		}
		fstart := a.now()
		if commit, err = a.src.Fetch(ctx); err != nil {
			return OutcomeError, head, 0, err
		}
		a.log.Info("fetched", "commit", short(commit), "duration", since(fstart))
	}

	// Cheap checks on blob ids before reading or verifying anything.
	mblob, ablob, err := a.src.BlobIDs(commit, a.cfg.Host)
	if err == nil {
		if c := a.st.Current; c != nil && c.ManifestBlob == mblob && c.ArchiveBlob == ablob {
			a.st.SeenCommit = commit
			return OutcomeUpToDate, commit, c.Serial, nil
		}
		q, qerr := a.store.Quarantine()
		if qerr != nil {
			return OutcomeError, commit, 0, qerr
		}
		for _, e := range q {
			// A rejection stands only for the trust config that made it:
			// new keys may accept what old ones refused.
			if e.Manifest == mblob && e.Archive == ablob && (e.Kind != "rejected" || e.Trust == a.trustID()) {
				a.st.SeenCommit = commit
				return OutcomeQuarantined, commit, e.Serial, fmt.Errorf("serial %d is quarantined: %s", e.Serial, e.Reason)
			}
		}
	}
	lim := verify.DefaultLimits()
	bf, err := a.src.Read(commit, a.cfg.Host, lim.ManifestSize, lim.ArchiveSize)
	if err != nil {
		var bfe *BundleFileError
		if errors.As(err, &bfe) {
			// The published commit has no usable bundle for us: nothing
			// to retry until the branch moves.
			a.st.SeenCommit = commit
		}
		return OutcomeError, commit, 0, err
	}
	if ctx.Err() != nil {
		return OutcomeError, commit, 0, ctx.Err()
	}

	last, err := a.lastSerial()
	if err != nil {
		return OutcomeError, commit, 0, err
	}
	// Expiry and not_before mean nothing on a clock that went backwards.
	if c := a.st.Current; c != nil && !c.AppliedAt.IsZero() && a.now().Before(c.AppliedAt.Add(-clockSkew)) {
		return OutcomeError, commit, 0, fmt.Errorf("clock is behind the last apply (%s); fix the time (NTP) before bundles are accepted", c.AppliedAt.Format(time.RFC3339))
	}
	b, err := verify.Verify(bf.Manifest, bytes.NewReader(bf.Archive), a.verifyOptions(last))
	if err != nil {
		var rej *verify.RejectError
		if !errors.As(err, &rej) {
			return OutcomeError, commit, 0, fmt.Errorf("verify: %w", err)
		}
		claimed := claimedSerial(bf.Manifest)
		a.st.SeenCommit = commit
		if errors.Is(err, verify.ErrRollback) && a.st.Pin != nil && claimed <= a.st.Pin.Above {
			// Pinned by `agent rollback`: the bundle we rolled back from
			// stays published until a newer one arrives.
			return OutcomeUpToDate, commit, claimed, nil
		}
		if errors.Is(err, verify.ErrRollback) && a.quarantinedSerial(claimed) != nil {
			// A signed serial that failed here before, republished: the
			// floor is above it now; it stays quarantined.
			e := a.quarantinedSerial(claimed)
			return OutcomeQuarantined, commit, claimed, fmt.Errorf("serial %d is quarantined: %s", claimed, e.Reason)
		}
		if errors.Is(err, verify.ErrRollback) && a.st.Current != nil && claimed == a.st.Current.Serial {
			// Our own serial under a new commit: status.json was lost, or
			// the bundle was re-signed (bundler sign adds a signature).
			// Nothing to do either way; different bytes are worth a word.
			if a.st.Current.ManifestBlob != "" && a.st.Current.ManifestBlob != bf.ManifestBlob {
				a.log.Warn("applied serial republished with different bytes; keeping the applied one", "serial", claimed, "commit", short(commit))
			}
			a.st.Current.ManifestBlob, a.st.Current.ArchiveBlob = bf.ManifestBlob, bf.ArchiveBlob
			return OutcomeUpToDate, commit, claimed, nil
		}
		qerr := a.store.AddQuarantine(Quarantined{
			Serial: claimed, Commit: commit, Reason: err.Error(), Kind: "rejected", At: a.now().UTC(),
			Manifest: bf.ManifestBlob, Archive: bf.ArchiveBlob, Trust: a.trustID(),
		})
		return OutcomeRejected, commit, claimed, errors.Join(err, qerr)
	}
	serial = b.Manifest.Serial
	a.lastManifest = &b.Manifest
	q, err := a.store.Quarantine()
	if err != nil {
		return OutcomeError, commit, serial, err
	}
	for _, e := range q {
		if e.Verified && e.Serial == serial {
			a.st.SeenCommit = commit
			return OutcomeQuarantined, commit, serial, fmt.Errorf("serial %d is quarantined: %s", serial, e.Reason)
		}
	}
	if nb := b.Manifest.NotBefore; !nb.IsZero() && a.now().Before(nb) {
		a.st.Pending = &Pending{Serial: serial, Commit: commit, NotBefore: nb.UTC(), Reason: "not_before"}
		return OutcomeWaiting, commit, serial, nil
	}
	if a.st.Hold != nil {
		a.st.Pending = &Pending{Serial: serial, Commit: commit, Reason: "held: " + a.st.Hold.Reason}
		return OutcomeHeld, commit, serial, nil
	}
	if out, err := a.checkGate(ctx, b, bf); out != "" {
		return out, commit, serial, err
	}
	if ctx.Err() != nil {
		return OutcomeError, commit, serial, ctx.Err()
	}
	return a.install(ctx, b, bf)
}

// install applies a verified bundle and records the result.
func (a *Agent) install(ctx context.Context, b *verify.Bundle, bf *BundleFiles) (Outcome, string, uint64, error) {
	serial, commit := b.Manifest.Serial, bf.Commit
	a.st.Applying = true
	if err := a.writeStatus(); err != nil {
		a.st.Applying = false
		return OutcomeError, commit, serial, err
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
			return OutcomeError, commit, serial, errors.Join(err, ferr)
		}
	}
	switch {
	case err == nil:
		if err := a.store.ClearPin(); err != nil {
			return OutcomeError, commit, serial, err
		}
		a.st.Pin, a.st.RolledBack = nil, nil
		a.st.SeenCommit = commit
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
		return OutcomeApplied, commit, serial, nil
	case errors.As(err, &rr) && !rr.Waiting:
		// Installed: the floor moves above it, as for an applied serial.
		if err := a.raiseFloor(serial); err != nil {
			return OutcomeError, commit, serial, err
		}
		a.st.SeenCommit = commit
		a.st.RebootPending = &Current{
			Serial: serial, SourceCommit: b.Manifest.Source.Commit, BundlesCommit: commit,
			Signers: slices.Clone(b.Signers), AppliedAt: now, RebootRequired: true,
			ManifestBlob: bf.ManifestBlob, ArchiveBlob: bf.ArchiveBlob,
		}
		a.log.Warn("reboot required: installed, nothing activated; health check and commit after the next boot", "serial", serial)
		return OutcomeRebootRequired, commit, serial, nil
	case errors.As(err, &rr):
		return OutcomeRebootRequired, commit, rr.Serial, err
	case errors.As(err, &pre):
		a.st.SeenCommit = commit
		qerr := a.quarantine(serial, commit, "precheck", err, bf)
		return OutcomeRejected, commit, serial, errors.Join(err, qerr)
	case errors.As(err, &rb):
		a.st.SeenCommit = commit
		a.st.Health = healthOf(rb.Recheck)
		a.st.RolledBack = &RolledBack{Serial: serial, Reason: rb.Reason.Error(), At: now, Health: healthOf(rb.Health)}
		qerr := a.quarantine(serial, commit, "rolled-back", rb.Reason, bf) // the kind says it was rolled back
		return OutcomeRolledBack, commit, serial, errors.Join(err, qerr)
	case errors.As(err, &dg):
		a.st.SeenCommit = commit
		h := Hold{Since: now, Reason: holdDegraded + err.Error()}
		herr := a.store.SetHold(h)
		a.st.Hold = &h
		qerr := a.quarantine(serial, commit, "rolled-back", err, bf)
		a.log.Error("DEGRADED: the previous generation could not be restored; applies are held until `agent resume`", "serial", serial, "err", err)
		return OutcomeDegraded, commit, serial, errors.Join(err, herr, qerr)
	}
	return OutcomeError, commit, serial, fmt.Errorf("apply serial %d: %w", serial, err)
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

func healthOf(hs []apply.HealthResult) []Health {
	out := make([]Health, len(hs))
	for i, h := range hs {
		out[i] = Health{Name: h.Name, Kind: string(h.Kind), OK: h.OK, LatencyMS: h.Latency.Milliseconds(), Attempts: h.Attempts, Error: h.Error}
	}
	return out
}

// claimedSerial reads the serial a manifest claims without trusting it,
// only to label a rejected bundle in the quarantine list.
func claimedSerial(envelope []byte) uint64 {
	env, payload, err := verify.ParseEnvelope(envelope)
	if err != nil || env == nil {
		return 0
	}
	var m struct {
		Serial uint64 `json:"serial"`
	}
	if jsonUnmarshal(payload, &m) != nil {
		return 0
	}
	return m.Serial
}

func (a *Agent) writeStatus() error {
	a.st.setWarnings(a.now(), a.warnings)
	a.st.Updated = a.now().UTC()
	a.st.normalize()
	a.st.State = a.st.computeState(a.now())
	return a.store.SetStatus(a.st)
}

func (a *Agent) writeStatusFast() error {
	a.st.setWarnings(a.now(), a.warnings)
	a.st.Updated = a.now().UTC()
	a.st.normalize()
	a.st.State = a.st.computeState(a.now())
	return a.store.SetStatusFast(a.st)
}

// Status returns a copy of the in-memory status.
func (a *Agent) Status() Status { return *a.st }

// nextDelay is the wait before the next poll: the interval with ±10%
// jitter, doubled per consecutive failure up to max_backoff, and never past
// a pending bundle's not_before.
func (a *Agent) nextDelay() time.Duration {
	d := a.cfg.Interval
	for i := 1; i < a.st.Failures && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	if p := a.st.Pending; p != nil && !p.NotBefore.IsZero() {
		if until := p.NotBefore.Sub(a.now()); until < d {
			d = max(until, 0) + 10*time.Millisecond
		}
	}
	return d
}

// RunOptions connect Run to the process's signals.
type RunOptions struct {
	// Reload (SIGHUP) makes Run call ReloadConfig and switch to the
	// result; a failed reload keeps the running config.
	Reload       <-chan struct{}
	ReloadConfig func() (*Config, error)
	// Wake (SIGUSR1) makes Run look for an operator request
	// (request.json, e.g. a rollback asked for while Run holds the lock).
	Wake <-chan struct{}
}

// Run polls until ctx is cancelled (SIGTERM): first at once, then after
// nextDelay, serving reloads and operator requests between polls.
func (a *Agent) Run(ctx context.Context, o RunOptions) error {
	if err := a.Recover(ctx); err != nil {
		return err
	}
	a.log.Info("agent started", "host", a.cfg.Host, "source", a.st.Source, "interval", a.cfg.Interval)
	for ctx.Err() == nil {
		a.serveRequest(ctx)
		a.Poll(ctx)
		if ctx.Err() != nil {
			break
		}
		d := a.nextDelay()
		a.st.NextPoll = a.now().Add(d).UTC()
		if err := a.writeStatus(); err != nil {
			a.log.Error("write status", "err", err)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-o.Wake:
		case <-o.Reload:
			a.reload(o.ReloadConfig)
		}
		t.Stop()
	}
	a.st.NextPoll = time.Time{}
	a.log.Info("agent stopped")
	return a.writeStatus()
}

func (a *Agent) reload(load func() (*Config, error)) {
	if load == nil {
		return
	}
	cfg, err := load()
	if err == nil {
		err = a.Reload(cfg)
	}
	if err != nil {
		a.log.Error("reload failed; keeping the running config", "err", err)
		a.st.LastError = &ErrorInfo{At: a.now().UTC(), Message: "reload: " + err.Error()}
		return
	}
	a.log.Info("config reloaded", "file", cfg.File)
}

// serveRequest carries out a pending operator request and answers it.
func (a *Agent) serveRequest(ctx context.Context) {
	req, err := a.store.Request()
	if err != nil {
		a.log.Error("read request", "err", err)
		return
	}
	if req == nil {
		return
	}
	resp := Response{ID: req.ID}
	switch req.Op {
	case "rollback":
		res, err := a.Rollback(ctx, req.To)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK, resp.Serial = true, res.Serial
		}
	default:
		resp.Error = fmt.Sprintf("unknown request %q", req.Op)
	}
	resp.At = a.now().UTC()
	if err := a.store.Respond(resp); err != nil {
		a.log.Error("answer request", "err", err)
	}
}

// Rollback reinstalls a kept generation (to = 0: the one before the
// current) through the engine, and pins it until a serial above the last
// accepted one arrives.
func (a *Agent) Rollback(ctx context.Context, to uint64) (*apply.Result, error) {
	last, err := a.lastSerial()
	if err != nil {
		return nil, err
	}
	a.log.Info("rollback requested", "to", to)
	res, err := a.engine.Rollback(context.WithoutCancel(ctx), to)
	if err != nil {
		a.st.LastError = &ErrorInfo{At: a.now().UTC(), Message: "rollback: " + err.Error()}
		var dg *apply.DegradedError
		if errors.As(err, &dg) {
			h := Hold{Since: a.now().UTC(), Reason: holdDegraded + err.Error()}
			err = errors.Join(err, a.store.SetHold(h))
			a.st.Hold = &h
		}
		return nil, errors.Join(err, a.writeStatus())
	}
	p := Pin{Serial: res.Serial, Above: last, At: a.now().UTC()}
	if err := a.store.SetPin(p); err != nil {
		return nil, err
	}
	a.st.Pin = &p
	a.st.Current = nil
	if err := a.syncCurrent(); err != nil {
		return nil, err
	}
	a.st.Health = healthOf(res.Health)
	a.log.Info("rolled back by operator", "serial", res.Serial, "pinned_until_above", last)
	return res, a.writeStatus()
}

// PlanResult is what `agent plan` shows.
type PlanResult struct {
	Commit string
	Bundle *verify.Bundle
	Plan   *apply.Plan
	// UpToDate: the published bundle is the one applied (or older).
	UpToDate bool
}

// Plan fetches the branch head into memory (never the agent's own clone),
// verifies this host's bundle and asks the engine what applying it would
// change. It changes nothing.
func (a *Agent) Plan(ctx context.Context) (*PlanResult, error) {
	src, err := OpenSource("", a.cfg.Source)
	if err != nil {
		return nil, err
	}
	commit, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	lim := verify.DefaultLimits()
	bf, err := src.Read(commit, a.cfg.Host, lim.ManifestSize, lim.ArchiveSize)
	if err != nil {
		return nil, err
	}
	last, err := a.lastSerial()
	if err != nil {
		return nil, err
	}
	b, err := verify.Verify(bf.Manifest, bytes.NewReader(bf.Archive), a.verifyOptions(last))
	if errors.Is(err, verify.ErrRollback) && claimedSerial(bf.Manifest) == last && last != 0 {
		return &PlanResult{Commit: commit, UpToDate: true}, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := a.engine.Plan(b)
	if err != nil {
		return nil, fmt.Errorf("plan serial %d: %w", b.Manifest.Serial, err)
	}
	return &PlanResult{Commit: commit, Bundle: b, Plan: p}, nil
}
