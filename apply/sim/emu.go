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
	"sort"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/apply/freebsd"
	"github.com/rigger-bsd/rigger/policy/atomicfile"
)

// Host is an emulated FreeBSD userland for one sandbox root: it
// implements freebsd.Runner, so the freebsd driver runs against it
// unchanged. It is in-process rather than a multi-call binary on a
// sandbox PATH because the driver already sends every command through a
// Runner, the exec hooks and rc.conf values rigger renders are single
// commands and plain assignments (interpreted here, see runLine), and an
// in-process emulator needs no binary the production agent would carry.
//
// What a kernel holds (Kernel: interfaces, jails, pf, routes, sysctls,
// modules, services) is kept in Root/var/run/rigger-sim/kernel.json, apart
// from the files: writing /etc/rc.conf changes nothing until a command or
// a Boot acts on it. Each Run takes the sandbox lock, so several goroutines
// and processes (the agent, a test, rigger-sim) see one kernel.
type Host struct {
	root string
	log  *slog.Logger
}

var _ freebsd.Runner = (*Host)(nil)

// NewHost returns the emulated host at root (a sandbox directory).
func NewHost(root string, log *slog.Logger) (*Host, error) {
	if root == "" || root == "/" {
		return nil, errors.New("sim: root must be a sandbox directory, not /")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(filepath.Join(abs, StateDir, "log"), 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return &Host{root: abs, log: log}, nil
}

// Root is the sandbox directory.
func (h *Host) Root() string { return h.root }

// Kernel is what the emulated kernel holds.
type Kernel struct {
	// Booted is when the host last booted (kern.boottime); zero: never.
	Booted  time.Time         `json:"booted"`
	Ifaces  map[string]*Iface `json:"ifaces"`
	NextJID int               `json:"next_jid"`
	Jails   map[string]*Jail  `json:"jails"`
	PF      PF                `json:"pf"`
	// Routes per FIB.
	Routes  map[int][]Route   `json:"routes,omitempty"`
	Sysctls map[string]string `json:"sysctls,omitempty"`
	Modules []string          `json:"modules,omitempty"`
	// Host holds the host's own running services.
	Host *Jail `json:"host,omitempty"`
	// Units are the clone units in use (epair3, bridge0, …).
	Units   map[string]int `json:"units,omitempty"`
	NextPID int            `json:"next_pid,omitempty"`
}

// Iface is one network interface.
type Iface struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // nic, lo, epair, bridge, lagg, vlan, wg, pflog
	// Unit is the clone unit it was created as (epair3), kept across renames.
	Unit  string   `json:"unit,omitempty"`
	Vnet  string   `json:"vnet,omitempty"`
	Addrs []string `json:"addrs,omitempty"` // addr/prefixlen
	// Dst is the destination (broadcast) address given for an address.
	Dst map[string]string `json:"dst,omitempty"`
	MTU int               `json:"mtu"`
	FIB int               `json:"fib,omitempty"`
	Up  bool              `json:"up,omitempty"`
	// Peer is the other end of an epair.
	Peer      string   `json:"peer,omitempty"`
	Members   []string `json:"members,omitempty"` // bridge
	LaggProto string   `json:"laggproto,omitempty"`
	LaggPorts []string `json:"laggports,omitempty"`
	VlanTag   int      `json:"vlan,omitempty"`
	VlanDev   string   `json:"vlandev,omitempty"`
	WG        *WGState `json:"wg,omitempty"`
}

// Jail is a jail in the kernel (or the host's own services, Name "host").
type Jail struct {
	Name     string    `json:"name"`
	JID      int       `json:"jid"`
	Path     string    `json:"path"`
	Hostname string    `json:"hostname,omitempty"`
	Vnet     bool      `json:"vnet,omitempty"`
	IPv4     []string  `json:"ip4,omitempty"`
	Dying    bool      `json:"dying,omitempty"`
	Started  time.Time `json:"started"`
	// Services running in it (by rc.d name), with their processes.
	Services map[string]*Service `json:"services,omitempty"`
}

// Service is a running rc.d service and the processes standing for it
// (none for services the emulator only records, such as sshd).
type Service struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"` // a pid for rc.subr's status; the first process's if any
	Procs []Proc `json:"procs,omitempty"`
}

// Proc is one real process the emulator started for a service.
type Proc struct {
	Service string   `json:"service"` // spiped, postgresql, nginx
	Name    string   `json:"name"`    // pipe name, or the service name
	PID     int      `json:"pid"`
	Argv    []string `json:"argv"`
	Listen  []string `json:"listen"` // host:port it binds
}

