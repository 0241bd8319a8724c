package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
	"github.com/rigger-bsd/rigger/verify"
)

// Hook steps (the test seam; see Engine.hook). i is an index where noted.
const (
	hookStaged      = "staged"
	hookPrechecked  = "prechecked"
	hookGenStored   = "generation-stored"
	hookBackup      = "backup" // i: backup entries written
	hookJournaled   = "journaled"
	hookInstall     = "install"      // i: before file i; an error is a write failure
	hookInstallTemp = "install-temp" // i: temp file of file i synced, not renamed
	hookInstalled   = "installed"
	hookActivate    = "activate" // i: before unit i
	hookLive        = "live"     // i: before live step i
	hookHealth      = "health"
	hookCommitting  = "committing" // generation in place, current not yet written
	hookCommitted   = "committed"  // current written, journal not yet removed
	hookRestore     = "restore"    // i: before restoring file i
	hookReactivate  = "reactivate"
)

// run is the one path of Apply, Rollback and Reinstall: stage, pre-check,
// store the generation, back up, journal, install, activate, health-check,
// commit, or roll back.
func (e *Engine) run(ctx context.Context, cur, tgt *generation, p *Plan, chs []change) (*Result, error) {
	start := time.Now()
	e.lx = nil
	if j, err := e.readJournal(); err != nil {
		return nil, err
	} else if j != nil && j.Step == stepReboot {
		return nil, &RebootRequiredError{Serial: j.Serial, Waiting: true}
	} else if j != nil {
		return nil, ErrUnfinished
	}
	log := e.log.With("serial", tgt.meta.Serial)
	rs, err := openRoots(e.cfg.Root)
	if err != nil {
		return nil, err
	}
	defer rs.close()

	// The generation is written (as generations/<serial>.tmp, synced) in
	// the background while the stage, the pre-check, the backup, the
	// journal and the install run; it is moved into place once the
	// install is done.
	_, statErr := os.Stat(e.genPath(tgt.meta.Serial))
	newGen := statErr != nil
	genDone := make(chan error, 1)
	if newGen {
		// Stamped here, not in the background: the generation kept in
		// memory after the commit (Engine.kept) is then the one on disk.
		tgt.meta.AppliedAt = time.Now().UTC()
		go func() { genDone <- e.storeGeneration(tgt) }()
	} else {
		genDone <- nil
	}
	waitGen := sync.OnceValue(func() error { return <-genDone })
	dropGen := func() {
		if newGen {
			waitGen()
			os.RemoveAll(e.genPath(tgt.meta.Serial) + tmpSuffix)
		}
	}
	j := &journal{
		Txn:           strconv.FormatUint(tgt.meta.Serial, 10) + "-" + randHex(8),
		Serial:        tgt.meta.Serial,
		Step:          stepInstall,
		NewGeneration: newGen,
		Started:       time.Now().UTC(),
	}
	if cur != nil {
		j.Previous = cur.meta.Serial
	}
	for _, u := range p.Units {
		j.Units = append(j.Units, u.String())
	}
	// The backup and the journal's temp file are written and synced while
	// the stage and the pre-check run (they touch only the state dir); the
	// journal is put in place only once the pre-check passed.
	type prepared struct {
		backup  map[string][]byte
		journal *atomicfile.Pending
		err     error
	}
	prep := make(chan prepared, 1)
	var replaced held // the files the install replaces, held open (held)
	defer replaced.release()
	go func() {
		var r prepared
		r.backup, r.journal, r.err = e.prepareJournal(rs, cur, chs, j, &replaced)
		prep <- r
	}()
	var ids [][2]int
	stage, err := e.stage(tgt)
	if err == nil {
		err = e.at(hookStaged, 0)
	}
	if err == nil {
		ids, err = e.precheck(ctx, rs, tgt, chs, stage)
		if err != nil {
			log.Warn("pre-check failed, nothing installed", "err", err)
		}
	}
	pr := <-prep
	if err == nil {
		err = e.at(hookPrechecked, 0)
	}
	if err == nil {
		err = pr.err
	}
	if err == nil {
		err = e.commitJournal(pr.journal)
	}
	if err != nil {
		pr.journal.Discard()
		dropGen()
		os.Remove(e.backupPath())
		return nil, err
	}
	backup := pr.backup
	abort := func(files []journalFile, activated int, reason error, health []HealthResult) error {
		waitGen()
		return e.abort(ctx, rs, cur, j, backup, files, activated, reason, health)
	}
	if err := e.at(hookJournaled, 0); err != nil {
		return nil, abort(nil, 0, err, nil)
	}
	if err := e.liveBegin(ctx, cur, tgt, p, chs); err != nil {
		return nil, abort(nil, 0, err, nil)
	}
	// From here on the host changes; every failure goes through abort.
	log.Info("installing", "changes", len(chs), "units", j.Units)
	// Beside the install's temp files, the commit record's temp file is
	// written and synced; beside its directory fsyncs, the generation's
	// own writes finish. The generation moves into place only at the
	// commit: a generations/<serial> folder counts as accepted for the
	// agent's serial floor, also after a crash.
	var curTmp *atomicfile.Pending
	defer func() { curTmp.Discard() }()
	stageCurrent := func() (err error) {
		curTmp, err = e.stageCurrent(j)
		return err
	}
	installed, err := e.install(rs, chs, ids, stageCurrent, func() error {
		return parallel([]func() error{waitGen, replaced.release})
	})
	if err != nil {
		return nil, abort(j.Files[:installed], 0, err, nil)
	}
	if err := e.at(hookGenStored, 0); err != nil {
		return nil, abort(j.Files, 0, err, nil)
	}
	if err := e.liveAfter(ctx); err != nil {
		return nil, abort(j.Files, 0, err, nil)
	}

	if p.Reboot && e.seesBoots() {
		return nil, e.awaitBoot(ctx, j, func(err error) error { return abort(j.Files, 0, err, nil) })
	}
	if err := e.markStep(j, stepActivate); err != nil {
		return nil, abort(j.Files, 0, err, nil)
	}
	for i, u := range p.Units {
		if err := e.at(hookActivate, i); err != nil {
			return nil, abort(j.Files, i+1, err, nil)
		}
		log.Info("activating", "unit", u.String())
		if err := u.Check(); err != nil {
			// Verified bundles never carry one; the driver must never see one.
			return nil, abort(j.Files, i, fmt.Errorf("activate: %w", err), nil)
		}
		if err := e.cfg.Driver.Activate(ctx, u); err != nil {
			return nil, abort(j.Files, i+1, fmt.Errorf("activate %s: %w", u, err), nil)
		}
	}

	if err := e.at(hookHealth, 0); err != nil {
		return nil, abort(j.Files, len(p.Units), err, nil)
	}
	health, err := e.checkHealth(ctx, tgt.meta.Manifest.Health)
	if err != nil {
		return nil, abort(j.Files, len(p.Units), err, health)
	}

	if err := e.commit(j, curTmp); err != nil {
		return nil, abort(j.Files, len(p.Units), err, health)
	}
	curTmp = nil
	e.keep(tgt, j.Txn)
	log.Info("applied", "units", j.Units, "duration", time.Since(start))
	return &Result{
		Serial:         tgt.meta.Serial,
		Units:          p.Units,
		Health:         health,
		RebootRequired: p.Reboot,
		RebootReasons:  p.RebootReasons,
		Duration:       time.Since(start),
		Changes:        p.Changes,
		Live:           e.liveDone(),
	}, nil
}

