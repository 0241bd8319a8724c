// Package hostdesc is the structured description of a jail host's
// kernel-level configuration: interfaces, addresses, bridge members, lagg
// and vlan settings, routes per FIB, forwarding, services, hostname and
// loader tunables. The bundler derives it from the topology and signs it in
// the manifest; the agent diffs two of them into live steps (apply/live).
// FromRC reads the same description back from a rendered /etc/rc.conf, so
// a test can hold the boot-time truth (rc.conf) and the live plan's target
// (this description) equal.
package hostdesc

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// Kind is the kind of an interface.
type Kind string

const (
	Physical Kind = "physical"
	Epair    Kind = "epair" // one end of an epair; Peer names the other end
	Bridge   Kind = "bridge"
	Lagg     Kind = "lagg"
	Vlan     Kind = "vlan"
	WG       Kind = "wg" // created by wg-quick (the wireguard unit), not by rc.conf
)

// Management policies for changes that touch the path to the git source.
const (
	MgmtConfirm = ""       // apply, then the source must answer in time, or undo
	MgmtForbid  = "forbid" // refuse the plan
)

// Host is one host's description. Lists are sorted (interfaces by name,
// routes by FIB then destination, services by name); jails keep boot order.
type Host struct {
	Hostname   string      `json:"hostname,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	Routes     []Route     `json:"routes,omitempty"`
	// Forwarding is gateway_enable (net.inet.ip.forwarding).
	Forwarding bool              `json:"forwarding,omitempty"`
	Sysctls    map[string]string `json:"sysctls,omitempty"`
	Services   []Service         `json:"services,omitempty"`
	Jails      []Jail            `json:"jails,omitempty"`
	// Loader are loader.conf tunables: read at boot only.
	Loader map[string]string `json:"loader,omitempty"`
	// Management is MgmtConfirm or MgmtForbid.
	Management string `json:"management,omitempty"`
}

// Interface is one network interface as it exists after boot.
type Interface struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Clone is the name the interface has when created or found: the
	// driver name of a renamed NIC (igb0) or the clone name of a cloned
	// one (bridge0, epair3a, lagg0, vlan1). Empty: same as Name.
	Clone string `json:"clone,omitempty"`
	Peer  string `json:"peer,omitempty"` // epair: the other end
	// Jail owns the interface (vnet.interface): its addresses are set in
	// the jail, so the host description has none.
	Jail string `json:"jail,omitempty"`
	// Addrs: the first IPv4 address (or DHCP) first, then IPv4 aliases,
	// then IPv6 addresses, as rc.conf sets them (CIDR form).
	Addrs   []string `json:"addrs,omitempty"`
	MTU     int      `json:"mtu,omitempty"`
	FIB     int      `json:"fib,omitempty"`
	Members []string `json:"members,omitempty"` // bridge
	Proto   string   `json:"proto,omitempty"`   // lagg
	Ports   []string `json:"ports,omitempty"`   // lagg
	Tag     int      `json:"tag,omitempty"`     // vlan
	Parent  string   `json:"parent,omitempty"`  // vlan
	// Options are the other ifconfig words, in order (vlanhwtag, -txcsum).
	Options []string `json:"options,omitempty"`
}

// CloneName is the name the interface has before any rename.
func (i Interface) CloneName() string {
	if i.Clone != "" {
		return i.Clone
	}
	return i.Name
}

// Route is one static route. Name is its static_routes name ("_default"
// for defaultrouter, "_default_fibN" for defaultrouter_fibN).
type Route struct {
	Name    string `json:"name"`
	FIB     int    `json:"fib,omitempty"`
	Dest    string `json:"dest"`              // "default", a CIDR or a host address
	Gateway string `json:"gateway,omitempty"` // address, or an interface with Iface
	// Args are route(8)'s arguments as rc.d/routing passes them
	// (route add ARGS), -fib included.
	Args []string `json:"args"`
}

// Service is an rc.d service enabled on the host, with its flags.
type Service struct {
	Name  string `json:"name"`
	Flags string `json:"flags,omitempty"`
}

// Jail is a jail of the host, with the interfaces it takes (vnet.interface).
type Jail struct {
	Name       string   `json:"name"`
	Interfaces []string `json:"interfaces,omitempty"`
}

// Iface returns the interface called name, or nil.
func (h *Host) Iface(name string) *Interface {
	if h == nil {
		return nil
	}
	for i := range h.Interfaces {
		if h.Interfaces[i].Name == name {
			return &h.Interfaces[i]
		}
	}
	return nil
}

// Normalize sorts the lists so that two descriptions of the same state
// compare equal.
func (h *Host) Normalize() {
	sort.Slice(h.Interfaces, func(a, b int) bool { return h.Interfaces[a].Name < h.Interfaces[b].Name })
	sort.Slice(h.Routes, func(a, b int) bool {
		ra, rb := h.Routes[a], h.Routes[b]
		if ra.FIB != rb.FIB {
			return ra.FIB < rb.FIB
		}
		return ra.Dest < rb.Dest
	})
	sort.Slice(h.Services, func(a, b int) bool { return h.Services[a].Name < h.Services[b].Name })
	if len(h.Sysctls) == 0 {
		h.Sysctls = nil
	}
	if len(h.Loader) == 0 {
		h.Loader = nil
	}
}

// ParseRoute reads route(8) arguments as rc.d/routing passes them: an
// optional -net/-host/-inet/-inet6, the destination, the gateway (or
// -interface/-iface IF) and options; -fib N anywhere.
func ParseRoute(name, args string) (Route, error) {
	r := Route{Name: name, Args: strings.Fields(args)}
	var pos []string
	for i := 0; i < len(r.Args); i++ {
		w := r.Args[i]
		switch w {
		case "-fib":
			if i+1 >= len(r.Args) {
				return r, fmt.Errorf("route_%s: -fib without a number", name)
			}
			n, err := strconv.Atoi(r.Args[i+1])
			if err != nil || n < 0 {
				return r, fmt.Errorf("route_%s: -fib %q: want one FIB number", name, r.Args[i+1])
			}
			r.FIB = n
			i++
		case "-interface", "-iface":
			if i+1 < len(r.Args) {
				r.Gateway = r.Args[i+1]
				i++
			}
		case "-netmask", "-prefixlen", "-mtu", "-expire", "-weight":
			i++ // option with a value
		default:
			if !strings.HasPrefix(w, "-") {
				pos = append(pos, w)
			}
		}
	}
	if len(pos) == 0 {
		return r, fmt.Errorf("route_%s: %q: no destination", name, args)
	}
	r.Dest = pos[0]
	if len(pos) > 1 && r.Gateway == "" {
		r.Gateway = pos[1]
	}
	return r, nil
}

// ParseIfconfig reads the words of an ifconfig_IF value into i: inet and
// inet6 addresses (a bare address is inet), DHCP, mtu, fib, bridge addm,
// lagg laggproto/laggport, vlan/vlandev; "up" is implied; other words are
// kept as options.
func ParseIfconfig(i *Interface, value string) error {
	w := strings.Fields(value)
	arg := func(k int) (string, error) {
		if k+1 >= len(w) {
			return "", fmt.Errorf("ifconfig_%s: %s without a value", i.Name, w[k])
		}
		return w[k+1], nil
	}
	num := func(k int) (int, error) {
		s, err := arg(k)
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("ifconfig_%s: %s %q: want a number", i.Name, w[k], s)
		}
		return n, nil
	}
	for k := 0; k < len(w); k++ {
		var err error
		switch w[k] {
		case "up":
		case "DHCP", "SYNCDHCP":
			i.Addrs = append(i.Addrs, w[k])
		case "inet", "inet6":
			var a string
			a, err = arg(k)
			i.Addrs = append(i.Addrs, a)
			k++
		case "mtu":
			i.MTU, err = num(k)
			k++
		case "fib":
			i.FIB, err = num(k)
			k++
		case "addm":
			var m string
			m, err = arg(k)
			i.Members = append(i.Members, m)
			k++
		case "laggproto":
			i.Proto, err = arg(k)
			k++
		case "laggport":
			var p string
			p, err = arg(k)
			i.Ports = append(i.Ports, p)
			k++
		case "vlan":
			i.Tag, err = num(k)
			k++
		case "vlandev":
			i.Parent, err = arg(k)
			k++
		default:
			if len(i.Addrs) == 0 && looksLikeAddr(w[k]) {
				i.Addrs = append(i.Addrs, w[k])
				continue
			}
			i.Options = append(i.Options, w[k])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func looksLikeAddr(s string) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9') && strings.ContainsAny(s, "./")
}

// notServices are rc.conf *_enable knobs that name no rc.d script, and
// services the description leaves to their own units: jails (jail units),
// pf (the pf unit), wireguard (wireguard units).
var notServices = map[string]bool{
	"gateway": true, "ipv6_gateway": true, "jail": true, "pf": true, "wireguard": true,
}

// IsLiveService reports whether NAME_enable in rc.conf is a service the
// live plan starts and stops.
func IsLiveService(name string) bool { return !notServices[name] }

// FromRC reads the description that a rendered /etc/rc.conf gives at
// boot (variables as policy/rcconf.Parse returns them): renames, cloned
// interfaces, addresses and aliases, bridge members, lagg and vlan
// settings, routes, forwarding, services. What rc.conf does not say
// (jails' interfaces, sysctls, loader tunables) is left empty, and
// interfaces without an ifconfig line of their own (handed to a jail) have
// no addresses.
func FromRC(vars map[string]string) (*Host, error) {
	for k, v := range vars {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("%s: not UTF-8", k)
		}
		if n, ok := strings.CutPrefix(k, "ifconfig_"); ok && (n == "" || strings.HasPrefix(n, "_")) {
			return nil, fmt.Errorf("%s: no interface name", k)
		}
	}
	h := &Host{Hostname: vars["hostname"]}
	renamed := map[string]string{} // clone or driver name → final name
	for k, v := range vars {
		if from, ok := strings.CutPrefix(k, "ifconfig_"); ok {
			if from, ok := strings.CutSuffix(from, "_name"); ok {
				renamed[from] = v
			}
		}
	}
	final := func(n string) string {
		if r, ok := renamed[n]; ok {
			return r
		}
		return n
	}
	byName := map[string]*Interface{}
	add := func(i Interface) {
		if i.Clone == i.Name {
			i.Clone = ""
		}
		h.Interfaces = append(h.Interfaces, i)
	}
	for _, c := range strings.Fields(vars["cloned_interfaces"]) {
		switch {
		case strings.HasPrefix(c, "epair"):
			a, b := final(c+"a"), final(c+"b")
			add(Interface{Name: a, Kind: Epair, Clone: c + "a", Peer: b})
			add(Interface{Name: b, Kind: Epair, Clone: c + "b", Peer: a})
		case strings.HasPrefix(c, "bridge"):
			add(Interface{Name: final(c), Kind: Bridge, Clone: c})
		case strings.HasPrefix(c, "lagg"):
			add(Interface{Name: final(c), Kind: Lagg, Clone: c})
		case strings.HasPrefix(c, "vlan"):
			add(Interface{Name: final(c), Kind: Vlan, Clone: c})
		default:
			return nil, fmt.Errorf("cloned_interfaces: %s: unknown interface kind", c)
		}
	}
	for _, w := range strings.Fields(vars["wireguard_interfaces"]) {
		add(Interface{Name: w, Kind: WG})
	}
	for i := range h.Interfaces {
		byName[h.Interfaces[i].Name] = &h.Interfaces[i]
	}
	// NICs: a rename of a name that is not cloned, or an ifconfig line of
	// an interface that is neither cloned nor renamed-to.
	for from, to := range renamed {
		if byName[to] == nil {
			add(Interface{Name: to, Kind: Physical, Clone: from})
			byName[to] = &h.Interfaces[len(h.Interfaces)-1]
			for i := range h.Interfaces {
				byName[h.Interfaces[i].Name] = &h.Interfaces[i]
			}
		}
	}
	var keys []string
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n, ok := strings.CutPrefix(k, "ifconfig_")
		if !ok || strings.HasSuffix(n, "_name") || strings.HasSuffix(n, "_ipv6") || strings.Contains(n, "_alias") {
			continue
		}
		if byName[n] == nil && !isRenamedFrom(renamed, n) {
			add(Interface{Name: n, Kind: Physical})
			for i := range h.Interfaces {
				byName[h.Interfaces[i].Name] = &h.Interfaces[i]
			}
		}
	}
	for _, i := range h.Interfaces {
		ifc := byName[i.Name]
		v := ifVarName(i.Name)
		if err := ParseIfconfig(ifc, vars["ifconfig_"+v]); err != nil {
			return nil, err
		}
		if s, ok := vars["ifconfig_"+v+"_ipv6"]; ok {
			if err := ParseIfconfig(ifc, s); err != nil {
				return nil, err
			}
		}
		for n := 0; ; n++ {
			s, ok := vars["ifconfig_"+v+"_alias"+strconv.Itoa(n)]
			if !ok {
				break
			}
			if err := ParseIfconfig(ifc, s); err != nil {
				return nil, err
			}
		}
		if ifc.Kind == Physical {
			// vlans_IF would create vlans; this package renders them as
			// cloned vlans only.
			if _, ok := vars["vlans_"+v]; ok {
				return nil, fmt.Errorf("vlans_%s: not supported, use cloned vlans", v)
			}
		}
	}
	if gw := vars["defaultrouter"]; gw != "" && !strings.EqualFold(gw, "NO") {
		r, _ := ParseRoute("_default", "default "+gw)
		h.Routes = append(h.Routes, r)
	}
	for k, v := range vars {
		// rc.d/routing's static_inet sets route__default_fib${fibnum}
		// with an unset ${fibnum}, so get_if_var finds no route for
		// _default_fibN and only warns: the route never exists. A
		// description claiming it would lie; use a static route with -fib.
		if strings.HasPrefix(k, "defaultrouter_fib") && v != "" && !strings.EqualFold(v, "NO") {
			return nil, fmt.Errorf("%s: rc.d/routing never adds it (static_inet's eval uses ${fibnum}); use static_routes with -fib", k)
		}
	}
	for _, n := range strings.Fields(vars["static_routes"]) {
		args, ok := vars["route_"+strings.SplitN(n, ":", 2)[0]]
		if !ok {
			return nil, fmt.Errorf("static_routes: route_%s not set", n)
		}
		r, err := ParseRoute(n, args)
		if err != nil {
			return nil, err
		}
		h.Routes = append(h.Routes, r)
	}
	h.Forwarding = yes(vars["gateway_enable"])
	for k, v := range vars {
		name, ok := strings.CutSuffix(k, "_enable")
		if !ok || !yes(v) || !IsLiveService(name) {
			continue
		}
		h.Services = append(h.Services, Service{Name: name, Flags: vars[name+"_flags"]})
	}
	h.Normalize()
	return h, nil
}

func isRenamedFrom(renamed map[string]string, n string) bool {
	_, ok := renamed[n]
	return ok
}

// yes is rc.subr's checkyesno: YES, TRUE, ON or 1 in any case.
func yes(v string) bool {
	return slices.Contains([]string{"yes", "true", "on", "1"}, strings.ToLower(v))
}

// ifVarName is the rc.conf spelling of an interface name: dots and dashes
// become underscores (network.subr's ltr).
func ifVarName(n string) string { return strings.NewReplacer(".", "_", "-", "_").Replace(n) }

// ParseRC reads the description an rc.conf's text gives (FromRC) and adds
// the jails, marking each jail's interfaces as the jail's (whose addresses
// the jail sets): the description of a host from its files, for hosts
// whose manifest carries none and for tests.
func ParseRC(filename string, src []byte, jails ...Jail) (*Host, error) {
	vars, err := rcconf.Parse(filename, src)
	if err != nil {
		return nil, err
	}
	h, err := FromRC(vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	h.Jails = jails
	for _, j := range jails {
		for _, n := range j.Interfaces {
			if i := h.Iface(n); i != nil {
				i.Jail = j.Name
				i.Addrs = nil
			}
		}
	}
	return h, nil
}
