package verify

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// PayloadType is the DSSE payload type of a rigger manifest. DSSE binds it
// into the signed PAE, so a signature made for anything else never verifies
// as a manifest signature.
const PayloadType = "application/vnd.rigger.manifest+json"

// Schema is the manifest schema version this package reads and writes.
const Schema = 1

// Manifest is the signed description of one host's bundle. Every file that
// the agent installs is listed here with its digest, so the archive carries
// no authority of its own.
type Manifest struct {
	Schema    int       `json:"schema"`
	Host      string    `json:"host"`
	Serial    uint64    `json:"serial"`
	Source    Source    `json:"source"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	NotBefore time.Time `json:"not_before"`
	Archive   Archive   `json:"archive"`
	Files     []File    `json:"files"`
	Health    []Check   `json:"health,omitempty"`
	// Secrets are host files the bundle relies on but never carries
	// (spiped keys, WireGuard private keys). The agent's pre-check reports
	// a missing one by name.
	Secrets []string `json:"secrets,omitempty"`
	// NetifRestart lists the interfaces the topology allows the agent to
	// restart one by one (service netif restart IF). Any other netif change
	// is reported as reboot-required instead of touched.
	NetifRestart []string `json:"netif_restart,omitempty"`
	// ReportKey is this host's own status report key (PKIX PEM) as pinned
	// in the topology, so fleet views can check the host's reports.
	ReportKey string `json:"report_key,omitempty"`
	// Gate holds the bundle back until hosts of earlier waves report it
	// healthy (see Gate).
	Gate *Gate `json:"gate,omitempty"`
	// HostDesc describes the host's interfaces, routes, services and
	// tunables as the bundle's /etc/rc.conf sets them at boot; the agent
	// diffs it against the current generation's into live steps. Absent
	// in bundles built before it existed.
	HostDesc *hostdesc.Host `json:"host_desc,omitempty"`
}

// Gate makes a host apply its bundle only after every gating host has
// reported, signed with the key pinned here, that it runs Serial or a later
// serial healthily for at least Bake; a gating host that rolled back or
// rejected Serial closes the gate for this bundle for good.
type Gate struct {
	Hosts []GateHost `json:"hosts"`
	Bake  Duration   `json:"bake,omitempty"`
}

// GateHost is one gating host: its name, its report key (PKIX PEM) and the
// serial of its bundle built from the same commit.
type GateHost struct {
	Host   string `json:"host"`
	Key    string `json:"key"`
	Serial uint64 `json:"serial"`
}

// Source names the infra repo commit a bundle was built from.
type Source struct {
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty,omitempty"`
}

