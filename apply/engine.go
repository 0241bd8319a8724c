// Package apply installs verified bundles on a host: plan, stage,
// pre-check, journal, atomic install, activation, health checks and
// rollback, through a host Driver (freebsd or sim).
//
// State dir layout (owned here; the agent keeps its own files beside it):
//
//	generations/<serial>/   generation.json (manifest, signers, applied_at),
//	                        manifest.json (the DSSE envelope), files.tar
//	generations/<serial>.tmp/  a generation being applied, not yet committed
//	current                 {"serial":N,"txn":ID}: the commit point
//	journal.json            the transaction in flight (see journal.go)
//	journal.step            the step it reached since, when only that
//	                        changed: "<txn> activate", rewritten in place
//	backup.tar              the host's bytes before the transaction that the
//	                        current generation does not keep (journal.go)
//	staging/                the new tree laid out like the root, for Precheck
//	                        (kept, and brought in line at the next stage)
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rigger-bsd/rigger/apply/live"
	"github.com/rigger-bsd/rigger/verify"
)

// CONTRACT (shared with the agent): the names and signatures in this file
// are used by package agent.

// Config configures an Engine.
type Config struct {
	Root          string // prefix of every target path: "/" on a host, a sandbox in tests
	StateDir      string // generations, staging, journal
	Driver        Driver
	HealthTimeout time.Duration // deadline for all health checks of one apply
	Keep          int           // generations kept, default 5
	Logger        *slog.Logger
	// GitCheck probes the agent's git source; it backs the "git" health
	// check, so a change that cuts the agent off is rolled back.
	GitCheck func(ctx context.Context) error
	// ManagementSource is the address of the agent's git source; with it
	// the live plan marks the steps on the path to it, and those must be
	// confirmed by GitCheck within ConfirmTimeout or are undone.
	ManagementSource func(ctx context.Context) (netip.Addr, error)
	ConfirmTimeout   time.Duration
}

// DefaultHealthTimeout is used when Config.HealthTimeout is zero.
const DefaultHealthTimeout = 90 * time.Second

// Engine applies bundles to one host. It is not safe for concurrent use;
// the agent holds the state-dir lock.
type Engine struct {
	cfg Config
	log *slog.Logger
	// hook is the test seam for crash and failure injection: it is called
	// at every step of a transaction; a non-nil error fails that step.
	hook func(step string, i int) error
	// lx runs the live host steps of the transaction in flight.
	lx *live.Exec
	// staged is what StateDir/staging holds between transactions; nil:
	// unknown (see stage).
	staged *stagedTree

	// kept is the current generation as last loaded or committed, with
	// the txn of StateDir/current naming it (see loadCurrent). Never
	// modified once kept: callers share it.
	keptMu  sync.Mutex
	kept    *generation
	keptTxn string
}

// ErrUnfinished is returned by Apply, Rollback and Reinstall while a
// journal from an interrupted transaction is still present: call Recover.
var ErrUnfinished = errors.New("an interrupted apply is unfinished (journal present): run Recover first")

// New opens the engine's state under cfg.StateDir.
func New(cfg Config) (*Engine, error) {
	if cfg.Root == "" || cfg.StateDir == "" {
		return nil, errors.New("apply: Root and StateDir are required")
	}
	if cfg.Driver == nil {
		return nil, errors.New("apply: Driver is required")
	}
	var err error
	if cfg.Root, err = filepath.Abs(cfg.Root); err != nil {
		return nil, fmt.Errorf("apply: root: %w", err)
	}
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("apply: state dir: %w", err)
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 5
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.GitCheck = reachingGitCheck(cfg)
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, genDir), 0o700); err != nil {
		return nil, fmt.Errorf("apply: state dir: %w", err)
	}
	return &Engine{cfg: cfg, log: cfg.Logger.With("component", "apply")}, nil
}

// at runs the test hook for one step.
func (e *Engine) at(step string, i int) error {
	if e.hook == nil {
		return nil
	}
	return e.hook(step, i)
}

// Recovery reports a journal replay.
type Recovery struct {
	Serial     uint64 // the generation that was being applied
	RolledBack bool   // true: back on the previous generation; false: finished
	Reason     string
}

// Plan is the file-by-file difference and the units to activate, in order.
type Plan struct {
	Serial  uint64
	Changes []Change
	Units   []verify.Unit
	Reboot  bool // a reboot-required file changed
	// Live is the host changes applied without a reboot (both manifests
	// describe the host), in order; nil otherwise.
	Live *live.Plan
	// RebootReasons name each file that needs a reboot and why.
	RebootReasons []string
}

// Change is one file that differs.
type Change struct {
	Path string
	Op   string // "add", "modify", "remove", "meta" (mode/owner only)
	Old  []byte // previous contents (nil for add)
	New  []byte // new contents (nil for remove)
}

// Change ops.
const (
	OpAdd    = "add"
	OpModify = "modify"
	OpRemove = "remove"
	OpMeta   = "meta"
)

