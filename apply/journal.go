package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
)

const (
	journalName = "journal.json"
	stepName    = "journal.step"
	backupName  = "backup.tar"
	stagingDir  = "staging"
)

// Journal steps. Only the absence of a matching commit decides recovery
// (an uncommitted journal is always rolled back); the step is shown in
// the recovery reason.
const (
	stepInstall  = "install"  // host files may be changing
	stepActivate = "activate" // units may have been activated
	stepHealth   = "health"
	stepRollback = "rollback" // restoring the backup
	// stepReboot: files installed, nothing activated; the health check
	// and the commit wait for the host's next boot (Engine.Resume).
	stepReboot = "reboot"
)

// journal is StateDir/journal.json: written and fsynced before the first
// host file changes, removed after the commit or the rollback.
type journal struct {
	Txn      string `json:"txn"`
	Serial   uint64 `json:"serial"`
	Previous uint64 `json:"previous"` // 0: no previous generation
	Step     string `json:"step"`
	// NewGeneration: generations/<serial> did not exist before; a rollback
	// removes it.
	NewGeneration bool          `json:"new_generation"`
	Units         []string      `json:"units"`
	Files         []journalFile `json:"files"`
	// Dirs are the directories the install creates (absent before).
	Dirs []string `json:"dirs,omitempty"`
	// Boot is the boot the install happened in (stepReboot).
	Boot    string    `json:"boot,omitempty"`
	Started time.Time `json:"started"`
}

// journalFile is one target of the transaction and what it was before.
type journalFile struct {
	Path    string      `json:"path"`
	Op      string      `json:"op"`
	Existed bool        `json:"existed"`        // true: restore from backup.tar; false: remove
	Unit    string      `json:"unit,omitempty"` // the activation unit of the bundle's entry
	Mode    fs.FileMode `json:"mode,omitempty"`
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	SHA256  string      `json:"sha256,omitempty"` // of the backed-up bytes
	// InGeneration: the bytes before are the previous generation's own
	// (journal.Previous), so backup.tar does not carry them (readBackup).
	InGeneration bool `json:"in_generation,omitempty"`
}

func (e *Engine) journalPath() string { return filepath.Join(e.cfg.StateDir, journalName) }
func (e *Engine) stepPath() string    { return filepath.Join(e.cfg.StateDir, stepName) }
func (e *Engine) backupPath() string  { return filepath.Join(e.cfg.StateDir, backupName) }

// setStep rewrites the journal with a later step (reboot, health,
// rollback; activate goes to markStep). The new journal is synced before
// its rename (atomicfile.Ordered), not its directory: after a power loss
// the journal is the old one or the new one, both valid for recovery. An
// unsynced rewrite could come back empty where data is not written
// before a rename (ext4 without a journal, UFS with soft updates), and an
// unreadable journal holds every apply until an operator steps in.
func (e *Engine) setStep(j *journal, step string) error {
	j.Step = step
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(e.journalPath(), b, 0o600, atomicfile.Ordered); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// stepRecLen is the size of the record in StateDir/journal.step: "<txn>
// <step>" padded with spaces, then a newline. A txn is a serial and 16
// hex digits, at most 37 bytes.
const stepRecLen = 64

// markStep records that j reached step (activate) in StateDir/journal.step,
// overwritten in place and not synced (the step only words the recovery
// reason: recovery re-activates every unit of the journal whatever the
// step, as a boot may have started services in between), without
// rewriting the journal: a rewrite is a temp file created and renamed over
// the journal, which frees the old one, and on ext4 without a journal a
// free is a discard waited for (see held), on every transaction's path.
// The file is made once and kept; a record names its txn, so one left by
// another transaction is ignored (readJournal).
func (e *Engine) markStep(j *journal, step string) error {
	rec := fmt.Appendf(make([]byte, 0, stepRecLen), "%s %s", j.Txn, step)
	if len(rec) >= stepRecLen {
		return fmt.Errorf("journal step: record %q too long", rec)
	}
	rec = append(rec, bytes.Repeat([]byte{' '}, stepRecLen-1-len(rec))...)
	rec = append(rec, '\n')
	f, err := os.OpenFile(e.stepPath(), os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("journal step: %w", err)
	}
	_, err = f.WriteAt(rec, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal step: %w", err)
	}
	j.Step = step
	return nil
}

// markedStep returns the step journal.step records for txn, or "".
func (e *Engine) markedStep(txn string) string {
	b, err := os.ReadFile(e.stepPath())
	if err != nil {
		return ""
	}
	t, step, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || t != txn {
		return ""
	}
	return step
}

// JournalError: the journal of an interrupted transaction exists but
// cannot be read, so nobody knows which files it changed. The caller holds
// applies and tells the operator (the agent: degraded until `agent
// resume`, which calls SetAsideJournal and reinstalls the current
// generation).
type JournalError struct {
	Path string
	Err  error
}

func (e *JournalError) Error() string { return "journal " + e.Path + " unreadable: " + e.Err.Error() }
func (e *JournalError) Unwrap() error { return e.Err }

func (e *Engine) readJournal() (*journal, error) {
	b, err := os.ReadFile(e.journalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &JournalError{Path: e.journalPath(), Err: err}
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, &JournalError{Path: e.journalPath(), Err: err}
	}
	if j.Txn == "" || j.Serial == 0 {
		return nil, &JournalError{Path: e.journalPath(), Err: errors.New("no transaction id or serial")}
	}
	// Only a step past install is marked there; a later rewrite of the
	// journal (reboot, health, rollback) takes over from it.
	if j.Step == stepInstall && e.markedStep(j.Txn) == stepActivate {
		j.Step = stepActivate
	}
	return &j, nil
}

// SetAsideJournal renames an unreadable journal (and its backup) to
// <name>.unreadable-<unix time> for the record, so transactions can run
// again. It returns the new journal name.
func (e *Engine) SetAsideJournal() (string, error) {
	suffix := fmt.Sprintf(".unreadable-%d", time.Now().Unix())
	aside := e.journalPath() + suffix
	if err := os.Rename(e.journalPath(), aside); err != nil {
		return "", fmt.Errorf("set the journal aside: %w", err)
	}
	if err := os.Rename(e.backupPath(), e.backupPath()+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return aside, fmt.Errorf("set the backup aside: %w", err)
	}
	return aside, atomicfile.SyncDir(e.cfg.StateDir)
}

// readBackup returns the bytes every journalled file had before the
// transaction: backup.tar's, and the previous generation's for those it
// did not carry (InGeneration). That generation is durable (synced before
// its own commit) and stays as it is until this transaction commits:
// prune runs after the commit point and never removes the current one.
func (e *Engine) readBackup(j *journal) (map[string][]byte, error) {
	backup, err := readTar(e.backupPath())
	if errors.Is(err, fs.ErrNotExist) {
		backup, err = map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	var prev *generation
	for _, f := range j.Files {
		if !f.InGeneration {
			continue
		}
		if prev == nil {
			if prev, err = e.loadGeneration(j.Previous); err != nil {
				return nil, err
			}
		}
		if b, ok := prev.files[f.Path]; ok {
			backup[f.Path] = b
		}
	}
	return backup, nil
}

// finish removes what a finished transaction leaves in the state dir.
// The journal goes first: without it the rest is only litter. The
// staging tree stays for the next transaction (Engine.stage).
func (e *Engine) finish() {
	os.Remove(e.journalPath())
	os.Remove(filepath.Join(e.cfg.StateDir, "live.json")) // apply/live.JournalName
	os.Remove(e.backupPath())
}
