package apply

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rigger-bsd/rigger/verify"
)

// CONTRACT (shared by the engine and the drivers in apply/freebsd and
// apply/sim): every command that touches the host goes through a Driver.
// The engine decides what and when; the driver knows how on its OS.

// Driver is the host boundary.
type Driver interface {
	// Name is "freebsd" or "sim".
	Name() string
	// Precheck validates a staged tree before anything is installed:
	// pfctl -nf on the staged pf.conf (staged table files), jail -f
	// staged.conf -e, sh -n on rc files, secrets present. stage is a
	// directory laid out like the host root (stage/etc/pf.conf, …); files
	// are the whole new manifest. A non-nil error names the file and line.
	// The stage is scratch: the driver may rewrite its files in place
	// (paths in pf.conf pointed at the staged table files), never add or
	// remove one; the engine writes every staged file anew at each stage.
	Precheck(ctx context.Context, stage string, files []verify.File) error
	// Activate brings one unit in line with the installed files
	// (pfctl -f, service jail restart NAME then jls -j NAME, …). The engine
	// calls it in order and stops at the first error.
	Activate(ctx context.Context, u verify.Unit) error
	// Deactivate undoes a unit that a rollback takes away whole (every
	// file of it was new), while its files are still in place: a new jail
	// is stopped (service jail stop NAME). Other kinds have nothing to
	// stop and return nil; pf keeps the loaded ruleset rather than fail
	// open when there is no older pf.conf to go back to.
	Deactivate(ctx context.Context, u verify.Unit) error
	// JailRunning reports whether the jail is running (jls -j NAME).
	JailRunning(ctx context.Context, name string) (bool, error)
	// PFEnabled reports whether pf is enabled with a ruleset loaded.
	PFEnabled(ctx context.Context) (bool, error)
	// Close releases what the driver holds; it does not stop the host's
	// services (the sim's processes outlive it, as jails outlive the agent).
	Close() error
}

// BootReporter is a driver that tells boots apart (kern.boottime): a
// plan that needs a reboot installs its files, then waits for the boot
// before its health check and commit (Engine.Resume).
type BootReporter interface {
	BootID(ctx context.Context) (string, error)
}

// CheckRunner is a driver that runs the commands of exec health checks
// on its host itself (the sim runs them in its emulated userland); other
// drivers' exec checks run as local processes.
type CheckRunner interface {
	RunCheck(ctx context.Context, argv []string) ([]byte, error)
}

// WireGuardChecker is a driver that can tell whether every peer of a
// WireGuard interface has a live session (the wireguard health check).
type WireGuardChecker interface {
	WireGuardUp(ctx context.Context, iface string) error
}

// DriverOptions are what a driver needs to know about the host.
type DriverOptions struct {
	Root   string // prefix of every host path ("/" on a real host)
	Logger *slog.Logger
}

// drivers maps names to constructors. The driver packages register
// themselves (apply/freebsd, apply/sim) so apply does not import them.
var drivers = map[string]func(DriverOptions) (Driver, error){}

// RegisterDriver makes a driver available to NewDriver. Driver packages
// call it from init.
func RegisterDriver(name string, ctor func(DriverOptions) (Driver, error)) {
	drivers[name] = ctor
}

// NewDriver returns the driver called name ("freebsd" or "sim").
func NewDriver(name string, opts DriverOptions) (Driver, error) {
	ctor, ok := drivers[name]
	if !ok {
		return nil, fmt.Errorf("driver %q: unknown (want freebsd or sim)", name)
	}
	return ctor(opts)
}
