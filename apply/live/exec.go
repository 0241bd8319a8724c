package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy/atomicfile"
)

// Runner runs one host command and returns what it printed; a command
// that exits non-zero is an error. On a host it is the FreeBSD driver
// (freebsd.Driver.RunLive), on sim the same driver over the emulated
// userland.
type Runner interface {
	RunLive(ctx context.Context, argv ...string) ([]byte, error)
}

// Step states in the journal.
const (
	stateDoing  = "doing"  // started: may have happened, in part or whole
	stateDone   = "done"   // happened
	stateUndone = "undone" // undone (or never begun)
)

// JournalName is the live journal's file name in the agent's state dir.
const JournalName = "live.json"

// journal is written (temp file, fsync, rename, directory fsync) before
// and after every step and every undo, so that after a kill -9 the state
// of each step is known to within the one in flight, whose undo then runs
// tolerating failure (it may never have happened).
type journal struct {
	Serial uint64            `json:"serial"`
	Steps  []Step            `json:"steps"`
	State  []string          `json:"state"`
	Binds  map[string]string `json:"binds,omitempty"`
}

// Exec runs a plan's steps against the host, journaled.
type Exec struct {
	Path string // the journal file
	Cmd  Runner
	Log  *slog.Logger
	// Hook, if set, is called before step i runs (the test seam for kill
	// -9 at every step); an error stops the run as a failed step would.
	Hook func(i int) error

	j *journal
}

