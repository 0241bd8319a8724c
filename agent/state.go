package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
)

// State files in the state dir (DESIGN.md "Agent", a contract). The apply
// engine keeps its generations and journal beside them.
const (
	fileStatus     = "status.json"
	fileLastSerial = "last_serial"
	fileQuarantine = "quarantine.json"
	fileHold       = "hold.json"
	filePin        = "pin.json"
	fileRequest    = "request.json"
	fileResponse   = "response.json"
	fileLock       = "lock"
	dirGit         = "git"
)

// Store reads and writes the agent's state files. Every write is atomic
// (temp file, fsync, rename, fsync of the directory), so a reader such as
// `agent status` never sees half a file.
type Store struct {
	Dir string
}

// Hold stops applies until Until (zero: until `agent resume`).
type Hold struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason"`
}

// Active reports whether the hold is in force at now.
func (h *Hold) Active(now time.Time) bool {
	return h != nil && (h.Until.IsZero() || now.Before(h.Until))
}

// Pin keeps a generation chosen by `agent rollback` until a bundle with a
// serial above Above arrives.
type Pin struct {
	Serial uint64    `json:"serial"` // the generation rolled back to
	Above  uint64    `json:"above"`  // the last accepted serial when pinned
	At     time.Time `json:"at"`
}

// Quarantined is a bundle the agent will not try again.
type Quarantined struct {
	// Serial as signed (Verified) or as claimed by a rejected manifest.
	Serial   uint64    `json:"serial"`
	Verified bool      `json:"verified"`
	Commit   string    `json:"commit"`
	Reason   string    `json:"reason"`
	Kind     string    `json:"kind"` // "rejected" (verification) or "rolled-back" (apply)
	At       time.Time `json:"at"`
	Manifest string    `json:"manifest_blob,omitempty"`
	Archive  string    `json:"archive_blob,omitempty"`
	Trust    string    `json:"trust,omitempty"` // trust config fingerprint of a "rejected" entry
}

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

// Init creates the state dir (0700: it holds the git credentials' results
// and the trust state).
func (s Store) Init() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

func (s Store) writeFile(name string, data []byte) error {
	return atomicfile.WriteFile(s.path(name), data, 0o600, atomicfile.Durable)
}

func (s Store) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return s.writeFile(name, append(b, '\n'))
}

// readJSON decodes name into v; ok is false when the file does not exist.
func (s Store) readJSON(name string, v any) (bool, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", s.path(name), err)
	}
	return true, nil
}

func (s Store) remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// LastSerial is the highest serial ever accepted; ok is false when none was.
// A file that exists but does not parse is an error: the agent fails closed
// rather than accept old bundles again.
func (s Store) LastSerial() (serial uint64, ok bool, err error) {
	b, err := os.ReadFile(s.path(fileLastSerial))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: corrupt (%q); restore it or remove it after checking the current generation", s.path(fileLastSerial), b)
	}
	return n, true, nil
}

// SetLastSerial records serial as accepted.
func (s Store) SetLastSerial(serial uint64) error {
	return s.writeFile(fileLastSerial, []byte(strconv.FormatUint(serial, 10)+"\n"))
}

// Hold returns the hold, or nil.
func (s Store) Hold() (*Hold, error) {
	var h Hold
	ok, err := s.readJSON(fileHold, &h)
	if !ok || err != nil {
		return nil, err
	}
	return &h, nil
}

// SetHold writes the hold.
func (s Store) SetHold(h Hold) error { return s.writeJSON(fileHold, h) }

// ClearHold removes the hold.
func (s Store) ClearHold() error { return s.remove(fileHold) }

// Pin returns the rollback pin, or nil.
func (s Store) Pin() (*Pin, error) {
	var p Pin
	ok, err := s.readJSON(filePin, &p)
	if !ok || err != nil {
		return nil, err
	}
	return &p, nil
}

// SetPin writes the rollback pin.
func (s Store) SetPin(p Pin) error { return s.writeJSON(filePin, p) }

// ClearPin removes the rollback pin.
func (s Store) ClearPin() error { return s.remove(filePin) }

// Quarantine returns the quarantined bundles, oldest first.
func (s Store) Quarantine() ([]Quarantined, error) {
	var q []Quarantined
	_, err := s.readJSON(fileQuarantine, &q)
	return q, err
}

// maxQuarantine bounds each class of quarantine.json entries: rejected
// (unverified) ones and signed serials that failed or were rolled back.
// The classes are bounded separately, so that anyone able to push to the
// branch cannot push a signed failure out with unsigned garbage; the
// oldest entry of the same class goes first.
var maxQuarantine = 50 // a variable for tests

