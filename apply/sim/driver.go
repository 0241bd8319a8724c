// Package sim is `driver: sim`: the freebsd driver itself (apply/freebsd)
// running against an emulated FreeBSD userland (Host), so tests, the demo
// and cmd/rigger-sim exercise the one driver logic there is.
//
// Host implements freebsd.Runner in-process (see Host for why): service
// with rc.subr's semantics, jail, jls, jexec, pfctl (rulesets checked by
// policy/pf), ifconfig, route, sysctl, kldload, wg and wg-quick, and sh -n
// through the real sh. It keeps a kernel state (Kernel) apart from the
// files and is never kinder than FreeBSD: a jail whose vnet interfaces
// nobody created fails with jail(8)'s message until something creates them
// (a Boot, or ifconfig). Tunnels stay real: spiped pipes run as real spiped
// processes on the loopback addresses that stand for the jails' addresses,
// and PostgreSQL and nginx are small stand-ins (ServiceMain) that answer
// the health probes. WireGuard links follow the model in emu_wg.go.
//
// Everything lives under the sandbox root, in Root/var/run/rigger-sim/:
// kernel.json, activations.log (one JSON line per Activate, see
// Activations) and log/ (each process's output). Processes run in their
// own sessions and outlive the agent, like jails; Shutdown stops them.
//
// Not in the production agent: this package registers the "sim" driver
// when imported, and only tests and cmd/rigger-sim import it (`rigger-sim
// agent ...` is the agent with the sim driver). Binaries that use it must
// call ServiceMain first thing (main, TestMain): the stand-ins
// re-execute the running binary.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/apply/freebsd"
	"github.com/rigger-bsd/rigger/verify"
)

func init() {
	apply.RegisterDriver("sim", func(o apply.DriverOptions) (apply.Driver, error) { return New(o) })
}

// StateDir is where the sim keeps its state, relative to the root.
const StateDir = "var/run/rigger-sim"

// Driver is the freebsd driver on an emulated host. It adds what only a
// sandbox has: the record of activations, and the boot time and command
// runner the engine asks for.
type Driver struct {
	*freebsd.Driver
	host *Host
}

var _ apply.Driver = (*Driver)(nil)

// New returns the sim driver for the sandbox at opts.Root.
func New(opts apply.DriverOptions) (*Driver, error) {
	h, err := NewHost(opts.Root, opts.Logger)
	if err != nil {
		return nil, err
	}
	opts.Root = h.root
	return &Driver{Driver: freebsd.New(opts, h), host: h}, nil
}

func (d *Driver) Name() string { return "sim" }

// Host is the emulated host the driver runs against.
func (d *Driver) Host() *Host { return d.host }

// Activate is the freebsd driver's, recorded in activations.log.
func (d *Driver) Activate(ctx context.Context, u verify.Unit) error {
	err := d.Driver.Activate(ctx, u)
	d.host.record(u.String(), err)
	return err
}

// Deactivate is the freebsd driver's, recorded.
func (d *Driver) Deactivate(ctx context.Context, u verify.Unit) error {
	err := d.Driver.Deactivate(ctx, u)
	if u.Kind == verify.UnitJail {
		d.host.record("stop "+u.String(), err)
	}
	return err
}

// RunCheck runs an exec health check's command on the emulated host, so
// `wg show wg0 latest-handshakes` asks the emulated kernel.
func (d *Driver) RunCheck(ctx context.Context, argv []string) (stdout []byte, err error) {
	r, err := d.host.Run(ctx, argv...)
	if err != nil {
		return nil, err
	}
	if r.ExitCode != 0 {
		return r.Stdout, fmt.Errorf("%s: exit %d: %s", argv[0], r.ExitCode, r.Stderr)
	}
	return r.Stdout, nil
}

// lockState takes the sandbox's state lock (between goroutines and
// between processes: the agent, and a test calling Shutdown).
func lockState(root string) (func(), error) {
	if err := os.MkdirAll(filepath.Join(root, StateDir), 0o755); err != nil {
		return nil, err
	}
	l := flock.New(filepath.Join(root, StateDir, "lock"))
	if err := l.Lock(); err != nil {
		return nil, fmt.Errorf("sim state lock: %w", err)
	}
	return func() { l.Unlock() }, nil
}

// Activation is one Activate call, as recorded in activations.log.
type Activation struct {
	Time time.Time `json:"time"`
	Unit string    `json:"unit"`
	Err  string    `json:"err,omitempty"`
}

// Activations returns every unit activated under root, oldest first:
// tests assert with it that a change restarted exactly what it should.
func Activations(root string) ([]Activation, error) {
	b, err := os.ReadFile(filepath.Join(root, StateDir, "activations.log"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Activation
	dec := json.NewDecoder(bytesReader(b))
	for dec.More() {
		var a Activation
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("activations.log: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (h *Host) record(unit string, err error) {
	a := Activation{Time: time.Now().UTC(), Unit: unit}
	if err != nil {
		a.Err = err.Error()
	}
	b, _ := json.Marshal(a)
	f, ferr := os.OpenFile(filepath.Join(h.root, StateDir, "activations.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if ferr != nil {
		h.log.Warn("sim: activations.log", "err", ferr)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

func nowUTC() time.Time { return time.Now().UTC() }

// Boot boots the sandbox host at root (see Host.Boot).
func Boot(root string) (string, error) {
	h, err := NewHost(root, nil)
	if err != nil {
		return "", err
	}
	return h.Boot()
}

// Shutdown stops every process the sim started under root (all jails and
// host services) and clears the kernel, as if the host powered off.
// Tests and the demo call it when they are done; Close does not.
func Shutdown(root string) error {
	h, err := NewHost(root, nil)
	if err != nil {
		return err
	}
	if err := h.PowerOff(); err != nil {
		return fmt.Errorf("sim shutdown: %w", err)
	}
	return nil
}

// TB is the part of testing.TB that ShutdownOnCleanup uses (so this
// package does not import testing).
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
}

// ShutdownOnCleanup stops the sim's processes under root when the test
// ends, and fails the test if some would not stop.
func ShutdownOnCleanup(t TB, root string) {
	t.Helper()
	t.Cleanup(func() {
		if err := Shutdown(root); err != nil {
			t.Errorf("sim shutdown %s: %v", root, err)
		}
	})
}

// Reach says whether the emulated host's routes let a connection to addr
// leave (route -n get in FIB 0, the agent's FIB): the agent's git source
// is a real server on loopback, so without this no emulated route could
// cut the agent off. A -reject route fails at once with EHOSTUNREACH and
// a -blackhole route drops packets silently, so the attempt hangs until
// its deadline (sys/netinet/ip_output.c, ip_output: RTF_REJECT returns
// EHOSTUNREACH, RTF_BLACKHOLE frees the packet and reports success).
func (d *Driver) Reach(ctx context.Context, addr netip.Addr) error {
	r, err := d.host.Run(ctx, "route", "-n", "get", addr.String())
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		return fmt.Errorf("connect %s: network is unreachable (route -n get: %s)", addr, strings.TrimSpace(string(r.Stderr)))
	}
	flags := freebsd.ParseRouteGet(r.Stdout)["flags"]
	switch {
	case strings.Contains(flags, "REJECT"):
		return fmt.Errorf("connect %s: no route to host (reject route: %s)", addr, flags)
	case strings.Contains(flags, "BLACKHOLE"):
		<-ctx.Done()
		return fmt.Errorf("connect %s: i/o timeout (blackhole route: %s)", addr, flags)
	}
	return nil
}