// install places every change: directories and temp files first (the
// temp files written and fsynced concurrently, with beside), then the
// renames and removals in order, then one fsync per directory (with
// after, concurrently: the files replaced are freed there, see held). It returns how many targets were changed; a
// failure leaves the failed target untouched (its path may now escape,
// so it is not restored) and no temp file behind.
func (e *Engine) install(rs *roots, chs []change, ids [][2]int, beside, after func() error) (int, error) {
	rs.forgetDirs()
	var dirs atomicfile.Dirs
	pend := make([]*pending, len(chs))
	defer func() {
		for _, p := range pend {
			p.discard()
		}
	}()
	writes := []func() error{beside}
	for i, c := range chs {
		if c.Op == OpRemove {
			continue
		}
		p, err := rs.place(c.Path, &dirs)
		if err != nil {
			return 0, fmt.Errorf("install: %w", err)
		}
		pend[i] = p
		writes = append(writes, func() error { return p.writeTemp(c.New, fileMode(c.file.Mode), ids[i][0], ids[i][1]) })
	}
	if err := parallel(writes); err != nil {
		return 0, fmt.Errorf("install: %w", err)
	}
	if err := e.at(hookInstallTemp, 0); err != nil {
		return 0, err
	}
	for i, c := range chs {
		if err := e.at(hookInstall, i); err != nil {
			return i, fmt.Errorf("install %s: %w", c.Path, err)
		}
		var err error
		if c.Op == OpRemove {
			err = rs.remove(c.Path, &dirs)
		} else {
			err = pend[i].rename(&dirs)
		}
		if err != nil {
			return i, fmt.Errorf("install: %w", err)
		}
	}
	if err := parallel([]func() error{dirs.Sync, after}); err != nil {
		return len(chs), fmt.Errorf("install: %w", err)
	}
	return len(chs), e.at(hookInstalled, 0)
}