// AddQuarantine appends q.
func (s Store) AddQuarantine(q Quarantined) error {
	all, err := s.Quarantine()
	if err != nil {
		return err
	}
	all = append(all, q)
	n := 0
	for _, e := range all {
		if e.Verified == q.Verified {
			n++
		}
	}
	if n > maxQuarantine {
		drop := n - maxQuarantine
		all = slices.DeleteFunc(all, func(e Quarantined) bool {
			if drop > 0 && e.Verified == q.Verified {
				drop--
				return true
			}
			return false
		})
	}
	return s.writeJSON(fileQuarantine, all)
}

// Status returns the last written status, or nil.
func (s Store) Status() (*Status, error) {
	var st Status
	ok, err := s.readJSON(fileStatus, &st)
	if !ok || err != nil {
		return nil, err
	}
	return &st, nil
}

// SetStatus writes the status durably.
func (s Store) SetStatus(st *Status) error { return s.writeJSON(fileStatus, st) }

// SetStatusFast replaces the status atomically but without fsync: for
// the poll that changed nothing but its timestamps, where losing the
// write in a crash costs nothing (the status is a report; last_serial,
// quarantine, hold and pin are always written durably).
func (s Store) SetStatusFast(st *Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path(fileStatus), append(b, '\n'), 0o600, atomicfile.Volatile)
}

// LockedError: another agent holds the state dir.
type LockedError struct {
	Dir string
	PID int // 0 if unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("state dir %s is in use by another agent (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("state dir %s is in use by another agent", e.Dir)
}

// Lock takes the state dir's lock (one agent per state dir) without
// waiting, and records our pid in it. Unlock with the returned function.
func (s Store) Lock() (unlock func() error, err error) {
	if err := s.Init(); err != nil {
		return nil, err
	}
	fl := flock.New(s.path(fileLock))
	for attempt := 1; ; attempt++ {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", s.path(fileLock), err)
		}
		if ok {
			break
		}
		// Locked ("agent status") holds the lock shared for an instant to
		// see whether an agent runs: that is no agent. Only an exclusive
		// holder is, and then the shared lock is refused too (flock(2)).
		shared, err := fl.TryRLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", s.path(fileLock), err)
		}
		if !shared {
			return nil, &LockedError{Dir: s.Dir, PID: s.LockPID()}
		}
		if err := fl.Unlock(); err != nil {
			return nil, fmt.Errorf("lock %s: %w", s.path(fileLock), err)
		}
		lockTried()
		if attempt == lockAttempts {
			return nil, fmt.Errorf("lock %s: held shared by some other process for over %d attempts", s.path(fileLock), lockAttempts)
		}
		time.Sleep(time.Millisecond)
	}
	// The pid is informational (status, error messages); flock is the lock.
	_ = os.WriteFile(s.path(fileLock), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return fl.Unlock, nil
}

// LockPID returns the pid recorded by the lock holder, or 0.
func (s Store) LockPID() int {
	b, err := os.ReadFile(s.path(fileLock))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// lockAttempts bounds Lock's attempts while the lock is held only shared
// (probes by Locked, each an instant long), about a millisecond apart.
const lockAttempts = 1000

// lockTried is called after each attempt of Lock that found the lock
// held only shared (a test hook).
var lockTried = func() {}

// Locked reports whether some process holds the lock right now.
func (s Store) Locked() bool {
	fl := flock.New(s.path(fileLock))
	ok, err := fl.TryRLock()
	if err != nil {
		return false
	}
	if ok {
		fl.Unlock()
		return false
	}
	return true
}

// Request is an operator command handed to the running agent, which holds
// the lock the command would need (agent rollback while agent run runs).
type Request struct {
	ID string    `json:"id"`
	Op string    `json:"op"` // "rollback"
	To uint64    `json:"to,omitempty"`
	At time.Time `json:"at"`
}

// Response answers the Request with the same ID.
type Response struct {
	ID     string    `json:"id"`
	OK     bool      `json:"ok"`
	Serial uint64    `json:"serial,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// Submit writes a request for the running agent.
func (s Store) Submit(r Request) error {
	if err := s.remove(fileResponse); err != nil {
		return err
	}
	return s.writeJSON(fileRequest, r)
}

// Request returns the pending request, or nil.
func (s Store) Request() (*Request, error) {
	var r Request
	ok, err := s.readJSON(fileRequest, &r)
	if !ok || err != nil {
		return nil, err
	}
	return &r, nil
}

// Respond records the answer and removes the request.
func (s Store) Respond(r Response) error {
	if err := s.writeJSON(fileResponse, r); err != nil {
		return err
	}
	return s.remove(fileRequest)
}

// Response returns the answer to request id, or nil while there is none.
func (s Store) Response(id string) (*Response, error) {
	var r Response
	ok, err := s.readJSON(fileResponse, &r)
	if !ok || err != nil || r.ID != id {
		return nil, err
	}
	return &r, nil
}