// PF is the packet filter.
type PF struct {
	Enabled bool              `json:"enabled"`
	Since   time.Time         `json:"since"`
	Rules   []string          `json:"rules,omitempty"` // pfctl -s rules
	Conf    string            `json:"conf,omitempty"`  // the file last loaded
	Tables  map[string]*Table `json:"tables,omitempty"`
}

// Table is a pf table in the kernel.
type Table struct {
	Const   bool     `json:"const,omitempty"`
	Persist bool     `json:"persist,omitempty"`
	Addrs   []string `json:"addrs"`
}

// Route is one route of a FIB.
type Route struct {
	Dest    string `json:"dest"` // default, a/len or a host
	Gateway string `json:"gateway,omitempty"`
	Iface   string `json:"iface,omitempty"` // -interface
	Vnet    string `json:"vnet,omitempty"`  // the jail whose stack holds it ("" host)
	// Reject and Blackhole are route(8)'s -reject (RTF_REJECT: senders
	// get EHOSTUNREACH) and -blackhole (RTF_BLACKHOLE: packets are
	// dropped silently, a connection attempt hangs until it times out).
	Reject    bool `json:"reject,omitempty"`
	Blackhole bool `json:"blackhole,omitempty"`
}

func kernelFile(root string) string { return filepath.Join(root, StateDir, "kernel.json") }

func newKernel() *Kernel {
	return &Kernel{
		Ifaces:  map[string]*Iface{"lo0": {Name: "lo0", Kind: "lo", MTU: 16384, Up: true, Addrs: []string{"127.0.0.1/8"}}},
		Jails:   map[string]*Jail{},
		NextJID: 1,
		Sysctls: map[string]string{},
		Routes:  map[int][]Route{},
		Units:   map[string]int{},
	}
}

// ReadKernel returns the kernel state under root (a powered-off host if none).
func ReadKernel(root string) (*Kernel, error) {
	k := newKernel()
	b, err := os.ReadFile(kernelFile(root))
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, k); err != nil {
		return nil, fmt.Errorf("%s: %w", kernelFile(root), err)
	}
	if k.Ifaces == nil {
		k.Ifaces = map[string]*Iface{}
	}
	if k.Jails == nil {
		k.Jails = map[string]*Jail{}
	}
	if k.Sysctls == nil {
		k.Sysctls = map[string]string{}
	}
	if k.Routes == nil {
		k.Routes = map[int][]Route{}
	}
	if k.Units == nil {
		k.Units = map[string]int{}
	}
	return k, nil
}

func writeKernel(root string, k *Kernel) error {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	// Kernel state dies with the host: no fsync (as a boot forgets it).
	return atomicfile.WriteFile(kernelFile(root), append(b, '\n'), 0o644, atomicfile.Volatile)
}

// withKernel runs fn on the kernel under the sandbox lock and saves it,
// also when fn fails (processes may have started before the failure).
func (h *Host) withKernel(fn func(k *Kernel) error) error {
	unlock, err := lockState(h.root)
	if err != nil {
		return err
	}
	defer unlock()
	k, err := ReadKernel(h.root)
	if err != nil {
		return err
	}
	before, _ := json.Marshal(k)
	ferr := fn(k)
	if after, _ := json.Marshal(k); string(after) == string(before) {
		return ferr
	}
	if err := writeKernel(h.root, k); err != nil {
		return errors.Join(ferr, fmt.Errorf("sim kernel: %w", err))
	}
	return ferr
}

// cmd is one command being emulated: its output, and where it runs.
type cmd struct {
	h      *Host
	k      *Kernel
	ctx    context.Context
	jail   string // "" on the host, else the jail it runs in (jexec)
	stdout strings.Builder
	stderr strings.Builder
	// inRoot: paths named inside files are host paths to map into the
	// sandbox; false when the driver handed over a staged copy whose
	// paths it already rewrote to real ones.
	inRoot bool
}

func (c *cmd) out(format string, a ...any) { fmt.Fprintf(&c.stdout, format, a...) }
func (c *cmd) errf(format string, a ...any) {
	fmt.Fprintf(&c.stderr, format, a...)
}

