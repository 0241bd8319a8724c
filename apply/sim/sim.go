// Package sim is a FreeBSD host on Linux, for tests and the demo. It
// behaves like the freebsd driver as far as rigger can observe: staged
// files are checked by our own parsers (policy/pf, policy/jailconf,
// policy/rcconf) instead of pfctl and jail(8); pf is a state record; a jail
// is a state record plus the processes its rc.conf would start: its spiped
// pipes as real spiped processes and small stand-ins for PostgreSQL and
// nginx, bound to the jail's (loopback) addresses. A jail fails to start
// where FreeBSD would fail it: no jail.conf entry, a broken one, its path
// missing, a vnet interface the host's rc.conf never creates (or another
// jail holds), its rc.conf broken.
//
// Everything lives under the sandbox root, in Root/var/run/rigger-sim/:
// state.json (pf, jails, their processes), activations.log (one JSON line
// per Activate, see Activations) and log/ (each process's output). The
// processes run in their own sessions and outlive the agent, like jails;
// Close leaves them, Shutdown stops them.
//
// Binaries that use the driver must call ServiceMain first thing (main,
// TestMain): the stand-ins re-execute the running binary.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/rigger-bsd/rigger/apply"
)

func init() {
	apply.RegisterDriver("sim", func(o apply.DriverOptions) (apply.Driver, error) { return New(o) })
}

// StateDir is where the sim keeps its state, relative to the root.
const StateDir = "var/run/rigger-sim"

// Driver is the sim host driver for one sandbox root.
type Driver struct {
	root string
	log  *slog.Logger
}

var _ apply.Driver = (*Driver)(nil)

// New returns a sim driver for the sandbox at opts.Root.
func New(opts apply.DriverOptions) (*Driver, error) {
	if opts.Root == "" || opts.Root == "/" {
		return nil, errors.New("sim driver: root must be a sandbox directory, not /")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("sim driver: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(filepath.Join(root, StateDir, "log"), 0o755); err != nil {
		return nil, fmt.Errorf("sim driver: %w", err)
	}
	return &Driver{root: root, log: log}, nil
}

func (d *Driver) Name() string { return "sim" }

// Close does not stop jails: as on FreeBSD they outlive the agent. Use
// Shutdown to stop them.
func (d *Driver) Close() error { return nil }

// host maps an absolute host path into the sandbox.
func (d *Driver) host(p string) string { return hostPath(d.root, p) }

func hostPath(root, p string) string {
	return filepath.Join(root, filepath.FromSlash(filepath.Clean("/"+p)))
}

// State is everything the sim host remembers, in state.json.
type State struct {
	PF      PFState               `json:"pf"`
	NextJID int                   `json:"next_jid"`
	Jails   map[string]*JailState `json:"jails"`
	// Host holds the processes of host services (service:spiped, ...).
	Host *JailState `json:"host,omitempty"`
}

// PFState is the loaded firewall.
type PFState struct {
	Enabled bool              `json:"enabled"`
	Ruleset string            `json:"ruleset_sha256,omitempty"` // pf.conf and its includes
	Tables  map[string]string `json:"tables,omitempty"`         // table -> sha256 of its loaded file(s)
	Loaded  time.Time         `json:"loaded"`
}

// JailState is a running jail.
type JailState struct {
	Name    string    `json:"name"`
	JID     int       `json:"jid"`
	Path    string    `json:"path"`
	Ifaces  []string  `json:"ifaces,omitempty"`
	Addrs   []string  `json:"addrs,omitempty"`
	Started time.Time `json:"started"`
	Procs   []Proc    `json:"procs,omitempty"`
}

// Proc is one process the sim started for a jail's service.
type Proc struct {
	Service string   `json:"service"` // spiped, postgresql, nginx
	Name    string   `json:"name"`    // pipe name, or the service name
	PID     int      `json:"pid"`
	Argv    []string `json:"argv"`
	Listen  []string `json:"listen"` // host:port it binds
}

func stateFile(root string) string { return filepath.Join(root, StateDir, "state.json") }

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

// ReadState returns the sim's state under root (empty if none yet).
func ReadState(root string) (*State, error) {
	s := &State{Jails: map[string]*JailState{}, NextJID: 1}
	b, err := os.ReadFile(stateFile(root))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(root), err)
	}
	if s.Jails == nil {
		s.Jails = map[string]*JailState{}
	}
	return s, nil
}

func writeState(root string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := stateFile(root) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, stateFile(root))
}

// update runs fn on the state under the lock and saves it, also when fn
// fails (processes may have started or stopped before the failure).
func (d *Driver) update(fn func(*State) error) error {
	unlock, err := lockState(d.root)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := ReadState(d.root)
	if err != nil {
		return err
	}
	ferr := fn(s)
	if err := writeState(d.root, s); err != nil {
		return errors.Join(ferr, fmt.Errorf("sim state: %w", err))
	}
	return ferr
}

func (d *Driver) read() (*State, error) {
	unlock, err := lockState(d.root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return ReadState(d.root)
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

func (d *Driver) record(unit string, err error) {
	a := Activation{Time: time.Now().UTC(), Unit: unit}
	if err != nil {
		a.Err = err.Error()
	}
	b, _ := json.Marshal(a)
	f, ferr := os.OpenFile(filepath.Join(d.root, StateDir, "activations.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if ferr != nil {
		d.log.Warn("sim: activations.log", "err", ferr)
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// JailRunning: the jail is in the state and every process it started is
// alive (a dead spiped means a broken jail in the sim).
func (d *Driver) JailRunning(ctx context.Context, name string) (bool, error) {
	s, err := d.read()
	if err != nil {
		return false, err
	}
	j := s.Jails[name]
	if j == nil {
		return false, nil
	}
	for _, p := range j.Procs {
		if !alive(p) {
			d.log.Info("sim: jail process gone", "jail", name, "service", p.Service, "name", p.Name, "pid", p.PID)
			return false, nil
		}
	}
	return true, nil
}

// PFEnabled: pf was loaded by an Activate of the pf unit.
func (d *Driver) PFEnabled(ctx context.Context) (bool, error) {
	s, err := d.read()
	if err != nil {
		return false, err
	}
	return s.PF.Enabled && s.PF.Ruleset != "", nil
}