// prepareJournal records what each target was before, in the journal
// entries and in backup.tar, and writes both durably: backup.tar in place,
// the journal as a synced temp file for commitJournal. It returns the saved
// bytes by path, and holds each target it read open in replaced (see
// held). Nothing on the host changes.
//
// A target whose bytes are those of the current generation cur (a host
// without drift: all of them) is backed up by that generation, already on
// disk (readBackup); backup.tar carries the others, and is not written
// when there are none: a file created, written, synced and removed less
// per transaction.
func (e *Engine) prepareJournal(rs *roots, cur *generation, chs []change, j *journal, replaced *held) (map[string][]byte, *atomicfile.Pending, error) {
	saved := map[string][]byte{}
	var paths []string
	for _, c := range chs {
		data, st, f, err := rs.open(c.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("backup: %w", err)
		}
		replaced.keep(f)
		jf := journalFile{Path: c.Path, Op: c.Op, Existed: st.exists, Unit: c.file.Unit}
		if st.exists {
			jf.Mode, jf.UID, jf.GID, jf.SHA256 = st.mode, st.uid, st.gid, sha256hex(data)
			saved[c.Path] = data
			if kept, ok := cur.file(c.Path); ok && bytes.Equal(kept, data) {
				jf.InGeneration = true
			} else {
				paths = append(paths, c.Path)
			}
		}
		j.Files = append(j.Files, jf)
		if c.Op != OpRemove {
			for _, d := range missingDirs(rs, c.Path) {
				if !slices.Contains(j.Dirs, d) {
					j.Dirs = append(j.Dirs, d)
				}
			}
		}
	}
	sort.Strings(j.Dirs)
	jb, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	var jtmp *atomicfile.Pending
	err = parallel([]func() error{
		func() error {
			if len(paths) == 0 {
				// A stale one (a crash before any journal) holds nothing
				// of this transaction's.
				if err := os.Remove(e.backupPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				return nil
			}
			return writeTar(e.backupPath(), paths, saved, func(i int) error { return e.at(hookBackup, i+1) })
		},
		func() (err error) {
			jtmp, err = atomicfile.StagePath(e.journalPath(), jb, atomicfile.Options{Perm: 0o600, Sync: true})
			return err
		},
	})
	if err != nil {
		jtmp.Discard()
		return nil, nil, fmt.Errorf("backup and journal: %w", err)
	}
	return saved, jtmp, nil
}

// commitJournal puts the journal written by prepareJournal in place,
// durably: from here a crash is rolled back by Recover.
func (e *Engine) commitJournal(jtmp *atomicfile.Pending) error {
	if err := jtmp.Commit(nil); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := atomicfile.SyncDir(e.cfg.StateDir); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// stageCurrent writes and syncs the temp file of StateDir/current naming
// j's serial and txn: the commit record, not yet in place.
func (e *Engine) stageCurrent(j *journal) (*atomicfile.Pending, error) {
	rec := fmt.Appendf(nil, "{\"serial\":%d,\"txn\":%q}\n", j.Serial, j.Txn)
	p, err := atomicfile.StagePath(filepath.Join(e.cfg.StateDir, currentFile), rec, atomicfile.Options{Perm: 0o600, Sync: true})
	if err != nil {
		return nil, fmt.Errorf("commit record: %w", err)
	}
	return p, nil
}

// placeGeneration moves generations/<serial>.tmp into place and syncs
// the generations folder, before current may name it.
func (e *Engine) placeGeneration(serial uint64) error {
	final := e.genPath(serial)
	if err := os.Rename(final+tmpSuffix, final); err != nil {
		return fmt.Errorf("generation %d: %w", serial, err)
	}
	return atomicfile.SyncDir(filepath.Dir(final))
}

// commit makes the transaction final: the generation moves into place
// (current's temp file, cur, is written and synced already, or now if
// nil); the rename of StateDir/current, naming the serial and the txn,
// is the commit point; then the journal and the backup go, and old
// generations are pruned.
func (e *Engine) commit(j *journal, cur *atomicfile.Pending) error {
	if cur == nil {
		var err error
		if cur, err = e.stageCurrent(j); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	if j.NewGeneration {
		// Already in place when a commit was cut short after this step
		// and the transaction resumed (Resume).
		if _, err := os.Stat(e.genPath(j.Serial) + tmpSuffix); err == nil {
			if err := e.placeGeneration(j.Serial); err != nil {
				cur.Discard()
				return fmt.Errorf("commit: %w", err)
			}
		}
	}
	if err := e.at(hookCommitting, 0); err != nil {
		cur.Discard()
		return fmt.Errorf("commit: %w", err)
	}
	if err := cur.Commit(nil); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := atomicfile.SyncDir(e.cfg.StateDir); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// Committed: from here nothing may roll back.
	if err := e.at(hookCommitted, 0); err != nil {
		e.log.Error("after commit", "err", err)
	}
	// The clean-up and the pruning touch different files; each removal
	// may wait for the freed blocks' discard (see held), so they overlap.
	// A crash in between leaves what a crash in either leaves: Recover
	// finishes a committed journal, the next prune an old generation.
	parallel([]func() error{
		func() error { e.finish(); return nil },
		func() error {
			if err := e.prune(j.Serial); err != nil {
				e.log.Warn("prune generations", "err", err)
			}
			return nil
		},
	})
	return nil
}

// abort rolls a failed transaction back: restore the touched files from
// the backup, re-activate the units that were activated (activated of
// them, in order), re-check the previous generation's health.
func (e *Engine) abort(ctx context.Context, rs *roots, cur *generation, j *journal, backup map[string][]byte,
	files []journalFile, activated int, reason error, health []HealthResult) error {
	ctx = context.WithoutCancel(ctx)
	e.log.Warn("apply failed, rolling back", "serial", j.Serial, "reason", reason)
	units := make([]verify.Unit, 0, activated)
	for _, s := range j.Units[:activated] {
		u, _ := verify.ParseUnit(s)
		units = append(units, u)
	}
	recheck, err := e.restore(ctx, rs, cur, j, backup, files, units)
	if err != nil {
		e.log.Error("restore failed: degraded", "serial", j.Serial, "err", err)
		return &DegradedError{Serial: j.Serial, Reason: reason, Err: err, Health: recheck}
	}
	return &RolledBackError{Serial: j.Serial, Reason: reason, Health: health, Recheck: recheck}
}

// restore is the shared rollback of abort and Recover. Files go back in
// reverse order; a file already equal to its backup is left alone, so a
// second run after a crash does only what is left. Once the files are back
// and the units re-activated the journal is removed; if files could not be
// restored it stays, for the next start to try again.
func (e *Engine) restore(ctx context.Context, rs *roots, cur *generation, j *journal, backup map[string][]byte,
	files []journalFile, units []verify.Unit) ([]HealthResult, error) {
	if err := e.setStep(j, stepRollback); err != nil {
		e.log.Warn("journal step", "err", err) // restore anyway
	}
	// A unit all of whose files this transaction created has nothing to
	// go back to: it is undone while its files still exist (a new jail is
	// stopped through its own config) and not re-activated after.
	var again []verify.Unit
	for _, u := range units {
		if err := u.Check(); err != nil {
			e.log.Warn("not undone: outside the unit grammar", "unit", u.String(), "err", err)
			continue
		}
		if !onlyNewFiles(files, u) {
			again = append(again, u)
			continue
		}
		if err := e.cfg.Driver.Deactivate(ctx, u); err != nil {
			return nil, err
		}
		e.log.Info("undone: its files did not exist before", "unit", u.String())
	}
	units = previousUnits(cur, files, again)
	log := e.log.With("serial", j.Serial, "previous", j.Previous)
	log.Info("restoring the host as it was before the apply", "files", len(files), "units", unitNames(units))
	if err := e.liveUndoEarly(ctx); err != nil {
		e.log.Error("undo of live steps", "err", err)
	}
	rs.forgetDirs()
	var dirs atomicfile.Dirs
	var errs []error
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		if err := e.at(hookRestore, len(files)-1-i); err != nil {
			return nil, err
		}
		rs.removeTemps(f.Path)
		did, err := e.restoreFile(rs, f, j.Previous, backup, &dirs)
		if err != nil {
			log.Error("file not restored", "path", f.Path, "err", err)
			errs = append(errs, err)
			continue
		}
		log.Info("file restored", "path", f.Path, "how", did)
	}
	// Directories the install created go too, deepest first, if empty.
	for i := len(j.Dirs) - 1; i >= 0; i-- {
		rs.removeDir(j.Dirs[i], &dirs)
	}
	if err := dirs.Sync(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		err := fmt.Errorf("restore files: %w", errors.Join(errs...))
		log.Error("restore incomplete: the journal stays for the next start", "err", err)
		return nil, err
	}
	if j.NewGeneration {
		os.RemoveAll(e.genPath(j.Serial) + tmpSuffix)
		if c, _ := e.readCurrent(); c == nil || c.Serial != j.Serial {
			os.RemoveAll(e.genPath(j.Serial))
		}
	}
	if err := e.liveUndoLate(ctx); err != nil {
		e.log.Error("undo of live steps", "err", err)
	}
	if err := e.at(hookReactivate, 0); err != nil {
		return nil, err
	}
	// Files are wholly back. A crash before finish re-activates again at
	// the next start; a failure leaves services degraded, not files mixed.
	var actErr error
	for _, u := range units {
		if err := e.cfg.Driver.Activate(ctx, u); err != nil {
			actErr = fmt.Errorf("re-activate %s: %w", u, err)
			break
		}
	}
	e.finish()
	if actErr != nil {
		log.Error("files restored, re-activation failed", "err", actErr)
		return nil, actErr
	}
	var checks []verify.Check
	if cur != nil {
		checks = cur.meta.Manifest.Health
	}
	health, err := e.checkHealth(ctx, checks)
	if err != nil {
		log.Error("files restored and re-activated, re-check failed", "err", err)
		return health, fmt.Errorf("re-check: %w", err)
	}
	log.Info("restored", "files", len(files), "reactivated", unitNames(units), "checks", len(health))
	return health, nil
}

func unitNames(us []verify.Unit) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// previousUnits maps the units to re-activate after the files went back
// onto the previous generation's: a unit the previous generation knows is
// kept; a unit new in the failed bundle (a renamed jail, a bad name) is
// never run again, its restored files are re-activated under the units
// the previous generation gave them instead. Without a previous
// generation the units stay as they are (the files were not managed).
func previousUnits(cur *generation, files []journalFile, units []verify.Unit) []verify.Unit {
	if cur == nil {
		return units
	}
	known := map[string]bool{}
	before := map[string]string{} // path -> unit in the previous generation
	for _, f := range cur.meta.Manifest.Files {
		known[f.Unit] = true
		before[f.Path] = f.Unit
	}
	var out []verify.Unit
	add := func(u verify.Unit) {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for _, u := range units {
		if known[u.String()] {
			add(u)
			continue
		}
		for _, f := range files {
			if f.Unit != u.String() {
				continue
			}
			if prev, err := verify.ParseUnit(before[f.Path]); err == nil && f.Existed && prev.Kind != verify.UnitNone {
				add(prev)
			}
		}
	}
	return out
}

// onlyNewFiles reports whether u has files in the transaction and every
// one of them was created by it.
func onlyNewFiles(files []journalFile, u verify.Unit) bool {
	n := 0
	for _, f := range files {
		if f.Unit != u.String() {
			continue
		}
		if f.Existed || f.Op == OpRemove {
			return false
		}
		n++
	}
	return n > 0
}

// restoreFile puts one journalled file back and says how (for the log).
func (e *Engine) restoreFile(rs *roots, f journalFile, prev uint64, backup map[string][]byte, dirs *atomicfile.Dirs) (string, error) {
	disk, st, err := rs.read(f.Path)
	if err != nil {
		return "", err
	}
	if !f.Existed {
		if !st.exists {
			return "absent, as before", nil
		}
		return "removed: the apply created it", rs.remove(f.Path, dirs)
	}
	data, ok := backup[f.Path]
	if !ok || sha256hex(data) != f.SHA256 {
		return "", fmt.Errorf("%s: backup missing or corrupt", f.Path)
	}
	from := "backup.tar"
	if f.InGeneration {
		from = "generation " + strconv.FormatUint(prev, 10)
	}
	if st.exists && st.mode == f.Mode && st.uid == f.UID && st.gid == f.GID && string(disk) == string(data) {
		return "unchanged: already the bytes of " + from, nil
	}
	return "rewritten from " + from, rs.write(f.Path, data, f.Mode, f.UID, f.GID, dirs)
}

// missingDirs lists the ancestors of target that do not exist yet, so a
// rollback can remove the directories the install creates.
func missingDirs(rs *roots, target string) []string {
	var out []string
	for d := path.Dir(target); d != "/"; d = path.Dir(d) {
		if rs.exists(d) {
			break
		}
		out = append(out, d)
	}
	return out
}
