// Package applytest provides a scriptable fake apply.Driver for tests of
// the engine and of its callers (the agent): it records every call, and
// can be told to fail a pre-check or a unit, or to report a jail down.
package applytest

import (
	"context"
	"fmt"
	"sync"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// Driver is a fake host. The zero value is not usable; call New.
type Driver struct {
	mu      sync.Mutex
	calls   []string
	running map[string]bool
	down    map[string]bool
	pfOff   bool
	// OnPrecheck, when set, decides the pre-check outcome.
	OnPrecheck func(stage string, files []verify.File) error
	// OnActivate, when set, decides each activation's outcome; a jail
	// unit that succeeds marks the jail running.
	OnActivate func(u verify.Unit) error
}

var _ apply.Driver = (*Driver)(nil)

// New returns a fake with pf enabled and no jail running.
func New() *Driver {
	return &Driver{running: map[string]bool{}, down: map[string]bool{}}
}

func (d *Driver) Name() string { return "fake" }

func (d *Driver) Precheck(ctx context.Context, stage string, files []verify.File) error {
	d.mu.Lock()
	d.calls = append(d.calls, "precheck")
	f := d.OnPrecheck
	d.mu.Unlock()
	if f != nil {
		return f(stage, files)
	}
	return nil
}

func (d *Driver) Activate(ctx context.Context, u verify.Unit) error {
	d.mu.Lock()
	d.calls = append(d.calls, "activate "+u.String())
	f := d.OnActivate
	d.mu.Unlock()
	if f != nil {
		if err := f(u); err != nil {
			if u.Kind == verify.UnitJail {
				d.mu.Lock()
				d.running[u.Jail] = false
				d.mu.Unlock()
			}
			return err
		}
	}
	if u.Kind == verify.UnitJail {
		d.mu.Lock()
		d.running[u.Jail] = true
		d.mu.Unlock()
	}
	return nil
}

// Deactivate records "deactivate U"; a jail unit marks the jail stopped.
func (d *Driver) Deactivate(ctx context.Context, u verify.Unit) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "deactivate "+u.String())
	if u.Kind == verify.UnitJail {
		d.running[u.Jail] = false
	}
	return nil
}

func (d *Driver) JailRunning(ctx context.Context, name string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running[name] && !d.down[name], nil
}

func (d *Driver) PFEnabled(ctx context.Context) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.pfOff, nil
}

func (d *Driver) Close() error { return nil }

// Activations returns the units activated since the last Reset, in order.
func (d *Driver) Activations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		if len(c) > 9 && c[:9] == "activate " {
			out = append(out, c[9:])
		}
	}
	return out
}

// Calls returns every call since the last Reset ("precheck", "activate U",
// "deactivate U").
func (d *Driver) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// Reset forgets the recorded calls.
func (d *Driver) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

// SetRunning marks a jail running or not, as if started outside the engine.
func (d *Driver) SetRunning(jail string, running bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[jail] = running
}

// SetJailDown makes JailRunning report the jail down whatever happened.
func (d *Driver) SetJailDown(jail string, down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down[jail] = down
}

// SetPF sets what PFEnabled reports.
func (d *Driver) SetPF(enabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pfOff = !enabled
}

// FailUnit returns an OnActivate that fails unit (string form) with err
// and passes every other unit.
func FailUnit(unit string, err error) func(verify.Unit) error {
	return func(u verify.Unit) error {
		if u.String() == unit {
			return fmt.Errorf("%s: %w", unit, err)
		}
		return nil
	}
}
