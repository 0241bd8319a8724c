package topology

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The types in this file mirror topology.yaml one to one. They are decoded
// strictly (unknown keys are errors) and then resolved into a Host per host.

// File is the decoded topology.yaml.
type File struct {
	// Domain is the default DNS domain of jail hostnames (NAME.DOMAIN).
	Domain string `yaml:"domain"`
	// Release is the fleet's default FreeBSD release (14, 15), which
	// the offline checkers emulate; a role or host may override it.
	Release string `yaml:"release"`
	// Policy is no longer accepted: a bundle never widens what a host
	// accepts; see Spec.AgentRoots.
	Policy *PolicySpec `yaml:"policy"`
	// Vars are shared template values; role and host vars override them.
	Vars  map[string]string `yaml:"vars"`
	Roles map[string]*Spec  `yaml:"roles"`
	Hosts map[string]*Spec  `yaml:"hosts"`
}

// PolicySpec configures what targets a repo may write.
type PolicySpec struct {
	Roots []string `yaml:"roots"`
}

// Spec is what a role and a host may both define. A host with a role gets
// the role's spec with its own merged over it: lists are concatenated
// (names must stay unique), maps merged key by key (host wins), NICs merged
// field by field, scalars replaced when the host sets them.
type Spec struct {
	// Host-only keys (an error inside a role).
	Role         string   `yaml:"role"`
	Wave         string   `yaml:"wave"` // rollout delay, e.g. 15m
	Peer         string   `yaml:"peer"` // the host "peer/IF" refers to
	NetifRestart []string `yaml:"netif_restart"`
	// Gate names hosts of earlier waves that must report this host's
	// commit healthy, for at least Bake, before this host applies it.
	Gate Strings `yaml:"gate"`
	Bake string  `yaml:"bake"` // e.g. 10m; needs gate
	// StatusKey is the repo path of the host's status report public key
	// (made on the host by `agent keygen`); required for a gating host.
	StatusKey string `yaml:"status_key"`
	// Management is what the agent may do to the interface, address or
	// route carrying its connection to the git source: "confirm" (the
	// default: apply, then the source must answer in time, or undo) or
	// "forbid" (refuse such a change).
	Management string `yaml:"management"`

	Release       string   `yaml:"release"` // FreeBSD release: 14 | 15
	Hostname      string   `yaml:"hostname"`
	Domain        string   `yaml:"domain"`
	Gateway       string   `yaml:"gateway"` // defaultrouter: address or interface ref
	GatewayEnable *bool    `yaml:"gateway_enable"`
	Services      []string `yaml:"services"` // NAME_enable="YES" in /etc/rc.conf
	// Serves names the services (DNS names) the host answers behind with
	// others: hosts sharing one must never be in the same rollout wave.
	Serves []string          `yaml:"serves"`
	RC     map[string]string `yaml:"rc"` // further /etc/rc.conf variables
	Sysctl map[string]string `yaml:"sysctl"`
	Loader map[string]string `yaml:"loader"`
	Routes map[string]string `yaml:"routes"` // static_routes: name → "-net 10.0.0.0/8 10.0.0.1"
	// AgentRoots are target roots the host's agent is configured to accept
	// beyond policy.DefaultRoots (e.g. /boot/loader.conf.d): the topology
	// states the agent's configuration, it cannot widen it.
	AgentRoots []string          `yaml:"agent_roots"`
	Vars       map[string]string `yaml:"vars"`
	// Addrs is the one place for interface addresses: interface → one
	// address or a list ("10.0.2.1/24", "DHCP").
	Addrs map[string]Strings `yaml:"addrs"`

	NICs      map[string]*NIC `yaml:"nics"`
	Laggs     []*Lagg         `yaml:"laggs"`
	Vlans     []*Vlan         `yaml:"vlans"`
	Bridges   []*Bridge       `yaml:"bridges"`
	Epairs    []*Pair         `yaml:"epairs"`
	JailsDef  *JailParams     `yaml:"jail_defaults"`
	Jails     []*Jail         `yaml:"jails"`
	WireGuard []*WG           `yaml:"wireguard"`
	PF        *PF             `yaml:"pf"`
	Files     []*FileSpec     `yaml:"files"`
	Checks    []*CheckSpec    `yaml:"checks"`
}

