package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/rigger-bsd/rigger/apply/live"
	"github.com/rigger-bsd/rigger/verify"
)

// Live host changes (apply/live): when both the applied and the new
// manifest describe the host (host_desc), the difference becomes live
// steps that run in the transaction: the Before steps after the journal
// is written and before any file changes, the After steps once the files
// are installed and before the units. A rollback undoes the After steps
// before the files go back and the Before steps after (liveUndoEarly,
// liveUndoLate in restore); StateDir/live.json journals each step, so
// Recover undoes them too after a crash.

// rcConf is the host rc.conf: with a live plan its change is applied
// live, so it no longer asks for a reboot by itself.
const rcConf = "/etc/rc.conf"

// DefaultConfirmTimeout bounds the commit-confirmed wait for the git
// source after a step on its path.
const DefaultConfirmTimeout = 30 * time.Second

// managementPather is the driver side of the management guard (the
// freebsd driver: route -n get).
type managementPather interface {
	ManagementPath(ctx context.Context, source netip.Addr) (*live.Management, error)
}

// planLive adds the live plan to p when both generations describe the
// host: jails the plan stops for good leave the units, and rc.conf alone
// no longer makes the plan reboot-required; the live plan's own reasons do.
func planLive(cur, tgt *generation, p *Plan, chs []change, mgmt *live.Management) error {
	if cur == nil || cur.meta.Manifest.HostDesc == nil || tgt.meta.Manifest.HostDesc == nil {
		return nil
	}
	lp, err := live.Compute(cur.meta.Manifest.HostDesc, tgt.meta.Manifest.HostDesc, mgmt)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	p.Live = lp
	p.Units = slices.DeleteFunc(p.Units, func(u verify.Unit) bool {
		return u.Kind == verify.UnitJail && slices.Contains(lp.StopJails, u.Jail)
	})
	// The reasons follow: rc.conf's are the live plan's own, the other
	// files' stay.
	var reasons []string
	for _, c := range chs {
		if c.file.Unit == string(verify.UnitRebootRequired) && c.Path != rcConf {
			reasons = append(reasons, c.Path+": "+bootOnly(c.Path))
		}
	}
	for _, r := range lp.Reboot {
		reasons = append(reasons, rcConf+": "+r)
	}
	slices.Sort(reasons)
	p.Reboot, p.RebootReasons = len(reasons) > 0, slices.Compact(reasons)
	return nil
}

func (e *Engine) liveJournal() string { return filepath.Join(e.cfg.StateDir, live.JournalName) }

// liveRunner is the driver when it can run live steps.
func (e *Engine) liveRunner() (live.Runner, error) {
	r, ok := e.cfg.Driver.(live.Runner)
	if !ok {
		return nil, fmt.Errorf("driver %s cannot run live host steps", e.cfg.Driver.Name())
	}
	return r, nil
}

// liveManagement finds the path to the git source, or nil when the agent
// did not say where its source is or the driver cannot tell.
func (e *Engine) liveManagement(ctx context.Context) *live.Management {
	mp, ok := e.cfg.Driver.(managementPather)
	if !ok || e.cfg.ManagementSource == nil {
		return nil
	}
	addr, err := e.cfg.ManagementSource(ctx)
	if err != nil {
		e.log.Warn("live plan: git source address unknown; no step is guarded", "err", err)
		return nil
	}
	m, err := mp.ManagementPath(ctx, addr)
	if err != nil {
		e.log.Warn("live plan: path to the git source unknown; no step is guarded", "err", err)
		return nil
	}
	return m
}

// liveBegin re-plans with the management path known, journals the plan
// and runs its Before steps.
func (e *Engine) liveBegin(ctx context.Context, cur, tgt *generation, p *Plan, chs []change) error {
	e.lx = nil
	if p.Live == nil || len(p.Live.Steps) == 0 {
		return nil
	}
	if err := planLive(cur, tgt, p, chs, e.liveManagement(ctx)); err != nil {
		return err
	}
	r, err := e.liveRunner()
	if err != nil {
		// A driver without live steps keeps the old way: the new rc.conf
		// is installed and waits for a reboot.
		e.log.Warn("live host steps not run; reboot required", "err", err, "steps", len(p.Live.Steps))
		p.Live, p.Reboot = nil, true
		return nil
	}
	e.lx = &live.Exec{Path: e.liveJournal(), Cmd: r, Log: e.log, Hook: func(i int) error { return e.at(hookLive, i) }}
	if err := e.lx.Begin(tgt.meta.Serial, p.Live); err != nil {
		return err
	}
	return e.lx.Run(ctx, live.Before, nil, 0)
}

// liveAfter runs the After steps; a step on the management path must be
// confirmed by the git source answering within ConfirmTimeout.
func (e *Engine) liveAfter(ctx context.Context) error {
	if e.lx == nil {
		return nil
	}
	d := e.cfg.ConfirmTimeout
	if d <= 0 {
		d = DefaultConfirmTimeout
	}
	return e.lx.Run(ctx, live.After, e.cfg.GitCheck, d)
}

// liveOpen loads the live journal a crash left, for Recover.
func (e *Engine) liveOpen() error {
	e.lx = nil
	r, err := e.liveRunner()
	if err != nil {
		return nil // no live steps can have run
	}
	x := &live.Exec{Path: e.liveJournal(), Cmd: r, Log: e.log}
	ok, err := x.Open()
	if err != nil {
		return err
	}
	if ok {
		e.lx = x
	}
	return nil
}

// liveUndoEarly undoes the After steps (but those that need the old files
// back), newest first, while the new files are still in place.
func (e *Engine) liveUndoEarly(ctx context.Context) error {
	if e.lx == nil {
		return nil
	}
	return e.lx.Undo(ctx, func(s live.Step) bool { return s.Phase == live.After && !s.UndoLate })
}

// liveUndoLate undoes the rest once the old files are back.
func (e *Engine) liveUndoLate(ctx context.Context) error {
	if e.lx == nil {
		return nil
	}
	err := errors.Join(
		e.lx.Undo(ctx, func(s live.Step) bool { return s.Phase == live.After }),
		e.lx.Undo(ctx, func(s live.Step) bool { return s.Phase == live.Before }))
	return err
}

// liveDone lists the live steps that ran, for the result.
func (e *Engine) liveDone() []live.Step {
	if e.lx == nil {
		return nil
	}
	return e.lx.Done()
}

// reacher is a driver that says whether the host's own routes let a
// connection to addr leave: the sim driver, whose git source is a real
// server on loopback that no emulated route could otherwise cut off. On a
// FreeBSD host the kernel routes the git check itself.
type reacher interface {
	Reach(ctx context.Context, addr netip.Addr) error
}

// reachingGitCheck puts the driver's verdict on the path to the git
// source before the git check (the health check and the commit-confirmed
// wait both use it).
func reachingGitCheck(cfg Config) func(context.Context) error {
	r, ok := cfg.Driver.(reacher)
	check := cfg.GitCheck
	if !ok || check == nil || cfg.ManagementSource == nil {
		return check
	}
	return func(ctx context.Context) error {
		if addr, err := cfg.ManagementSource(ctx); err == nil {
			if err := r.Reach(ctx, addr); err != nil {
				return fmt.Errorf("git source: %w", err)
			}
		}
		return check(ctx)
	}
}
