package apply

import (
	"context"
	"errors"
	"fmt"

	"github.com/rigger-bsd/rigger/verify"
)

// A plan that needs a reboot (Plan.Reboot: today any change of the host's
// /etc/rc.conf, a host's very first bundle included, and loader files)
// installs its files and activates nothing: what it changes takes effect
// only at the next boot, and activating units against a kernel that has
// not seen the new rc.conf would test a host that never exists. The
// journal stays in step "reboot" with the boot it was installed in
// (BootReporter); after the boot, Resume runs the new generation's health
// checks and commits it, or rolls it back as any failed apply. Only a
// driver that tells boots apart (BootReporter: the freebsd driver, so sim
// too) can wait for one; with any other (test fakes) the plan is activated
// at once and the result says a reboot is required, as before.

// RebootRequiredError: the bundle is installed and waits for a reboot
// before its health check and commit. Waiting is true when Resume found
// the host not rebooted yet.
type RebootRequiredError struct {
	Serial  uint64
	Waiting bool
}

func (e *RebootRequiredError) Error() string {
	if e.Waiting {
		return fmt.Sprintf("serial %d is installed and waits for a reboot (health check and commit after the boot)", e.Serial)
	}
	return fmt.Sprintf("reboot required: serial %d installed, nothing activated; it is health-checked and committed after the next boot", e.Serial)
}

// seesBoots: the driver can tell that the host booted (BootReporter).
func (e *Engine) seesBoots() bool {
	_, ok := e.cfg.Driver.(BootReporter)
	return ok
}

func (e *Engine) bootID(ctx context.Context) (string, error) {
	br, ok := e.cfg.Driver.(BootReporter)
	if !ok {
		return "", nil
	}
	return br.BootID(ctx)
}

// awaitBoot records that the transaction waits for a boot.
func (e *Engine) awaitBoot(ctx context.Context, j *journal, abort func(error) error) error {
	boot, err := e.bootID(ctx)
	if err != nil {
		return abort(fmt.Errorf("boot time: %w", err))
	}
	j.Boot = boot
	if err := e.setStep(j, stepReboot); err != nil {
		return abort(err)
	}
	e.log.Warn("reboot required: files installed, nothing activated; health check and commit after the next boot", "serial", j.Serial)
	return &RebootRequiredError{Serial: j.Serial}
}

// RebootPending returns the serial installed and waiting for a boot, or 0.
func (e *Engine) RebootPending() (uint64, error) {
	j, err := e.readJournal()
	if err != nil || j == nil || j.Step != stepReboot {
		return 0, err
	}
	return j.Serial, nil
}

// Resume finishes a transaction that waited for a reboot: nil, nil when
// there is none; a *RebootRequiredError (Waiting) while the host has not
// booted since; after the boot, the new generation's health checks, then
// the commit (a Result) or the rollback (*RolledBackError,
// *DegradedError) as in Apply.
func (e *Engine) Resume(ctx context.Context) (*Result, error) {
	j, err := e.readJournal()
	if _, torn := errors.AsType[*JournalError](err); torn {
		// Not a transaction waiting for a boot that anyone can tell:
		// the unreadable journal has its own handling (degraded, agent
		// resume sets it aside), as in Recover.
		return nil, nil
	}
	if err != nil || j == nil || j.Step != stepReboot {
		return nil, err
	}
	boot, err := e.bootID(ctx)
	if err != nil {
		return nil, fmt.Errorf("boot time: %w", err)
	}
	if boot == "" || boot == j.Boot {
		return nil, &RebootRequiredError{Serial: j.Serial, Waiting: true}
	}
	dir := e.genPath(j.Serial)
	if j.NewGeneration {
		dir += tmpSuffix
	}
	meta, err := readMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("resume after boot: generation %d: %w", j.Serial, err)
	}
	cur, err := e.loadCurrent()
	if err != nil {
		return nil, err
	}
	rs, err := openRoots(e.cfg.Root)
	if err != nil {
		return nil, err
	}
	defer rs.close()
	backup, err := e.readBackup(j)
	if err != nil {
		return nil, fmt.Errorf("resume after boot: backup: %w", err)
	}
	e.log.Info("host rebooted: health-checking the installed generation", "serial", j.Serial)
	if err := e.setStep(j, stepHealth); err != nil {
		return nil, err
	}
	units := make([]verify.Unit, 0, len(j.Units))
	for _, s := range j.Units {
		u, err := verify.ParseUnit(s)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		units = append(units, u)
	}
	// After the boot every unit is as active as the boot made it: a
	// rollback re-activates them all with the restored files.
	health, err := e.checkHealth(ctx, meta.Manifest.Health)
	if err != nil {
		return nil, e.abort(ctx, rs, cur, j, backup, j.Files, len(j.Units), fmt.Errorf("after reboot: %w", err), health)
	}
	if err := e.commit(j, nil); err != nil {
		return nil, e.abort(ctx, rs, cur, j, backup, j.Files, len(j.Units), err, health)
	}
	e.log.Info("applied after reboot", "serial", j.Serial)
	return &Result{Serial: j.Serial, Units: units, Health: health, RebootRequired: true}, nil
}