// NIC is a physical interface renamed from its driver name.
type NIC struct {
	Driver string `yaml:"driver"` // igb0; empty keeps the name as is
	// VlanHWTag is ifconfig's capability flag: true renders vlanhwtag,
	// false -vlanhwtag. It takes no value (sbin/ifconfig/ifvlan.c, DEF_CMD):
	// a number after it would be read as an address.
	VlanHWTag *bool    `yaml:"vlanhwtag"`
	MTU       int      `yaml:"mtu"`
	Options   []string `yaml:"options"` // further ifconfig words
}

// vlanHWTagWord is the ifconfig word of VlanHWTag.
func (n *NIC) vlanHWTagWord() string {
	if *n.VlanHWTag {
		return "vlanhwtag"
	}
	return "-vlanhwtag"
}

// Lagg is a link aggregation (failover, lacp, loadbalance, roundrobin).
type Lagg struct {
	Name  string   `yaml:"name"`
	Proto string   `yaml:"proto"`
	Ports []string `yaml:"ports"`
}

// Vlan is an 802.1q interface on a parent.
type Vlan struct {
	Name   string `yaml:"name"`
	Tag    int    `yaml:"tag"`
	Parent string `yaml:"parent"`
}

// Bridge is an if_bridge; list order gives bridge0, bridge1, ...
type Bridge struct {
	Name    string   `yaml:"name"`
	Members []string `yaml:"members"`
}

// Pair is one epair: [a-end name, b-end name]; list order gives epair0, ...
type Pair []string

// JailParams are jail.conf parameters, shared (jail_defaults) or per jail.
type JailParams struct {
	Path          string            `yaml:"path"` // default /jails/NAME
	DevfsRuleset  *int              `yaml:"devfs_ruleset"`
	MountDevfs    *bool             `yaml:"mount_devfs"`
	ExecClean     *bool             `yaml:"exec_clean"`
	ExecStart     string            `yaml:"exec_start"`
	ExecStop      string            `yaml:"exec_stop"`
	ExecPrestart  []string          `yaml:"exec_prestart"`
	ExecCreated   []string          `yaml:"exec_created"`
	ExecPoststart []string          `yaml:"exec_poststart"`
	ExecPrestop   []string          `yaml:"exec_prestop"`
	ExecPoststop  []string          `yaml:"exec_poststop"`
	Sysvshm       string            `yaml:"sysvshm"`
	Sysvsem       string            `yaml:"sysvsem"`
	Sysvmsg       string            `yaml:"sysvmsg"`
	Params        map[string]string `yaml:"params"` // any other jail.conf parameter
}

// Jail is a VNET jail: its jail.conf block and its own rc.conf.
type Jail struct {
	Name       string `yaml:"name"`
	Hostname   string `yaml:"hostname"`
	JailParams `yaml:",inline"`
	Interfaces []string `yaml:"interfaces"` // vnet.interface, in order
	// Vnet gives the jail its own network stack; default: when it has
	// interfaces. vnet: true without interfaces is a vnet jail with only
	// lo0.
	Vnet     *bool             `yaml:"vnet"`
	Gateway  string            `yaml:"gateway"` // defaultrouter in the jail
	Services []string          `yaml:"services"`
	RC       map[string]string `yaml:"rc"`
	Pipes    []*Pipe           `yaml:"pipes"`
	// Netif sets FIB, MTU and routes of the jail's interfaces and of the
	// host's ends of its epairs, by interface name.
	Netif map[string]*Netif `yaml:"netif"`
}

