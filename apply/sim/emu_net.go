package sim

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cloners are the interface types `ifconfig TYPE create` knows, with the
// kernel module that provides each.
var cloners = map[string]string{
	"epair": "if_epair", "bridge": "if_bridge", "lagg": "if_lagg", "vlan": "if_vlan",
	"wg": "if_wg", "tap": "if_tuntap", "tun": "if_tuntap", "gif": "if_gif", "lo": "",
	"pflog": "pflog",
}

// splitUnit splits "epair12a" into ("epair", "12", "a").
func splitUnit(name string) (kind, unit, suffix string) {
	i := strings.IndexAny(name, "0123456789")
	if i <= 0 {
		return name, "", ""
	}
	j := i
	for j < len(name) && name[j] >= '0' && name[j] <= '9' {
		j++
	}
	return name[:i], name[i:j], name[j:]
}

// isNICName: a hardware driver name and unit (em0, vtnet1, igb0).
func isNICName(s string) bool {
	kind, unit, suffix := splitUnit(s)
	if unit == "" || suffix != "" {
		return false
	}
	if _, clone := cloners[kind]; clone {
		return false
	}
	for _, r := range kind {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// ifconfig implements the subset of ifconfig(8) rigger's files and the
// driver use. Errors are ifconfig's: `ifconfig: interface X does not
// exist`, exit 1 (sbin/ifconfig/ifconfig.c, ifconfig_ioctl, setifvnet).
func (c *cmd) ifconfig(args []string) int {
	if len(args) == 0 || args[0] == "-a" {
		for _, i := range c.ifacesHere() {
			c.printIface(i)
		}
		return 0
	}
	if args[0] == "-l" {
		var names []string
		for _, i := range c.ifacesHere() {
			names = append(names, i.Name)
		}
		c.out("%s\n", strings.Join(names, " "))
		return 0
	}
	name, rest := args[0], args[1:]
	if len(rest) > 0 && rest[0] == "create" {
		i, code := c.ifCreate(name, rest[1:])
		if code != 0 {
			return code
		}
		// The remaining parameters configure the new interface.
		params := rest[1:]
		if len(params) > 0 && params[0] == "name" && len(params) > 1 {
			if code := c.ifRename(i, params[1]); code != 0 {
				return code
			}
			params = params[2:]
		}
		c.out("%s\n", i.Name)
		return c.ifSet(i, params)
	}
	if len(rest) == 2 && rest[0] == "-vnet" {
		return c.ifconfigVnetBack(name, rest[1])
	}
	i := c.iface(name)
	if i == nil {
		c.errf("ifconfig: interface %s does not exist\n", name)
		return 1
	}
	if len(rest) == 0 {
		c.printIface(i)
		return 0
	}
	if rest[0] == "destroy" {
		return c.ifDestroy(i)
	}
	if rest[0] == "name" && len(rest) > 1 {
		if code := c.ifRename(i, rest[1]); code != 0 {
			return code
		}
		c.out("%s\n", rest[1])
		return c.ifSet(i, rest[2:])
	}
	return c.ifSet(i, rest)
}

// ifCreate creates a cloned interface: TYPE (next free unit) or TYPEN.
// `vlan create` needs vlan and vlandev among the parameters; IF.TAG
// creates a vlan of IF.
func (c *cmd) ifCreate(name string, params []string) (*Iface, int) {
	if dev, tag, ok := strings.Cut(name, "."); ok {
		n, err := strconv.Atoi(tag)
		if err != nil || c.iface(dev) == nil {
			c.errf("ifconfig: SIOCIFCREATE2 (%s): Invalid argument\n", name)
			return nil, 1
		}
		i := &Iface{Name: name, Kind: "vlan", MTU: 1500, VlanTag: n, VlanDev: dev, Vnet: c.jail, Unit: name}
		if c.iface(name) != nil {
			c.errf("ifconfig: SIOCIFCREATE2 (%s): File exists\n", name)
			return nil, 1
		}
		c.k.putIface(i)
		return i, 0
	}
	kind, unit, suffix := splitUnit(name)
	if _, ok := cloners[kind]; !ok || suffix != "" || kind == "lo" && unit == "" {
		c.errf("ifconfig: SIOCIFCREATE2 (%s): Invalid argument\n", name)
		return nil, 1
	}
	n := -1
	if unit != "" {
		n, _ = strconv.Atoi(unit)
	} else {
		for n = 0; ; n++ {
			if !c.unitTaken(kind, n) {
				break
			}
		}
	}
	if c.unitTaken(kind, n) {
		c.errf("ifconfig: SIOCIFCREATE2 (%s%d): File exists\n", kind, n)
		return nil, 1
	}
	mtu := 1500
	if kind == "wg" {
		mtu = 1420
	}
	if kind == "epair" {
		a := &Iface{Name: fmt.Sprintf("epair%da", n), Kind: "epair", MTU: mtu, Peer: fmt.Sprintf("epair%db", n), Vnet: c.jail}
		b := &Iface{Name: fmt.Sprintf("epair%db", n), Kind: "epair", MTU: mtu, Peer: a.Name, Vnet: c.jail}
		c.k.putIface(a)
		c.k.putIface(b)
		c.setUnit(kind, n, a, b)
		return a, 0
	}
	i := &Iface{Name: fmt.Sprintf("%s%d", kind, n), Kind: kind, MTU: mtu, Vnet: c.jail}
	if kind == "wg" {
		i.WG = &WGState{}
	}
	c.k.putIface(i)
	c.setUnit(kind, n, i)
	return i, 0
}

// Clone units are remembered by the names they were created with, so a
// renamed epair0a still holds unit 0 (the kernel keeps if_dunit).
func (c *cmd) unitTaken(kind string, n int) bool {
	_, ok := c.k.Units[fmt.Sprintf("%s%d", kind, n)]
	return ok
}

func (c *cmd) setUnit(kind string, n int, ifs ...*Iface) {
	u := fmt.Sprintf("%s%d", kind, n)
	c.k.Units[u] = 1
	for _, i := range ifs {
		i.Unit = u
	}
}

// unitOf returns the clone unit key of an interface ("epair3"), from its
// recorded original name.
func unitOf(i *Iface) string {
	return i.Unit
}

func (c *cmd) ifRename(i *Iface, to string) int {
	if c.iface(to) != nil {
		c.errf("ifconfig: ioctl SIOCSIFNAME (set name): File exists\n")
		return 1
	}
	old := i.Name
	c.k.delIface(i)
	i.Name = to
	c.k.putIface(i)
	// Whoever refers to the old name follows it.
	for _, o := range c.k.Ifaces {
		if o.Peer == old && o.Kind == "epair" {
			o.Peer = to
		}
		for n, m := range o.Members {
			if m == old {
				o.Members[n] = to
			}
		}
		for n, m := range o.LaggPorts {
			if m == old {
				o.LaggPorts[n] = to
			}
		}
		if o.VlanDev == old {
			o.VlanDev = to
		}
	}
	return 0
}

// ifDestroy destroys a cloned interface; an epair goes with its peer,
// wherever that end is (a vnet jail loses it).
func (c *cmd) ifDestroy(i *Iface) int {
	if i.Kind == "nic" || i.Kind == "lo" && i.Name == "lo0" {
		c.errf("ifconfig: SIOCIFDESTROY: Invalid argument\n")
		return 1
	}
	c.k.destroyIface(i)
	return 0
}

func (k *Kernel) destroyIface(i *Iface) {
	k.delIface(i)
	delete(k.Units, unitOf(i))
	if i.Kind == "epair" {
		for _, o := range k.Ifaces {
			if o.Kind == "epair" && unitOf(o) == unitOf(i) {
				k.delIface(o)
			}
		}
	}
	for _, o := range k.Ifaces {
		o.Members = slices.DeleteFunc(o.Members, func(m string) bool { return m == i.Name })
		o.LaggPorts = slices.DeleteFunc(o.LaggPorts, func(m string) bool { return m == i.Name })
	}
	for fib, rs := range k.Routes {
		k.Routes[fib] = slices.DeleteFunc(rs, func(r Route) bool { return r.Iface == i.Name && r.Vnet == i.Vnet })
	}
}

// capabilities are ifconfig flags without an argument that change
// nothing the emulator models.
var capabilities = map[string]bool{}

func init() {
	for _, f := range []string{"vlanhwtag", "vlanhwfilter", "vlanhwtso", "vlanmtu", "vlanhwcsum", "txcsum", "rxcsum", "txcsum6", "rxcsum6", "tso", "tso4", "tso6", "lro", "polling", "promisc", "wol", "monitor", "staticarp", "arp", "debug", "link0", "link1", "link2", "learn", "discover", "autoedge", "autoptp"} {
		capabilities[f] = true
		capabilities["-"+f] = true
	}
}

// ifSet applies ifconfig parameters in order; addresses are applied
// after the others, as ifconfig does (its setifaddr callbacks run last).
func (c *cmd) ifSet(i *Iface, params []string) int {
	type addrOp struct {
		af, addr string
		dst      string // destination (broadcast) address given after it
		alias    bool
		remove   bool
	}
	var ops []addrOp
	af := ""
	alias, remove := false, false
	next := func(n *int) (string, bool) {
		if *n+1 >= len(params) {
			c.errf("ifconfig: '%s' requires argument\n", params[*n])
			return "", false
		}
		*n++
		return params[*n], true
	}
	for n := 0; n < len(params); n++ {
		p := params[n]
		switch {
		case p == "up":
			i.Up = true
		case p == "down":
			i.Up = false
		case p == "inet" || p == "inet6":
			af = p
		case p == "alias" || p == "add":
			alias = true
		case p == "-alias" || p == "delete":
			remove = true
		case p == "netmask" || p == "prefixlen" || p == "broadcast" || p == "description" || p == "descr" || p == "group" || p == "-group" || p == "ether" || p == "lladdr" || p == "vlanproto" || p == "vlanpcp" || p == "lagghash":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			if (p == "netmask" || p == "prefixlen") && len(ops) > 0 {
				last := &ops[len(ops)-1]
				if !strings.Contains(last.addr, "/") {
					if bits, ok := maskBits(p, v); ok {
						last.addr += "/" + strconv.Itoa(bits)
					}
				}
			}
		case p == "-description" || p == "-vlandev" || capabilities[p]:
			if p == "-vlandev" {
				i.VlanDev, i.VlanTag = "", 0
			}
		case p == "mtu":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			m, err := strconv.Atoi(v)
			if err != nil || m < 72 || m > 65535 {
				c.errf("ifconfig: ioctl SIOCSIFMTU (set mtu): Invalid argument\n")
				return 1
			}
			i.MTU = m
		case p == "fib":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			f, err := strconv.Atoi(v)
			if err != nil || f < 0 || f >= c.numFibs() {
				c.errf("ifconfig: ioctl (SIOCSIFFIB): Invalid argument\n")
				return 1
			}
			i.FIB = f
		case p == "vnet" || p == "-vnet":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			if p == "-vnet" {
				c.errf("ifconfig: interface %s does not exist\n", i.Name)
				return 1
			}
			if code := c.ifVnet(i, v); code != 0 {
				return code
			}
			return 0 // the interface is gone from here
		case p == "addm" || p == "deletem":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			if i.Kind != "bridge" {
				c.errf("ifconfig: %s %s: Invalid argument\n", strings.ToUpper(map[bool]string{true: "BRDGADD", false: "BRDGDEL"}[p == "addm"]), v)
				return 1
			}
			m := c.iface(v)
			if p == "addm" {
				if m == nil {
					c.errf("ifconfig: BRDGADD %s: No such file or directory\n", v)
					return 1
				}
				if slices.Contains(i.Members, v) {
					c.errf("ifconfig: BRDGADD %s: File exists\n", v)
					return 1
				}
				i.Members = append(i.Members, v)
			} else {
				if !slices.Contains(i.Members, v) {
					c.errf("ifconfig: BRDGDEL %s: Invalid argument\n", v)
					return 1
				}
				i.Members = slices.DeleteFunc(i.Members, func(m string) bool { return m == v })
			}
		case p == "laggproto":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			switch v {
			case "failover", "lacp", "loadbalance", "roundrobin", "broadcast", "none":
			default:
				c.errf("ifconfig: Invalid aggregation protocol: %s\n", v)
				return 1
			}
			i.LaggProto = v
		case p == "laggport" || p == "-laggport":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			if i.Kind != "lagg" {
				c.errf("ifconfig: SIOCSLAGGPORT: Invalid argument\n")
				return 1
			}
			if p == "laggport" {
				if c.iface(v) == nil {
					c.errf("ifconfig: SIOCSLAGGPORT: No such file or directory\n")
					return 1
				}
				if slices.Contains(i.LaggPorts, v) {
					c.errf("ifconfig: SIOCSLAGGPORT: File exists\n")
					return 1
				}
				i.LaggPorts = append(i.LaggPorts, v)
			} else {
				i.LaggPorts = slices.DeleteFunc(i.LaggPorts, func(m string) bool { return m == v })
			}
		case p == "vlan":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			t, err := strconv.Atoi(v)
			if err != nil || t < 0 || t > 4094 {
				c.errf("ifconfig: vlan %s: bad value\n", v)
				return 1
			}
			i.VlanTag = t
		case p == "vlandev":
			v, ok := next(&n)
			if !ok {
				return 1
			}
			if c.iface(v) == nil {
				c.errf("ifconfig: interface %s does not exist\n", v)
				return 1
			}
			i.VlanDev = v
		default:
			// A word that is no parameter is an address: the interface's
			// if none was given yet, else the destination, which on a
			// broadcast interface is the broadcast address (ifconfig.c,
			// ifconfig: setifaddr_cmd or setifdstaddr_cmd; netinet/in_var.h:
			// ifra_broadaddr is ifra_dstaddr). af_inet.c in_getaddr reads
			// it with inet_aton, so "2222" is 0.0.8.174, and only what
			// inet_aton and the resolver refuse is "bad value".
			a := p
			if _, err := netip.ParsePrefix(p); err != nil {
				if _, err := netip.ParseAddr(p); err != nil {
					v4, ok := inetAton(p)
					if !ok || af == "inet6" {
						c.errf("ifconfig: %s: bad value\n", p)
						return 1
					}
					a = v4.String()
				}
			}
			if len(ops) > 0 && !ops[len(ops)-1].remove && ops[len(ops)-1].dst == "" {
				ops[len(ops)-1].dst = addrOnly(a)
				continue
			}
			ops = append(ops, addrOp{af: af, addr: a, alias: alias, remove: remove})
		}
	}
	for _, o := range ops {
		// alias and -alias apply to the command's address wherever they
		// stand: ifconfig performs the SIOCAIFADDR or SIOCDIFADDR after
		// reading every word (ifconfig.c, ifconfig: the doalias test
		// after the argument loop).
		o.alias, o.remove = o.alias || alias, o.remove || remove
		a := normPrefix(o.addr)
		if o.remove {
			if !slices.Contains(i.Addrs, a) && !slices.ContainsFunc(i.Addrs, func(x string) bool { return addrOnly(x) == addrOnly(a) }) {
				c.errf("ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n")
				return 1
			}
			i.Addrs = slices.DeleteFunc(i.Addrs, func(x string) bool { return addrOnly(x) == addrOnly(a) })
			continue
		}
		if !o.alias {
			// Without alias the interface's first address of the family
			// is replaced.
			v6 := strings.Contains(addrOnly(a), ":")
			for n, x := range i.Addrs {
				if strings.Contains(addrOnly(x), ":") == v6 {
					i.Addrs = slices.Delete(i.Addrs, n, n+1)
					break
				}
			}
		}
		if !slices.Contains(i.Addrs, a) {
			i.Addrs = append(i.Addrs, a)
		}
		if o.dst != "" {
			if i.Dst == nil {
				i.Dst = map[string]string{}
			}
			i.Dst[addrOnly(a)] = o.dst
		}
		// An address brings the interface up, as ifconfig's setifaddr.
		i.Up = true
	}
	return 0
}

// inetAton parses an IPv4 address as inet_aton(3) does: one to four
// parts, each decimal, octal (leading 0) or hex (0x), the last part
// filling the remaining bytes (lib/libc/inet/inet_addr.c).
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for k, p := range parts {
		v, err := strconv.ParseUint(p, 0, 32)
		if err != nil || p == "" {
			return netip.Addr{}, false
		}
		vals[k] = v
	}
	n := len(vals)
	var u uint64
	for k := 0; k < n-1; k++ {
		if vals[k] > 0xff {
			return netip.Addr{}, false
		}
		u |= vals[k] << (24 - 8*k)
	}
	if vals[n-1] >= 1<<(32-8*(n-1)) {
		return netip.Addr{}, false
	}
	u |= vals[n-1]
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}), true
}