// Plan compares a verified bundle with the current generation; it changes nothing.
func (e *Engine) Plan(b *verify.Bundle) (*Plan, error) {
	cur, err := e.loadCurrent()
	if err != nil {
		return nil, err
	}
	p, _, err := computePlan(cur, bundleGen(b))
	return p, err
}

// Apply installs b, activates what changed and health-checks the result.
// On failure it rolls back by itself: see PrecheckError, RolledBackError,
// DegradedError. The engine keeps b's manifest and file contents as the
// current generation once committed: b must not be modified afterwards.
func (e *Engine) Apply(ctx context.Context, b *verify.Bundle) (*Result, error) {
	if b == nil {
		return nil, errors.New("apply: nil bundle")
	}
	cur, err := e.loadCurrent()
	if err != nil {
		return nil, err
	}
	tgt := bundleGen(b)
	p, ch, err := computePlan(cur, tgt)
	if err != nil {
		return nil, err
	}
	return e.run(ctx, cur, tgt, p, ch)
}

// Rollback reinstalls a kept generation (0 = the one before the current)
// through the same install, activate and health path.
func (e *Engine) Rollback(ctx context.Context, serial uint64) (*Result, error) {
	cur, err := e.loadCurrent()
	if err != nil {
		return nil, err
	}
	if serial == 0 {
		if cur == nil {
			return nil, errors.New("rollback: no current generation")
		}
		gens, err := e.Generations()
		if err != nil {
			return nil, err
		}
		for _, g := range gens {
			if g.Serial < cur.meta.Serial {
				serial = g.Serial
				break
			}
		}
		if serial == 0 {
			return nil, fmt.Errorf("rollback: no kept generation before %d", cur.meta.Serial)
		}
	}
	if cur != nil && serial == cur.meta.Serial {
		return nil, fmt.Errorf("rollback: generation %d is already current (use Reinstall)", serial)
	}
	tgt, err := e.loadGeneration(serial)
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	p, ch, err := computePlan(cur, tgt)
	if err != nil {
		return nil, err
	}
	return e.run(ctx, cur, tgt, p, ch)
}

// Reinstall puts the current generation back (drift: correct): every
// managed file that drifted is installed again and its unit activated.
func (e *Engine) Reinstall(ctx context.Context) (*Result, error) {
	cur, err := e.loadCurrent()
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, errors.New("reinstall: no current generation")
	}
	p, ch, err := e.planDrift(cur)
	if err != nil {
		return nil, err
	}
	return e.run(ctx, cur, cur, p, ch)
}

// Drift lists managed files whose contents, mode or owner changed on disk
// since the current generation was applied.
func (e *Engine) Drift() ([]string, error) {
	cur, err := e.loadCurrent()
	if err != nil || cur == nil {
		return nil, err
	}
	p, _, err := e.planDrift(cur)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.Path)
	}
	sort.Strings(out)
	return out, nil
}

// Current returns the applied generation, or nil if none.
func (e *Engine) Current() (*Generation, error) {
	cur, err := e.loadCurrent()
	if err != nil || cur == nil {
		return nil, err
	}
	g := cur.meta.public()
	return &g, nil
}

// Generation is one applied bundle kept in the state dir.
type Generation struct {
	Serial    uint64
	Manifest  verify.Manifest
	Signers   []string
	AppliedAt time.Time
}

// Result reports a successful apply.
type Result struct {
	Serial         uint64
	Units          []verify.Unit // activated, in order
	Health         []HealthResult
	RebootRequired bool
	RebootReasons  []string // file and why, one per file (Plan.RebootReasons)
	Duration       time.Duration
	Changes        []Change    // what was installed or removed
	Live           []live.Step // live host steps that ran, in order
}

// HealthResult is the outcome of one health check.
type HealthResult struct {
	Name     string
	Kind     verify.CheckKind
	OK       bool
	Latency  time.Duration
	Attempts int
	Error    string `json:",omitempty"`
}

// PrecheckError: a staged file failed its check; nothing was installed.
type PrecheckError struct {
	Path string
	Err  error
}

func (e *PrecheckError) Error() string { return "pre-check " + e.Path + ": " + e.Err.Error() }
func (e *PrecheckError) Unwrap() error { return e.Err }

// RolledBackError: the bundle was installed but activation or health
// failed; the previous generation was restored and is healthy again.
type RolledBackError struct {
	Serial uint64
	Reason error
	Health []HealthResult // the failed apply's checks (nil if it failed before)
	// Recheck are the checks of the restored generation, all passing.
	Recheck []HealthResult
}

func (e *RolledBackError) Error() string { return "rolled back: " + e.Reason.Error() }
func (e *RolledBackError) Unwrap() error { return e.Reason }

// DegradedError: restoring the previous generation failed too. The agent
// must hold further applies and say so loudly.
type DegradedError struct {
	Serial uint64
	Reason error // why the apply failed
	Err    error // why the restore failed
	Health []HealthResult
}

func (e *DegradedError) Error() string {
	return "degraded: restore failed: " + e.Err.Error() + " (after: " + e.Reason.Error() + ")"
}