// Netif is what the jail's exec hooks and rc.conf set on one interface.
type Netif struct {
	FIB *int `yaml:"fib"`
	MTU int  `yaml:"mtu"`
	// Routes through the interface: "DEST" (an interface route) or
	// "DEST GATEWAY".
	Routes []string `yaml:"routes"`
}

// Pipe is one spiped pipe run by the jail's spiped rc script.
type Pipe struct {
	Name   string `yaml:"name"`
	Mode   string `yaml:"mode"`   // encrypt | decrypt
	Source string `yaml:"source"` // endpoint: [HOST/]IF:PORT or ADDR:PORT
	Target string `yaml:"target"`
	Key    string `yaml:"key"`   // path inside the jail; default /etc/spiped.key
	Probe  string `yaml:"probe"` // tunnel health probe of an encrypt pipe
	// Clients of a decrypt pipe: "one" (default: encrypt pipes of one
	// host target it), "many" (several hosts may share it) or "external"
	// (its clients are outside the topology; none is required).
	Clients string `yaml:"clients"`
	Send    string `yaml:"send"`
	Expect  string `yaml:"expect"`
}

// WG is a WireGuard interface (wg-quick config).
type WG struct {
	Name       string    `yaml:"name"`
	ListenPort int       `yaml:"listen_port"`
	PublicKey  string    `yaml:"public_key"`  // this end's public key, for peers
	PrivateKey string    `yaml:"private_key"` // path on the host (a secret)
	Endpoint   string    `yaml:"endpoint"`    // address peers dial
	MTU        int       `yaml:"mtu"`
	Table      string    `yaml:"table"` // "off" to manage routes by hand
	FIB        int       `yaml:"fib"`   // with table off: routes go into this FIB
	FIBRoutes  []string  `yaml:"fib_routes"`
	PostUp     []string  `yaml:"post_up"`
	PostDown   []string  `yaml:"post_down"`
	Peers      []*WGPeer `yaml:"peers"`
}

// WGPeer is a peer of a WireGuard interface; most of it is derived from the
// peer host's own interface of the same name.
type WGPeer struct {
	Host         string   `yaml:"host"`
	Interface    string   `yaml:"interface"`   // the peer's interface; default the same name
	PublicKey    string   `yaml:"public_key"`  // optional: must match the peer interface's key
	AllowedIPs   []string `yaml:"allowed_ips"` // replaces the derived list
	Routes       []string `yaml:"routes"`      // added to the derived list
	PresharedKey string   `yaml:"preshared_key"`
	Keepalive    int      `yaml:"keepalive"`
}

// PF is the firewall: a template and table files.
type PF struct {
	Template string              `yaml:"template"`
	Tables   map[string]*PFTable `yaml:"tables"`
}

// PFTable is a table file: entries (addresses, networks, interface refs)
// or a verbatim repo file.
type PFTable struct {
	Path    string   `yaml:"path"` // default /etc/pf/NAME.table
	Entries []string `yaml:"entries"`
	Source  string   `yaml:"source"`
	// Add appends entries to the table of the same name the role defines
	// (a host's own entries replace them).
	Add []string `yaml:"add"`
}

// FileSpec maps a template or a verbatim file to a target.
type FileSpec struct {
	Target   string `yaml:"target"`
	Template string `yaml:"template"`
	Source   string `yaml:"source"`
	Mode     string `yaml:"mode"`
	Owner    string `yaml:"owner"`
	Group    string `yaml:"group"`
	Unit     string `yaml:"unit"`
}

// CheckSpec is a user health check.
type CheckSpec struct {
	Name    string   `yaml:"name"`
	Kind    string   `yaml:"kind"` // tcp | http | exec
	Jail    string   `yaml:"jail"`
	Addr    string   `yaml:"addr"` // endpoint
	URL     string   `yaml:"url"`
	Status  int      `yaml:"status"`
	Command []string `yaml:"command"`
	Timeout string   `yaml:"timeout"`
}

// Strings is a YAML scalar or a sequence of scalars.
type Strings []string

func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Strings{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Strings, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}