// Archive pins the exact bytes of files.tar.zst.
type Archive struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// File is one managed file: where it goes, who owns it, what it hashes to
// and which unit must be activated when it changes.
type File struct {
	Path   string `json:"path"` // absolute target path, e.g. /jails/pg_j/etc/rc.conf
	Mode   Mode   `json:"mode"`
	Owner  string `json:"owner"`
	Group  string `json:"group"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Unit   string `json:"unit"` // see ParseUnit
}

// Mode is a permission mode that marshals as an octal string ("0644"),
// the way an operator reads it.
type Mode fs.FileMode

func (m Mode) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "%04o", uint32(m)), nil
}

func (m *Mode) UnmarshalText(b []byte) error {
	// Digits only, all of them (fmt's %o stopped at the first non-octal
	// byte and took "0644x" for 0644); five at most, so no overflow.
	var v uint32
	if len(b) == 0 || len(b) > 5 {
		return fmt.Errorf("mode %q: want octal like 0644", b)
	}
	for _, c := range b {
		if c < '0' || c > '7' {
			return fmt.Errorf("mode %q: want octal like 0644", b)
		}
		v = v<<3 | uint32(c-'0')
	}
	if v&^0o7777 != 0 {
		return fmt.Errorf("mode %q: only permission and setid bits allowed", b)
	}
	*m = Mode(v)
	return nil
}

// Check is one health check that must pass after a bundle is applied.
// Which fields matter depends on Kind.
type Check struct {
	Kind CheckKind `json:"kind"`
	Name string    `json:"name"`           // unique within the manifest, shown in status
	Jail string    `json:"jail,omitempty"` // jail: the jail that must run; tunnel: the jail owning the local pipe end
	// Addr is host:port to connect to (tcp, tunnel: the local pipe source).
	Addr string `json:"addr,omitempty"`
	// Probe names the exchange for a tunnel check: "pg-ssl" sends a
	// PostgreSQL SSLRequest and expects 'S' or 'N'; "send-expect" writes
	// Send and reads until Expect appears; "banner" only reads until Expect.
	Probe  string `json:"probe,omitempty"`
	Send   string `json:"send,omitempty"`
	Expect string `json:"expect,omitempty"`
	URL    string `json:"url,omitempty"`    // http
	Status int    `json:"status,omitempty"` // http: expected status, 0 = any 2xx
	// Iface is the WireGuard interface (wireguard).
	Iface string `json:"iface,omitempty"`
	// Command is run without a shell (exec); exit 0 passes.
	Command []string `json:"command,omitempty"`
	Timeout Duration `json:"timeout,omitempty"` // per attempt; 0 = engine default
}

// CheckKind enumerates the health checks the agent knows.
type CheckKind string

const (
	CheckJail   CheckKind = "jail"   // jail Jail is running
	CheckTunnel CheckKind = "tunnel" // end-to-end exchange through a pipe
	CheckPF     CheckKind = "pf"     // pf enabled and a ruleset loaded
	CheckGit    CheckKind = "git"    // the agent's git source still reachable
	CheckTCP    CheckKind = "tcp"
	CheckHTTP   CheckKind = "http"
	CheckExec   CheckKind = "exec"
	// CheckWireGuard: every peer of interface Iface had a handshake
	// within WireGuard's session lifetime (wg show IF latest-handshakes).
	CheckWireGuard CheckKind = "wireguard"
)

// Duration is a time.Duration that marshals as "90s".
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnitKind is the kind of thing a changed file activates.
type UnitKind string

// The unit kinds. The string form of a unit is "kind" or "kind:arg" or, for
// a service in a jail, "jail-service:JAIL:SERVICE".
const (
	UnitNone           UnitKind = "none"            // nothing to do
	UnitPF             UnitKind = "pf"              // pfctl -nf, pfctl -f
	UnitPFTable        UnitKind = "pf-table"        // pf-table:NAME, pfctl -t NAME -T replace -f FILE
	UnitJail           UnitKind = "jail"            // jail:NAME, service jail restart NAME
	UnitJailService    UnitKind = "jail-service"    // jail-service:JAIL:SVC, service -j JAIL SVC restart
	UnitService        UnitKind = "service"         // service:NAME on the host
	UnitNetif          UnitKind = "netif"           // netif:IF, service netif restart IF (when allowed)
	UnitWireGuard      UnitKind = "wireguard"       // wireguard:IF
	UnitSysctl         UnitKind = "sysctl"          // service sysctl restart
	UnitCron           UnitKind = "cron"            // cron rereads /etc/cron.d by itself
	UnitRebootRequired UnitKind = "reboot-required" // loader files: reported, never done
)

// Unit is a parsed activation unit.
type Unit struct {
	Kind UnitKind
	Jail string // jail, jail-service
	Name string // pf-table, jail-service, service, netif, wireguard
}

func (u Unit) String() string {
	switch u.Kind {
	case UnitJail:
		return string(u.Kind) + ":" + u.Jail
	case UnitJailService:
		return string(u.Kind) + ":" + u.Jail + ":" + u.Name
	case UnitPFTable, UnitService, UnitNetif, UnitWireGuard:
		return string(u.Kind) + ":" + u.Name
	}
	return string(u.Kind)
}

// CheckUnitName reports whether name may name a jail, service, table or
// interface in a unit or a health check.
func CheckUnitName(name string) error {
	// unitName is the closed grammar of a unit's names (jail, service,
	// table, interface): drivers pass them to commands as arguments, so
	// no shell metacharacter, no path, and no leading "-" (an option) or
	// "." ("." and ".." name directories).
	if !unitName.match(name) {
		return fmt.Errorf("name %q: want 1-64 of [A-Za-z0-9_.-], not starting with - or .", name)
	}
	return nil
}

// Check validates a unit against the closed grammar: a known kind with
// exactly its names, each matching CheckUnitName. The apply engine calls
// it again before handing a unit to a driver.
func (u Unit) Check() error {
	var names []string
	switch u.Kind {
	case UnitNone, UnitPF, UnitSysctl, UnitCron, UnitRebootRequired:
		if u.Jail != "" || u.Name != "" {
			return fmt.Errorf("unit %s: kind %s takes no names", u, u.Kind)
		}
	case UnitJail:
		if u.Name != "" {
			return fmt.Errorf("unit %s: kind jail takes only a jail name", u)
		}
		names = []string{u.Jail}
	case UnitJailService:
		names = []string{u.Jail, u.Name}
	case UnitPFTable, UnitService, UnitNetif, UnitWireGuard:
		if u.Jail != "" {
			return fmt.Errorf("unit %s: kind %s takes no jail", u, u.Kind)
		}
		names = []string{u.Name}
	default:
		return fmt.Errorf("unit %q: unknown kind %q", u.String(), u.Kind)
	}
	for _, n := range names {
		if err := CheckUnitName(n); err != nil {
			return fmt.Errorf("unit %q: %w", u.String(), err)
		}
	}
	return nil
}

// ParseUnit parses the string form of a unit and rejects unknown kinds,
// missing or extra arguments, and names outside the grammar (Unit.Check).
func ParseUnit(s string) (Unit, error) {
	// The kind and up to two arguments, counting all of them (no slice:
	// this runs for every file of every verification).
	kind, rest, more := strings.Cut(s, ":")
	k := UnitKind(kind)
	var args [2]string
	n := 0
	for more {
		var a string
		a, rest, more = strings.Cut(rest, ":")
		if n < len(args) {
			args[n] = a
		}
		n++
	}
	want := 0
	switch k {
	case UnitNone, UnitPF, UnitSysctl, UnitCron, UnitRebootRequired:
	case UnitPFTable, UnitJail, UnitService, UnitNetif, UnitWireGuard:
		want = 1
	case UnitJailService:
		want = 2
	default:
		return Unit{}, fmt.Errorf("unit %q: unknown kind %q", s, k)
	}
	if n != want {
		return Unit{}, fmt.Errorf("unit %q: kind %s takes %d argument(s)", s, k, want)
	}
	u := Unit{Kind: k}
	switch k {
	case UnitJail:
		u.Jail = args[0]
	case UnitJailService:
		u.Jail, u.Name = args[0], args[1]
	case UnitPFTable, UnitService, UnitNetif, UnitWireGuard:
		u.Name = args[0]
	}
	if err := u.Check(); err != nil {
		return Unit{}, err
	}
	return u, nil
}
