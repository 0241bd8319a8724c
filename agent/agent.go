// Package agent is the loop that runs on every host: it follows the
// bundles branch through a git Source, verifies the host's bundle
// (package verify), hands it to the apply engine (package apply), and keeps
// the state an operator needs (status, last accepted serial, quarantine,
// hold, rollback pin) in the state dir. It owns scheduling (interval,
// jitter, backoff, rollout waves), the one-agent-per-state-dir lock and
// the operator commands' logic; package agent/cli is the command line.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	if err := a.syncCurrent(); err != nil {
		return err
	}
	return a.dropStalePin()
}

// dropStalePin removes a rollback pin that does not hold the current
// generation: written by a rollback that a crash stopped before the engine
// changed anything, or left by an apply that a crash stopped between the
// engine's commit and the pin's removal.
func (a *Agent) dropStalePin() error {
	p, err := a.store.Pin()
	if err != nil || p == nil {
		return err
	}
	if c := a.st.Current; c != nil && c.Serial == p.Serial {
		return nil
	}
	a.log.Warn("rollback pin dropped: its serial is not the current one", "pinned", p.Serial, "current", a.currentSerial())
	a.st.Pin = nil
	return a.store.ClearPin()
}

func (a *Agent) currentSerial() uint64 {
	if c := a.st.Current; c != nil {
		return c.Serial
	}
	return 0
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