// StepError is a step that failed; its index is in the plan's order.
type StepError struct {
	Index int
	Argv  []string
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("live step %d (%s): %v", e.Index+1, strings.Join(e.Argv, " "), e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// ManagementLostError: after steps on the management path the git source
// did not answer within the deadline.
type ManagementLostError struct {
	Deadline time.Duration
	Err      error
}

func (e *ManagementLostError) Error() string {
	// The check fails as soon as the source refuses (a reject route) or
	// when the deadline passes (packets dropped): say the deadline, not
	// that it was waited out.
	return fmt.Sprintf("git source unreachable after a change on its path (confirm deadline %s): %v", e.Deadline, e.Err)
}

func (e *ManagementLostError) Unwrap() error { return e.Err }

// Begin writes the journal of plan p for serial before anything runs.
func (x *Exec) Begin(serial uint64, p *Plan) error {
	x.j = &journal{Serial: serial, Steps: p.Steps, State: make([]string, len(p.Steps))}
	for i := range x.j.State {
		x.j.State[i] = stateUndone
	}
	return x.save()
}

// Open reads an existing journal (after a crash); false if there is none.
func (x *Exec) Open() (bool, error) {
	b, err := os.ReadFile(x.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("live journal: %w", err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil || len(j.State) != len(j.Steps) {
		return false, fmt.Errorf("live journal %s: unreadable: %v", x.Path, err)
	}
	x.j = &j
	return true, nil
}

// Serial is the serial of the open journal.
func (x *Exec) Serial() uint64 { return x.j.Serial }

// Finish removes the journal: the steps stand (commit) or were undone.
func (x *Exec) Finish() error {
	x.j = nil
	if err := os.Remove(x.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(x.Path))
}

// Run runs the steps of phase ph in order. A failing step is left as
// "doing" for Undo. If a step of the phase is on the management path,
// confirm must then succeed within deadline (commit-confirmed).
func (x *Exec) Run(ctx context.Context, ph Phase, confirm func(context.Context) error, deadline time.Duration) error {
	mgmt := false
	for i, s := range x.j.Steps {
		if s.Phase != ph || x.j.State[i] != stateUndone {
			continue
		}
		x.j.State[i] = stateDoing
		if err := x.save(); err != nil {
			return err
		}
		if x.Hook != nil {
			if err := x.Hook(i); err != nil {
				return &StepError{Index: i, Argv: s.Do, Err: err}
			}
		}
		x.log().Info("live step", "n", i+1, "do", strings.Join(x.bind(s.Do), " "), "why", s.Why)
		out, err := x.Cmd.RunLive(ctx, x.bind(s.Do)...)
		if err != nil {
			return &StepError{Index: i, Argv: x.bind(s.Do), Err: err}
		}
		if s.Bind != "" {
			if err := x.learn(s.Bind, out); err != nil {
				return &StepError{Index: i, Argv: s.Do, Err: err}
			}
		}
		x.j.State[i] = stateDone
		if err := x.save(); err != nil {
			return err
		}
		mgmt = mgmt || s.Mgmt
	}
	if mgmt && confirm != nil {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		if err := confirm(cctx); err != nil {
			return &ManagementLostError{Deadline: deadline, Err: err}
		}
	}
	return nil
}

// Undo undoes, newest first, the steps chosen by sel that happened or
// may have. A step left "doing" is undone tolerating failure.
func (x *Exec) Undo(ctx context.Context, sel func(Step) bool) error {
	var errs []error
	for i := len(x.j.Steps) - 1; i >= 0; i-- {
		s := x.j.Steps[i]
		st := x.j.State[i]
		if st == stateUndone || !sel(s) {
			continue
		}
		skip := false
		if st == stateDoing && s.Gone != "" {
			// Still there: the destroy never happened.
			_, err := x.Cmd.RunLive(ctx, "ifconfig", x.bind([]string{s.Gone})[0])
			skip = err == nil
		}
		if st == stateDoing && s.Bind != "" && x.j.Binds[s.Bind] == "" {
			// The epair's unit was never learned: its planned name
			// names nothing of ours, so nothing is destroyed by it.
			x.log().Warn("live undo: an epair created by a step in flight may be left unnamed", "step", i+1)
			skip = true
		}
		if skip {
			s.Undo = nil
		}
		for k, u := range s.Undo {
			argv := x.bind(u)
			x.log().Info("live undo", "n", i+1, "undo", strings.Join(argv, " "))
			out, err := x.Cmd.RunLive(ctx, argv...)
			if err == nil && k == 0 && s.UndoBind != "" {
				err = x.learn(s.UndoBind, out)
			}
			if err != nil && st == stateDone {
				errs = append(errs, fmt.Errorf("undo of live step %d (%s): %w", i+1, strings.Join(argv, " "), err))
			}
		}
		x.j.State[i] = stateUndone
		if err := x.save(); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// UndoAll undoes every step in the order a rollback needs when the files
// are restored in between: restore is called after the After steps are
// undone and before the Before steps and the late undos.
func (x *Exec) UndoAll(ctx context.Context, restore func() error) error {
	var errs []error
	if err := x.Undo(ctx, func(s Step) bool { return s.Phase == After && !s.UndoLate }); err != nil {
		errs = append(errs, err)
	}
	if restore != nil {
		if err := restore(); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	// With the old files back: what was undone late, newest first, then
	// the Before steps.
	if err := x.Undo(ctx, func(s Step) bool { return s.Phase == After }); err != nil {
		errs = append(errs, err)
	}
	if err := x.Undo(ctx, func(s Step) bool { return s.Phase == Before }); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Done lists the steps that happened, in order (for the status and the
// tests that assert which steps ran).
func (x *Exec) Done() []Step {
	var out []Step
	for i, s := range x.j.Steps {
		if x.j.State[i] == stateDone {
			out = append(out, s)
		}
	}
	return out
}

// learn binds a planned epair unit to the one the kernel printed
// (ifconfig epair create prints "epair12a").
func (x *Exec) learn(planned string, out []byte) error {
	got := strings.TrimSpace(string(out))
	unit, ok := strings.CutSuffix(got, "a")
	if !ok || !strings.HasPrefix(unit, "epair") || strings.ContainsAny(unit, " \n\t") {
		return fmt.Errorf("ifconfig epair create printed %q, want epairNa", got)
	}
	if x.j.Binds == nil {
		x.j.Binds = map[string]string{}
	}
	x.j.Binds[planned] = unit
	return x.save()
}

// bind replaces planned epair unit names by the kernel's.
func (x *Exec) bind(argv []string) []string {
	if len(x.j.Binds) == 0 {
		return argv
	}
	out := make([]string, len(argv))
	for k, w := range argv {
		out[k] = w
		for from, to := range x.j.Binds {
			switch w {
			case from + "a":
				out[k] = to + "a"
			case from + "b":
				out[k] = to + "b"
			}
		}
	}
	return out
}

func (x *Exec) log() *slog.Logger {
	if x.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return x.Log
}

func (x *Exec) save() error {
	b, err := json.MarshalIndent(x.j, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(x.Path, b, 0o600, atomicfile.Durable); err != nil {
		return fmt.Errorf("live journal: %w", err)
	}
	return nil
}