// Run emulates one command. A non-zero exit is a Result, not an error.
func (h *Host) Run(ctx context.Context, argv ...string) (freebsd.Result, error) {
	if len(argv) == 0 {
		return freebsd.Result{}, errors.New("run: empty command")
	}
	var res freebsd.Result
	if syntaxCheck(argv) {
		// A syntax check touches no kernel state: no lock, no kernel.json
		// read and compared. On FreeBSD pfctl -n does without /dev/pf
		// (FREEBSD.md errata 8) and jail -e only parses and prints
		// (usr.sbin/jail/jail.c main: show_jails, then exit).
		c := &cmd{h: h, k: newKernel(), ctx: ctx, inRoot: true}
		code := c.run(argv)
		return freebsd.Result{Stdout: []byte(c.stdout.String()), Stderr: []byte(c.stderr.String()), ExitCode: code}, nil
	}
	err := h.withKernel(func(k *Kernel) error {
		c := &cmd{h: h, k: k, ctx: ctx, inRoot: true}
		code := c.run(argv)
		res = freebsd.Result{Stdout: []byte(c.stdout.String()), Stderr: []byte(c.stderr.String()), ExitCode: code}
		return nil
	})
	h.log.Debug("sim run", "argv", argv, "exit", res.ExitCode)
	return res, err
}

// syntaxCheck reports whether argv is one of the driver's pre-checks,
// which read files only: sh -n FILE, pfctl -n -f FILE [-D macro=value]...
// and jail -f FILE -e SEP. Any other form goes through the kernel lock.
func syntaxCheck(argv []string) bool {
	switch filepath.Base(argv[0]) {
	case "sh":
		return len(argv) == 3 && argv[1] == "-n"
	case "pfctl":
		if len(argv) < 4 || argv[1] != "-n" || argv[2] != "-f" {
			return false
		}
		for i := 4; i < len(argv); i += 2 {
			if argv[i] != "-D" || i+1 >= len(argv) {
				return false
			}
		}
		return true
	case "jail":
		return len(argv) == 5 && argv[1] == "-f" && argv[3] == "-e"
	}
	return false
}

// run dispatches argv to the emulated command and returns its exit code.
func (c *cmd) run(argv []string) int {
	name := filepath.Base(argv[0])
	args := argv[1:]
	switch name {
	case "sh":
		return c.sh(args)
	case "service":
		return c.service(args)
	case "jail":
		return c.jailCmd(args)
	case "jls":
		return c.jls(args)
	case "jexec":
		return c.jexec(args)
	case "pfctl":
		return c.pfctl(args)
	case "ifconfig":
		return c.ifconfig(args)
	case "route":
		return c.route(args)
	case "sysctl":
		return c.sysctl(args)
	case "kldload":
		return c.kldload(args)
	case "kldstat":
		return c.kldstat(args)
	case "wg":
		return c.wg(args)
	case "wg-quick":
		return c.wgQuick(args)
	case "true", ":":
		return 0
	case "false":
		return 1
	}
	c.errf("%s: not found\n", argv[0])
	return 127
}

// path maps a path to the real file: argv paths come mapped already
// (the driver joins them under the root or points at its staged copy).
func (c *cmd) argPath(p string) string { return p }

// filePath maps a path written inside a file (an include, a table file,
// a key): a host path, mapped under the root, unless the command works on
// a staged copy whose paths the driver already made real.
func (c *cmd) filePath(p string) string {
	if !c.inRoot || strings.HasPrefix(p, c.h.root+string(filepath.Separator)) {
		return p
	}
	return hostPath(c.h.root, p)
}

// jailRoot is the real directory of a path inside the jail cmd runs in.
func (c *cmd) jailPath(p string) string {
	if c.jail == "" {
		return hostPath(c.h.root, p)
	}
	if j := c.k.Jails[c.jail]; j != nil {
		return hostPath(hostPath(c.h.root, j.Path), p)
	}
	return hostPath(c.h.root, p)
}

// ifacesOf lists the interfaces visible where cmd runs, sorted.
func (c *cmd) ifacesHere() []*Iface {
	var out []*Iface
	for _, i := range c.k.Ifaces {
		if i.Vnet == c.jail {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// iface returns the interface called name where cmd runs.
func (c *cmd) iface(name string) *Iface { return c.k.Ifaces[ifKey(c.jail, name)] }

// ifKey is an interface's key in Kernel.Ifaces: each vnet has its own
// namespace (every vnet jail has its lo0).
func ifKey(vnet, name string) string {
	if vnet == "" {
		return name
	}
	return vnet + "|" + name
}

func (k *Kernel) putIface(i *Iface) { k.Ifaces[ifKey(i.Vnet, i.Name)] = i }
func (k *Kernel) delIface(i *Iface) { delete(k.Ifaces, ifKey(i.Vnet, i.Name)) }

func (k *Kernel) hasModule(m string) bool {
	for _, x := range k.Modules {
		if x == m {
			return true
		}
	}
	return false
}
