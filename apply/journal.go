package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const (
	journalName = "journal.json"
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
	Dirs    []string  `json:"dirs,omitempty"`
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
}

func (e *Engine) journalPath() string { return filepath.Join(e.cfg.StateDir, journalName) }
func (e *Engine) backupPath() string  { return filepath.Join(e.cfg.StateDir, backupName) }

// setStep records a later step. It is not synced: the step only words
// the recovery reason (recovery re-activates every unit of the journal
// whatever the step, as a boot may have started services in between).
func (e *Engine) setStep(j *journal, step string) error {
	j.Step = step
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := tempFile(e.journalPath(), b, false)
	if err == nil {
		err = renameTemp(tmp, e.journalPath(), false)
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (e *Engine) readJournal() (*journal, error) {
	b, err := os.ReadFile(e.journalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("journal %s: %w", e.journalPath(), err)
	}
	return &j, nil
}

// finish removes what a finished transaction leaves in the state dir.
// The journal goes first: without it the rest is only litter.
func (e *Engine) finish() {
	os.Remove(e.journalPath())
	os.Remove(e.backupPath())
	os.RemoveAll(filepath.Join(e.cfg.StateDir, stagingDir))
}