// maskBits turns "netmask 255.255.255.0" / "0xffffff00" / "prefixlen 64"
// into a prefix length.
func maskBits(kind, v string) (int, bool) {
	if kind == "prefixlen" {
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	if strings.HasPrefix(v, "0x") {
		u, err := strconv.ParseUint(v[2:], 16, 32)
		if err != nil {
			return 0, false
		}
		n := 0
		for u&0x80000000 != 0 {
			n++
			u <<= 1
		}
		return n, true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for u&0x80000000 != 0 {
		n++
		u <<= 1
	}
	return n, true
}

// normPrefix writes an address with its prefix length (/32 or /128 when
// none was given, as ifconfig defaults a host address).
func normPrefix(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

func addrOnly(s string) string {
	a, _, _ := strings.Cut(s, "/")
	return a
}

// ifVnet moves i into jail (ifconfig IF vnet JAIL) or, with back, takes
// it back from jail (ifconfig IF -vnet JAIL, run on the host). Moving
// clears the addresses (if_vmove detaches the interface).
func (c *cmd) ifVnet(i *Iface, jail string) int {
	j := c.k.Jails[jail]
	if j == nil {
		if n, err := strconv.Atoi(jail); err == nil {
			for _, x := range c.k.Jails {
				if x.JID == n {
					j = x
				}
			}
		}
	}
	if j == nil || j.Dying {
		c.errf("ifconfig: jail %q not found\n", jail)
		return 1
	}
	if !j.Vnet {
		c.errf("ifconfig: ioctl SIOCSIFVNET (set vnet): Invalid argument\n")
		return 1
	}
	if c.k.Ifaces[ifKey(j.Name, i.Name)] != nil {
		c.errf("ifconfig: ioctl SIOCSIFVNET (set vnet): File exists\n")
		return 1
	}
	c.k.moveIface(i, j.Name)
	return 0
}

func (k *Kernel) moveIface(i *Iface, vnet string) {
	k.delIface(i)
	i.Vnet, i.Addrs, i.Up = vnet, nil, false
	i.FIB = 0
	k.putIface(i)
}

// ifconfigVnetBack is `ifconfig IF -vnet JAIL` on the host.
func (c *cmd) ifconfigVnetBack(name, jail string) int {
	j := c.k.Jails[jail]
	if j == nil {
		c.errf("ifconfig: jail %q not found\n", jail)
		return 1
	}
	i := c.k.Ifaces[ifKey(j.Name, name)]
	if i == nil {
		c.errf("ifconfig: ioctl SIOCSIFRVNET (reclaim vnet interface): No such file or directory\n")
		return 1
	}
	c.k.moveIface(i, "")
	return 0
}

// printIface prints the ifconfig(8) block of one interface.
func (c *cmd) printIface(i *Iface) {
	flags := []string{}
	if i.Up {
		flags = append(flags, "UP")
	}
	switch i.Kind {
	case "lo":
		flags = append(flags, "LOOPBACK")
	default:
		flags = append(flags, "BROADCAST")
	}
	if i.Up {
		flags = append(flags, "RUNNING")
	}
	flags = append(flags, "SIMPLEX", "MULTICAST")
	c.out("%s: flags=%x<%s> metric 0 mtu %d\n", i.Name, 0x8843, strings.Join(flags, ","), i.MTU)
	for _, a := range i.Addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		if p.Addr().Is4() {
			m := ^uint32(0) << (32 - p.Bits())
			if p.Bits() == 0 {
				m = 0
			}
			if d := i.Dst[p.Addr().String()]; d != "" {
				c.out("\tinet %s netmask 0x%08x broadcast %s\n", p.Addr(), m, d)
			} else {
				c.out("\tinet %s netmask 0x%08x\n", p.Addr(), m)
			}
		} else {
			c.out("\tinet6 %s prefixlen %d\n", p.Addr(), p.Bits())
		}
	}
	if i.FIB != 0 {
		c.out("\tfib: %d\n", i.FIB)
	}
	if i.Kind == "lagg" {
		c.out("\tlaggproto %s lagghash l2,l3,l4\n", orNone(i.LaggProto))
		for n, p := range i.LaggPorts {
			fl := "4<ACTIVE>"
			if n == 0 {
				fl = "5<MASTER,ACTIVE>"
			}
			c.out("\tlaggport: %s flags=%s\n", p, fl)
		}
	}
	if i.Kind == "vlan" {
		c.out("\tvlan: %d vlanproto: 802.1q vlanpcp: 0 parent interface: %s\n", i.VlanTag, orNone(i.VlanDev))
	}
	for _, m := range i.Members {
		c.out("\tmember: %s flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n", m)
	}
	if i.Kind == "epair" || i.Kind == "nic" {
		c.out("\tmedia: Ethernet 10Gbase-T (10Gbase-T <full-duplex>)\n\tstatus: active\n")
	}
	if i.Kind == "wg" && i.WG != nil {
		c.out("\tgroups: wg\n")
	}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// numFibs is net.fibs.
func (c *cmd) numFibs() int {
	n, err := strconv.Atoi(c.sysctlValue("net.fibs"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// route implements route(8)'s add, delete, flush, get and show, with
// -fib, over the emulated routing tables.
func (c *cmd) route(args []string) int {
	quiet := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if strings.Contains(args[0], "q") {
			quiet = true
		}
		args = args[1:]
	}
	if len(args) == 0 {
		c.errf("usage: route [-46dnqtv] command [[modifiers] args]\n")
		return 64
	}
	verb := args[0]
	fib := 0
	var pos []string
	iface, kind := "", ""
	reject, blackhole := false, false
	for n := 1; n < len(args); n++ {
		a := args[n]
		switch a {
		case "-fib":
			if n+1 >= len(args) {
				c.errf("route: missing fib number\n")
				return 64
			}
			n++
			f, err := strconv.Atoi(args[n])
			if err != nil || f < 0 || f >= c.numFibs() {
				c.errf("route: fib %s not in range\n", args[n])
				return 64
			}
			fib = f
		case "-interface", "-iface":
			if n+1 < len(args) && len(pos) > 0 {
				// route add DEST -interface IF: IF is the gateway.
				n++
				iface = args[n]
			} else {
				iface = "-"
			}
		case "-net", "-host", "-inet", "-inet6", "-4", "-6", "-n", "-q", "-static", "-blackhole", "-reject":
			switch a {
			case "-net", "-host":
				kind = a[1:]
			case "-reject":
				reject = true
			case "-blackhole":
				blackhole = true
			}
		case "-netmask", "-mtu", "-expire", "-hopcount", "-weight":
			n++
		default:
			pos = append(pos, a)
		}
	}
	switch verb {
	case "add", "delete", "change":
		if len(pos) == 0 {
			c.errf("route: must supply destination\n")
			return 64
		}
		r := Route{Dest: routeDest(pos[0]), Vnet: c.jail, Reject: reject, Blackhole: blackhole}
		if len(pos) > 1 {
			r.Gateway = pos[1]
		}
		if iface == "-" && r.Gateway != "" {
			iface, r.Gateway = r.Gateway, ""
		}
		r.Iface = iface
		if kind == "" {
			kind = "net"
			if p, err := netip.ParsePrefix(r.Dest); err == nil && p.IsSingleIP() || isAddr(r.Dest) {
				kind = "host"
			}
		}
		gw := r.Gateway
		if r.Iface != "" {
			gw = r.Iface
		}
		what := fmt.Sprintf("%s %s %s: gateway %s", verb, kind, pos[0], gw)
		if fib != 0 {
			what += fmt.Sprintf(" fib %d", fib)
		}
		fail := func(msg string) int {
			c.errf("route: writing to routing socket: %s\n", msg)
			c.errf("%s: %s\n", what, routeMsg(msg))
			return 1
		}
		have := -1
		for n, x := range c.k.Routes[fib] {
			if x.Dest == r.Dest && x.Vnet == c.jail {
				have = n
			}
		}
		switch verb {
		case "add":
			if have >= 0 {
				return fail("File exists")
			}
			if r.Iface != "" {
				if c.iface(r.Iface) == nil {
					c.errf("route: bad address: %s\n", r.Iface)
					return 68
				}
			} else if r.Gateway == "" {
				c.errf("route: gateway required\n")
				return 64
			} else if !c.reachable(r.Gateway, fib) {
				return fail("Network is unreachable")
			}
			c.k.Routes[fib] = append(c.k.Routes[fib], r)
		case "change":
			if have < 0 {
				return fail("No such process")
			}
			c.k.Routes[fib][have] = r
		case "delete":
			if have < 0 {
				return fail("No such process")
			}
			c.k.Routes[fib] = slices.Delete(c.k.Routes[fib], have, have+1)
		}
		if !quiet {
			c.out("%s\n", what)
		}
		return 0
	case "flush":
		keep := c.k.Routes[fib][:0]
		for _, x := range c.k.Routes[fib] {
			if x.Vnet != c.jail {
				keep = append(keep, x)
				continue
			}
			if !quiet {
				c.out("%-20s %-20s done\n", x.Dest, x.Gateway+x.Iface)
			}
		}
		c.k.Routes[fib] = keep
		return 0
	case "get":
		if len(pos) == 0 {
			c.errf("route: must supply destination\n")
			return 64
		}
		return c.routeGet(pos[0], fib)
	case "show":
		return c.route(append([]string{"get"}, args[1:]...))
	}
	c.errf("route: %s: invalid command\n", verb)
	return 64
}

// routeGet prints what the kernel answers to RTM_GET for dst in fib: the
// most specific of the static routes and the interfaces' connected
// prefixes (sbin/route/route.c, print_getmsg: "route to", "destination",
// "mask" for a network, "gateway" only with RTF_GATEWAY, "fib",
// "interface", "flags"). Not found: "route: route has not been found",
// exit 1 (route.c, rtmsg: ESRCH).
func (c *cmd) routeGet(dst string, fib int) int {
	a, err := netip.ParseAddr(dst)
	if err != nil {
		c.errf("route: bad address: %s\n", dst)
		return 68
	}
	type match struct {
		dest   netip.Prefix
		r      Route
		ifname string
		conn   bool
	}
	var best *match
	consider := func(m match) {
		if m.dest.Contains(a) && (best == nil || m.dest.Bits() > best.dest.Bits()) {
			best = &m
		}
	}
	for _, r := range c.k.Routes[fib] {
		if r.Vnet != c.jail {
			continue
		}
		p, ok := routePrefix(r.Dest, a.Is4())
		if !ok {
			continue
		}
		ifname := r.Iface
		if ifname == "" {
			ifname = c.connectedIface(r.Gateway, fib)
		}
		consider(match{dest: p, r: r, ifname: ifname})
	}
	for _, i := range c.ifacesHere() {
		if !i.Up || i.FIB != fib {
			continue
		}
		for _, s := range i.Addrs {
			if p, err := netip.ParsePrefix(s); err == nil {
				consider(match{dest: p.Masked(), r: Route{Dest: p.Masked().String()}, ifname: i.Name, conn: true})
			}
		}
	}
	if best == nil {
		c.errf("route: route has not been found\n")
		return 1
	}
	c.out("   route to: %s\n", a)
	dest := best.dest.Addr().String()
	if best.dest.Bits() == 0 {
		dest = "default"
	}
	c.out("destination: %s\n", dest)
	if a.Is4() && best.dest.Bits() < 32 {
		var b [4]byte
		for k := 0; k < best.dest.Bits(); k++ {
			b[k/8] |= 0x80 >> (k % 8)
		}
		if best.dest.Bits() == 0 {
			c.out("       mask: default\n")
		} else {
			c.out("       mask: %s\n", netip.AddrFrom4(b))
		}
	}
	flags := []string{"UP"}
	if !best.conn && best.r.Gateway != "" {
		flags = append(flags, "GATEWAY")
		c.out("    gateway: %s\n", best.r.Gateway)
	}
	if best.dest.IsSingleIP() {
		flags = append(flags, "HOST")
	}
	if best.r.Reject {
		flags = append(flags, "REJECT")
	}
	flags = append(flags, "DONE")
	if best.conn {
		flags = append(flags, "PINNED")
	} else {
		flags = append(flags, "STATIC")
	}
	if best.r.Blackhole {
		flags = append(flags, "BLACKHOLE")
	}
	c.out("        fib: %d\n", fib)
	if best.ifname != "" {
		c.out("  interface: %s\n", best.ifname)
	}
	c.out("      flags: <%s>\n", strings.Join(flags, ","))
	c.out(" recvpipe  sendpipe  ssthresh  rtt,msec    mtu        weight    expire\n")
	mtu := 1500
	if i := c.iface(best.ifname); i != nil {
		mtu = i.MTU
	}
	c.out("       0         0         0         0  %8d         1         0\n", mtu)
	return 0
}

// routePrefix reads a route's destination as a prefix of the family of
// the address looked up ("default", a/len or a host).
func routePrefix(dest string, v4 bool) (netip.Prefix, bool) {
	if dest == "default" {
		if v4 {
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
	}
	if p, err := netip.ParsePrefix(dest); err == nil {
		return p.Masked(), p.Addr().Is4() == v4
	}
	if a, err := netip.ParseAddr(dest); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), a.Is4() == v4
	}
	return netip.Prefix{}, false
}

// connectedIface is the interface whose connected prefix holds gw (the
// interface a gateway route leaves by), or "".
func (c *cmd) connectedIface(gw string, fib int) string {
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return ""
	}
	best, bits := "", -1
	for _, i := range c.ifacesHere() {
		if !i.Up || i.FIB != fib && fib != 0 {
			continue
		}
		for _, s := range i.Addrs {
			if p, err := netip.ParsePrefix(s); err == nil && p.Masked().Contains(a) && p.Bits() > bits {
				best, bits = i.Name, p.Bits()
			}
		}
	}
	return best
}

func routeMsg(sockErr string) string {
	if sockErr == "File exists" {
		return "route already in table"
	}
	return sockErr
}

func routeDest(s string) string {
	if s == "0.0.0.0/0" || s == "0.0.0.0" {
		return "default"
	}
	return s
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// reachable: gw is on a subnet of an interface that is up here (and in
// fib, as the kernel looks the gateway up in the route's FIB).
func (c *cmd) reachable(gw string, fib int) bool {
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return false
	}
	for _, i := range c.ifacesHere() {
		if !i.Up || i.FIB != fib && fib != 0 {
			continue
		}
		for _, s := range i.Addrs {
			if p, err := netip.ParsePrefix(s); err == nil && p.Masked().Contains(a) {
				return true
			}
		}
	}
	return false
}

// sysctlDefaults are the OIDs the emulated kernel knows, with their
// values at boot. Read-only ones are in sysctlRO.
var sysctlDefaults = map[string]string{
	"kern.ostype":                     "FreeBSD",
	"kern.osrelease":                  "14.3-RELEASE",
	"kern.hostname":                   "",
	"kern.securelevel":                "-1",
	"net.fibs":                        "1",
	"net.inet.ip.forwarding":          "0",
	"net.inet6.ip6.forwarding":        "0",
	"net.inet.ip.fw.enable":           "1",
	"net.inet.tcp.blackhole":          "0",
	"net.inet.udp.blackhole":          "0",
	"net.inet.ip.random_id":           "0",
	"net.inet.tcp.drop_synfin":        "0",
	"net.link.bridge.pfil_member":     "1",
	"net.link.bridge.pfil_bridge":     "0",
	"net.link.bridge.pfil_onlyip":     "1",
	"net.link.tap.up_on_open":         "0",
	"net.add_addr_allfibs":            "0",
	"security.bsd.see_other_uids":     "1",
	"security.jail.allow_raw_sockets": "0",
	"kern.ipc.somaxconn":              "128",
	"kern.randompid":                  "0",
	"vfs.zfs.arc_max":                 "0",
	"kern.boottime":                   "",
}

var sysctlRO = map[string]bool{"kern.ostype": true, "kern.osrelease": true, "kern.boottime": true}

func (c *cmd) sysctlValue(name string) string {
	if name == "kern.boottime" {
		t := c.k.Booted
		return fmt.Sprintf("{ sec = %d, usec = %d } %s", t.Unix(), t.Nanosecond()/1000, t.UTC().Format(time.ANSIC))
	}
	if v, ok := c.k.Sysctls[name]; ok {
		return v
	}
	return sysctlDefaults[name]
}

// sysctl implements sysctl(8): NAME, -n NAME, NAME=VALUE, -f FILE, -i.
// Messages from sbin/sysctl/sysctl.c (parse, parsefile):
// `sysctl: unknown oid 'X'`, `... at line N` with -f.
func (c *cmd) sysctl(args []string) int {
	noName, ignore := false, false
	file := ""
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		for _, f := range a[1:] {
			switch f {
			case 'n':
				noName = true
			case 'i':
				ignore = true
			case 'q':
			case 'f':
				if len(args) == 0 {
					c.errf("sysctl: option requires an argument -- f\n")
					return 1
				}
				file, args = args[0], args[1:]
			}
		}
	}
	if file != "" {
		b, err := os.ReadFile(c.argPath(file))
		if err != nil {
			c.errf("sysctl: %s: %s\n", file, errText(err))
			return 1
		}
		code := 0
		for n, ln := range strings.Split(string(b), "\n") {
			if i := strings.IndexByte(ln, '#'); i >= 0 {
				ln = ln[:i]
			}
			ln = strings.TrimSpace(ln)
			if ln == "" {
				continue
			}
			if !strings.Contains(ln, "=") {
				c.errf("sysctl: %s at line %d\n", "Can't parse "+ln, n+1)
				code = 1
				continue
			}
			if r := c.sysctlSet(ln, noName, ignore, fmt.Sprintf(" at line %d", n+1)); r != 0 {
				code = r
			}
		}
		return code
	}
	if len(args) == 0 {
		c.errf("usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n")
		return 1
	}
	code := 0
	for _, a := range args {
		if strings.Contains(a, "=") {
			if r := c.sysctlSet(a, noName, ignore, ""); r != 0 {
				code = r
			}
			continue
		}
		if _, ok := sysctlDefaults[a]; !ok {
			if _, ok := c.k.Sysctls[a]; !ok {
				if !ignore {
					c.errf("sysctl: unknown oid '%s'\n", a)
					code = 1
				}
				continue
			}
		}
		if noName {
			c.out("%s\n", c.sysctlValue(a))
		} else {
			c.out("%s: %s\n", a, c.sysctlValue(a))
		}
	}
	return code
}

func (c *cmd) sysctlSet(kv string, noName, ignore bool, where string) int {
	name, val, _ := strings.Cut(kv, "=")
	name, val = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"`)
	if _, ok := sysctlDefaults[name]; !ok {
		if ignore {
			return 0
		}
		c.errf("sysctl: unknown oid '%s'%s\n", name, where)
		return 1
	}
	if sysctlRO[name] {
		c.errf("sysctl: oid '%s' is read only%s\n", name, where)
		return 1
	}
	if _, err := strconv.Atoi(sysctlDefaults[name]); err == nil && sysctlDefaults[name] != "" {
		if _, err := strconv.Atoi(val); err != nil {
			c.errf("sysctl: invalid integer '%s'%s\n", val, where)
			return 1
		}
	}
	if name == "net.fibs" {
		// net.fibs can only grow at run time (sys/net/route/route_tables.c).
		if n, _ := strconv.Atoi(val); n < c.numFibs() || n > 65536 {
			c.errf("sysctl: net.fibs=%s: Invalid argument%s\n", val, where)
			return 1
		}
	}
	old := c.sysctlValue(name)
	c.k.Sysctls[name] = val
	if noName {
		c.out("%s\n", val)
	} else {
		c.out("%s: %s -> %s\n", name, old, val)
	}
	return 0
}

// knownModules are the kernel modules the emulated host can load.
var knownModules = map[string]bool{"pf": true, "pflog": true, "pfsync": true, "if_wg": true, "if_epair": true, "if_bridge": true, "if_lagg": true, "if_vlan": true, "if_tuntap": true, "if_gif": true, "bridgestp": true}

// kldload implements kldload(8): -n succeeds quietly when the module is
// already loaded; without it that is an error (sbin/kldload/kldload.c).
func (c *cmd) kldload(args []string) int {
	quiet, already := false, false
	var mods []string
	for _, a := range args {
		switch a {
		case "-n":
			already = true
		case "-q":
			quiet = true
		case "-v":
		default:
			mods = append(mods, strings.TrimSuffix(a, ".ko"))
		}
	}
	if c.jail != "" {
		c.errf("kldload: can't load %s: Operation not permitted\n", strings.Join(mods, " "))
		return 1
	}
	code := 0
	for _, m := range mods {
		if c.k.hasModule(m) {
			if already {
				continue
			}
			if !quiet {
				c.errf("kldload: can't load %s: module already loaded or in kernel\n", m)
			}
			code = 1
			continue
		}
		if !knownModules[m] {
			if !quiet {
				c.errf("kldload: can't load %s: No such file or directory\n", m)
			}
			code = 1
			continue
		}
		c.k.Modules = append(c.k.Modules, m)
		sort.Strings(c.k.Modules)
	}
	return code
}

// kldstat -q -m NAME: exit 0 when loaded.
func (c *cmd) kldstat(args []string) int {
	for n, a := range args {
		if a == "-m" && n+1 < len(args) {
			if c.k.hasModule(args[n+1]) {
				return 0
			}
			return 1
		}
	}
	for _, m := range c.k.Modules {
		c.out("%s.ko\n", m)
	}
	return 0
}

func errText(err error) string {
	if os.IsNotExist(err) {
		return "No such file or directory"
	}
	if os.IsPermission(err) {
		return "Permission denied"
	}
	return err.Error()
}
