// Package apply installs verified bundles on a host: plan, stage,
// pre-check, journal, atomic install, activation, health checks and
// rollback, through a host Driver (freebsd or sim).
package apply

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rigger-bsd/rigger/verify"
)

// CONTRACT (shared with the agent): the names and signatures in this file
// are used by package agent. Bodies are stubs until the engine lands.

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
}

// Engine applies bundles to one host. It is not safe for concurrent use;
// the agent holds the state-dir lock.
type Engine struct{ cfg Config }

// New opens the engine's state under cfg.StateDir.
func New(cfg Config) (*Engine, error) { return nil, errors.New("apply: not implemented yet") }

// Recover reads the journal after a start and leaves the host wholly on
// the previous or wholly on the committed generation. It returns what it
// did, or nil when there was nothing to recover.
func (e *Engine) Recover(ctx context.Context) (*Recovery, error) { return nil, nil }

// Recovery reports a journal replay.
type Recovery struct {
	Serial     uint64 // the generation that was being applied
	RolledBack bool   // true: back on the previous generation; false: finished
	Reason     string
}

// Plan compares a verified bundle with the current generation; it changes nothing.
func (e *Engine) Plan(b *verify.Bundle) (*Plan, error) { return nil, errors.New("not implemented") }

// Plan is the file-by-file difference and the units to activate, in order.
type Plan struct {
	Serial  uint64
	Changes []Change
	Units   []verify.Unit
	Reboot  bool // a reboot-required file changed
}

// Change is one file that differs.
type Change struct {
	Path string
	Op   string // "add", "modify", "remove", "meta" (mode/owner only)
	Old  []byte // previous contents (nil for add)
	New  []byte // new contents (nil for remove)
}

// Apply installs b, activates what changed and health-checks the result.
// On failure it rolls back by itself: see PrecheckError, RolledBackError,
// DegradedError.
func (e *Engine) Apply(ctx context.Context, b *verify.Bundle) (*Result, error) {
	return nil, errors.New("not implemented")
}

// Rollback reinstalls a kept generation (0 = the one before the current)
// through the same install, activate and health path.
func (e *Engine) Rollback(ctx context.Context, serial uint64) (*Result, error) {
	return nil, errors.New("not implemented")
}

// Reinstall puts the current generation back (drift: correct).
func (e *Engine) Reinstall(ctx context.Context) (*Result, error) {
	return nil, errors.New("not implemented")
}

// Drift lists managed files whose contents, mode or owner changed on disk
// since the current generation was applied.
func (e *Engine) Drift() ([]string, error) { return nil, nil }

// Current returns the applied generation, or nil if none.
func (e *Engine) Current() (*Generation, error) { return nil, nil }

// Generations lists the kept generations, newest first.
func (e *Engine) Generations() ([]Generation, error) { return nil, nil }

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
	Duration       time.Duration
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
	Health []HealthResult
}

func (e *RolledBackError) Error() string { return "rolled back: " + e.Reason.Error() }
func (e *RolledBackError) Unwrap() error { return e.Reason }

// DegradedError: restoring the previous generation failed too. The agent
// must hold further applies and say so loudly.
type DegradedError struct {
	Serial uint64
	Reason error // why the apply failed
	Err    error // why the restore failed
}

func (e *DegradedError) Error() string {
	return "degraded: restore failed: " + e.Err.Error() + " (after: " + e.Reason.Error() + ")"
}
