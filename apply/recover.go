package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rigger-bsd/rigger/verify"
)

// Recover reads the journal after a start and leaves the host wholly on
// the previous or wholly on the committed generation. It returns what it
// did, or nil when there was nothing to recover.
//
// The commit point is StateDir/current naming the journal's txn: if it
// does, the transaction finished and only its cleanup is redone.
// Otherwise every journalled file goes back to its backed-up bytes (or is
// removed if it did not exist), the transaction's units are re-activated,
// and the previous generation's health is re-checked. A failure there is a *DegradedError.
func (e *Engine) Recover(ctx context.Context) (*Recovery, error) {
	os.RemoveAll(filepath.Join(e.cfg.StateDir, stagingDir))
	e.staged = nil
	e.removeStateTemps()
	if n, err := e.RebootPending(); err == nil && n != 0 {
		// Installed and waiting for a boot: Resume finishes it.
		return nil, nil
	}
	if err := e.removeStaleTmp(); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	j, err := e.readJournal()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if j == nil {
		os.Remove(e.backupPath())
		os.Remove(e.liveJournal())
		return nil, nil
	}
	cur, err := e.readCurrent()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	if cur != nil && cur.Txn == j.Txn {
		e.finish()
		if err := e.prune(j.Serial); err != nil {
			e.log.Warn("prune generations", "err", err)
		}
		e.log.Info("recovered: apply had committed", "serial", j.Serial)
		return &Recovery{Serial: j.Serial, Reason: "interrupted after commit; finished"}, nil
	}

	reason := fmt.Errorf("interrupted during %s", j.Step)
	e.log.Warn("recovering: rolling back an interrupted apply", "serial", j.Serial, "step", j.Step)
	backup, err := e.readBackup(j)
	if err != nil {
		return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: fmt.Errorf("backup: %w", err)}
	}
	var prev *generation
	if cur != nil {
		if prev, err = e.loadGeneration(cur.Serial); err != nil {
			return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: err}
		}
	}
	// Every unit is re-activated, even when the crash came before the
	// first activation: after a power loss the boot has started services
	// from whatever files were on disk then.
	var units []verify.Unit
	for _, s := range j.Units {
		u, err := verify.ParseUnit(s)
		if err != nil {
			return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: fmt.Errorf("journal: %w", err)}
		}
		units = append(units, u)
	}
	rs, err := openRoots(e.cfg.Root)
	if err != nil {
		return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: err}
	}
	defer rs.close()
	if err := e.liveOpen(); err != nil {
		return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: err}
	}
	health, err := e.restore(ctx, rs, prev, j, backup, j.Files, units)
	if err != nil {
		return nil, &DegradedError{Serial: j.Serial, Reason: reason, Err: err, Health: health}
	}
	return &Recovery{Serial: j.Serial, RolledBack: true, Reason: reason.Error()}, nil
}
