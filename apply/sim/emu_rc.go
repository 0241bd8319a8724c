package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// rcDefaults are the /etc/defaults/rc.conf values the emulated rc.d
// scripts read.
var rcDefaults = map[string]string{
	"pf_rules":         "/etc/pf.conf",
	"pf_flags":         "",
	"jail_conf":        "/etc/jail.conf",
	"cron_enable":      "YES",
	"syslogd_enable":   "YES",
	"ifconfig_lo0":     "inet 127.0.0.1",
	"spiped_uid":       "spiped",
	"wireguard_enable": "NO",
}

// baseScripts are the rc.d scripts of the base system and of the ports
// the emulated host has installed; a script file under the context's
// /etc/rc.d or /usr/local/etc/rc.d counts as installed too.
var baseScripts = map[string]bool{
	"jail": true, "pf": true, "pflog": true, "netif": true, "routing": true, "sysctl": true,
	"sshd": true, "cron": true, "syslogd": true, "ntpd": true, "devd": true, "hostname": true,
	"spiped": true, "wireguard": true, "postgresql": true, "nginx": true, "fail2ban": true,
}

// rcCtx is where an rc script runs: the host or a jail.
type rcCtx struct {
	jail *Jail  // nil: the host
	root string // real directory of the context's /
	vars *rcVars
}

// rcContext loads the rc.conf of where c runs.
func (c *cmd) rcContext() (*rcCtx, error) {
	x := &rcCtx{root: c.h.root}
	if c.jail != "" {
		x.jail = c.k.Jails[c.jail]
		x.root = hostPath(c.h.root, x.jail.Path)
	}
	v, err := loadRC(x.root)
	if err != nil {
		return nil, err
	}
	x.vars = v
	return x, nil
}

// loadRC reads /etc/rc.conf and /etc/rc.conf.local under root over the
// defaults, as rc.subr's load_rc_config sources them.
func loadRC(root string) (*rcVars, error) {
	v := &rcVars{root: root, raw: rcconf.Vars{}, file: "/etc/rc.conf"}
	for k, val := range rcDefaults {
		v.raw[k] = val
	}
	for _, f := range []string{"/etc/rc.conf", "/etc/rc.conf.local"} {
		src, err := os.ReadFile(hostPath(root, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if errs := rcconf.Check(f, src); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		vars, err := rcconf.Parse(f, src)
		if err != nil {
			return nil, err
		}
		for k, val := range vars {
			v.raw[k] = val
		}
	}
	return v, nil
}

// services returns the running-services map of the context.
func (c *cmd) servicesOf(x *rcCtx) map[string]*Service {
	owner := x.jail
	if owner == nil {
		if c.k.Host == nil {
			c.k.Host = &Jail{Name: hostOwner, Path: "/"}
		}
		owner = c.k.Host
	}
	if owner.Services == nil {
		owner.Services = map[string]*Service{}
	}
	return owner.Services
}

const hostOwner = "host"

func (x *rcCtx) owner() string {
	if x.jail == nil {
		return hostOwner
	}
	return x.jail.Name
}

// service implements service(8): [-j JAIL] NAME ACTION [ARGS], through
// the rc.subr semantics of run_rc_command (libexec/rc/rc.subr): a
// service whose rcvar is not YES is not started, stopped or restarted;
// rc.subr says so and returns 0 (FREEBSD.md errata 2).
func (c *cmd) service(args []string) int {
	if len(args) >= 2 && args[0] == "-j" {
		return c.jexec(append([]string{args[1], "service"}, args[2:]...))
	}
	if len(args) < 2 {
		c.errf("usage: service [-j <jail name or id>] <rc.d script> start|stop|etc.\n")
		return 1
	}
	name, action, rest := args[0], args[1], args[2:]
	x, err := c.rcContext()
	if err != nil {
		c.errf("%v\n", err)
		return 2
	}
	if !c.scriptExists(x, name) {
		c.errf("%s does not exist in /etc/rc.d or the local startup directories (/usr/local/etc/rc.d), or is not executable.\n", name)
		return 1
	}
	return c.rcRun(x, name, action, rest)
}

func (c *cmd) scriptExists(x *rcCtx, name string) bool {
	if baseScripts[name] {
		return true
	}
	for _, d := range []string{"/etc/rc.d/", "/usr/local/etc/rc.d/"} {
		if executable(hostPath(x.root, d+name)) {
			return true
		}
	}
	return false
}

// rcvarOf is the script's rcvar ("" for scripts without one).
func rcvarOf(name string) string {
	switch name {
	case "netif", "routing", "sysctl", "hostname", "devd":
		return ""
	}
	return name + "_enable"
}

// rcRun is run_rc_command for one script and action.
func (c *cmd) rcRun(x *rcCtx, name, action string, args []string) int {
	base := action
	pre := ""
	for _, p := range []string{"one", "force", "quiet"} {
		if strings.HasPrefix(base, p) {
			pre, base = p, strings.TrimPrefix(base, p)
		}
	}
	running := c.running(x, name)
	if rv := rcvarOf(name); rv != "" && pre != "one" && pre != "force" && base != "rcvar" && base != "enabled" && !(base == "stop" && running) {
		if !x.vars.yes(rv) {
			if pre == "quiet" {
				return 0
			}
			c.out("Cannot '%s' %s. Set %s to YES in /etc/rc.conf or use 'one%s' instead of '%s'.\n", action, name, rv, action, action)
			return 0
		}
	}
	switch base {
	case "enabled":
		if rv := rcvarOf(name); rv == "" || x.vars.yes(rv) {
			return 0
		}
		return 1
	case "rcvar":
		c.out("# %s\n#\n%s=\"%s\"\n", name, rcvarOf(name), x.vars.raw[rcvarOf(name)])
		return 0
	case "start":
		return c.rcStart(x, name, args)
	case "stop":
		return c.rcStop(x, name, args)
	case "restart":
		if code := c.rcStop(x, name, args); code != 0 && custom(name) {
			return code
		}
		return c.rcStart(x, name, args)
	case "reload":
		return c.rcReload(x, name, args)
	case "status":
		return c.rcStatus(x, name)
	case "check":
		if name == "pf" {
			return c.run([]string{"pfctl", "-n", "-f", c.jailPath(x.vars.raw["pf_rules"])})
		}
	}
	c.errf("/etc/rc.d/%s: unknown directive '%s'.\n", name, action)
	return 1
}

// custom: scripts with their own start/stop, whose restart stops at a
// failed stop like rc.subr's does for them.
func custom(name string) bool {
	switch name {
	case "jail", "pf", "netif", "routing", "sysctl", "wireguard", "spiped":
		return false
	}
	return false
}

func (c *cmd) running(x *rcCtx, name string) bool {
	switch name {
	case "pf":
		return c.k.PF.Enabled
	case "jail", "netif", "routing", "sysctl":
		return true
	}
	_, ok := c.servicesOf(x)[name]
	return ok
}

func (c *cmd) rcStart(x *rcCtx, name string, args []string) int {
	switch name {
	case "jail":
		return c.jailStart(x, args)
	case "pf":
		return c.pfStart(x)
	case "netif":
		return c.netifStart(x, args)
	case "routing":
		return c.routingStart(x)
	case "sysctl":
		return c.sysctlStart(x)
	case "wireguard":
		return c.wireguardStart(x)
	}
	svcs := c.servicesOf(x)
	if s := svcs[name]; s != nil {
		c.errf("%s already running? (pid=%d).\n", name, s.PID)
		return 1
	}
	if name == "pflog" {
		if c.run([]string{"kldload", "-n", "pflog"}) != 0 {
			return 1
		}
		if c.iface("pflog0") == nil {
			c.k.putIface(&Iface{Name: "pflog0", Kind: "pflog", MTU: 33184, Up: true, Unit: "pflog0"})
		}
	}
	c.out("Starting %s.\n", name)
	s := &Service{Name: name, PID: c.nextPID()}
	svcs[name] = s
	procs, err := c.startDaemons(x, name)
	s.Procs = procs
	if len(procs) > 0 {
		s.PID = procs[0].PID
	}
	if err != nil {
		// A daemon that dies at start: rc.subr reports the failure.
		c.errf("%v\n", err)
		if len(procs) == 0 {
			delete(svcs, name)
		}
		return 1
	}
	return 0
}

func (c *cmd) rcStop(x *rcCtx, name string, args []string) int {
	switch name {
	case "jail":
		return c.jailStop(x, args)
	case "pf":
		if c.k.PF.Enabled {
			c.out("Disabling pf")
			c.run([]string{"pfctl", "-dq"})
			c.out(".\n")
		}
		return 0
	case "netif":
		return c.netifStop(x, args)
	case "routing":
		return c.run([]string{"route", "-n", "flush"})
	case "sysctl":
		return 0
	case "wireguard":
		for _, ifn := range strings.Fields(mustGet(x.vars, "wireguard_interfaces")) {
			c.run([]string{"wg-quick", "down", ifn})
		}
		return 0
	}
	svcs := c.servicesOf(x)
	s := svcs[name]
	if s == nil {
		c.errf("%s not running? (check /var/run/%s.pid).\n", name, name)
		return 1
	}
	c.out("Stopping %s.\n", name)
	if err := terminateAll(append(s.Procs, strays(c.h.root, x.owner(), name)...)); err != nil {
		c.errf("%v\n", err)
	}
	delete(svcs, name)
	if name == "pflog" {
		if i := c.iface("pflog0"); i != nil {
			c.k.delIface(i)
		}
	}
	return 0
}

func (c *cmd) rcReload(x *rcCtx, name string, args []string) int {
	switch name {
	case "pf":
		c.out("Reloading pf rules.\n")
		conf := c.jailPath(x.vars.raw["pf_rules"])
		if c.run([]string{"pfctl", "-n", "-f", conf}) != 0 {
			return 1
		}
		return c.run([]string{"pfctl", "-f", conf})
	case "sysctl":
		return c.sysctlStart(x)
	case "wireguard":
		code := 0
		for _, ifn := range strings.Fields(mustGet(x.vars, "wireguard_interfaces")) {
			if c.wgReload(ifn) != 0 {
				code = 1
			}
		}
		return code
	}
	if !c.running(x, name) {
		c.errf("%s not running? (check /var/run/%s.pid).\n", name, name)
		return 1
	}
	return 0
}

func (c *cmd) rcStatus(x *rcCtx, name string) int {
	switch name {
	case "pf":
		if !c.k.hasModule("pf") {
			c.out("pf.ko is not loaded\n")
			return 1
		}
		c.run([]string{"pfctl", "-s", "info"})
		return 0
	case "jail":
		return c.run([]string{"jls", "-N"})
	}
	if s := c.servicesOf(x)[name]; s != nil {
		for _, p := range s.Procs {
			if !alive(p) {
				c.out("%s is not running.\n", name)
				return 1
			}
		}
		c.out("%s is running as pid %d.\n", name, s.PID)
		return 0
	}
	c.out("%s is not running.\n", name)
	return 1
}

func (c *cmd) nextPID() int {
	c.k.NextPID++
	return 10000 + c.k.NextPID
}

func mustGet(v *rcVars, name string) string {
	s, _ := v.get(name)
	return s
}

// jailConfFor is rc.d/jail's lookup of a named jail's config (FREEBSD.md
// 4.4 and errata 5): jail_NAME_conf, /etc/jail.NAME.conf,
// /etc/jail.conf.d/NAME.conf, then $jail_conf.
func (c *cmd) jailConfFor(x *rcCtx, name string) string {
	if v := mustGet(x.vars, "jail_"+name+"_conf"); v != "" {
		return v
	}
	for _, p := range []string{"/etc/jail." + name + ".conf", "/etc/jail.conf.d/" + name + ".conf"} {
		if _, err := os.Stat(hostPath(x.root, p)); err == nil {
			return p
		}
	}
	return mustGet(x.vars, "jail_conf")
}

// jailNames is what `service jail start` without names starts: jail_list,
// else every jail of jail.conf in file order.
func (c *cmd) jailNames(x *rcCtx) []string {
	if l := strings.Fields(mustGet(x.vars, "jail_list")); len(l) > 0 {
		return l
	}
	cfg, err := c.readJailConf(hostPath(x.root, mustGet(x.vars, "jail_conf")))
	if err != nil {
		return nil
	}
	return cfg.Names()
}

// jailStart is rc.d/jail's jail_start: `jail -i -f CONF -c NAME` per
// jail, its output kept; success prints the name, failure
// ` cannot start jail  "NAME": ` and jail(8)'s output (two spaces: echo
// joins its arguments, FREEBSD.md errata 4). It exits 0 either way.
func (c *cmd) jailStart(x *rcCtx, names []string) int {
	if len(names) == 0 {
		names = c.jailNames(x)
	}
	c.out("Starting jails:")
	for _, n := range names {
		if j := c.k.Jails[n]; j != nil && !j.Dying {
			c.out(" %s already exists", n)
			continue
		}
		conf := c.jailConfFor(x, n)
		sub := &cmd{h: c.h, k: c.k, ctx: c.ctx, inRoot: true}
		code := sub.run([]string{"jail", "-i", "-f", hostPath(x.root, conf), "-c", n})
		if code == 0 {
			c.out(" %s", n)
			continue
		}
		c.out(" cannot start jail  \"%s\": \n", n)
		c.out("%s%s", sub.stdout.String(), sub.stderr.String())
	}
	c.out(".\n")
	return 0
}

// jailStop is rc.d/jail's jail_stop: `jail -q -f CONF -r NAME` for each
// running jail named (all if none, in reverse with jail_reverse_stop).
func (c *cmd) jailStop(x *rcCtx, names []string) int {
	if len(names) == 0 {
		for _, j := range c.k.Jails {
			if !j.Dying {
				names = append(names, j.Name)
			}
		}
		sort.Slice(names, func(a, b int) bool { return c.k.Jails[names[a]].JID > c.k.Jails[names[b]].JID })
	}
	c.out("Stopping jails:")
	for _, n := range names {
		j := c.k.Jails[n]
		if j == nil || j.Dying {
			continue
		}
		conf := c.jailConfFor(x, n)
		sub := &cmd{h: c.h, k: c.k, ctx: c.ctx, inRoot: true}
		if sub.run([]string{"jail", "-q", "-f", hostPath(x.root, conf), "-r", n}) == 0 {
			c.out(" %s", n)
		} else {
			c.out(" cannot stop jail %s: %s", n, strings.TrimSpace(sub.stderr.String()))
		}
	}
	c.out(".\n")
	return 0
}

// pfStart is rc.d/pf's pf_start: load pf.ko, flush everything, load the
// rules, enable unless enabled.
func (c *cmd) pfStart(x *rcCtx) int {
	conf := x.vars.raw["pf_rules"]
	if _, err := os.Stat(hostPath(x.root, conf)); err != nil {
		c.errf("/etc/rc.d/pf: WARNING: %s is not readable.\n", conf)
		return 1
	}
	if c.run([]string{"kldload", "-n", "pf"}) != 0 {
		return 1
	}
	c.out("Enabling pf")
	c.run([]string{"pfctl", "-q", "-F", "all"})
	if c.run([]string{"pfctl", "-f", hostPath(x.root, conf)}) != 0 {
		c.out(".\n")
		return 1
	}
	if !c.k.PF.Enabled {
		c.run([]string{"pfctl", "-q", "-e"})
	}
	c.out(".\n")
	return 0
}

// sysctlStart is rc.d/sysctl: `sysctl -i -f /etc/sysctl.conf >/dev/null`
// when readable; it cannot fail (FREEBSD.md errata 7).
func (c *cmd) sysctlStart(x *rcCtx) int {
	f := hostPath(x.root, "/etc/sysctl.conf")
	if _, err := os.Stat(f); err == nil {
		sub := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: c.jail, inRoot: true}
		sub.run([]string{"sysctl", "-i", "-f", f})
	}
	return 0
}

// ifVar is an interface's name in rc.conf variables (dots and dashes
// become underscores).
func ifVar(name string) string { return strings.NewReplacer(".", "_", "-", "_").Replace(name) }

// netifStart is rc.d/netif's start: clone_up, ifnet_rename, ifn_start,
// for every interface or only those named.
func (c *cmd) netifStart(x *rcCtx, only []string) int {
	v := x.vars
	want := func(n string) bool { return len(only) == 0 || slices.Contains(only, n) }
	sub := func(argv ...string) int {
		s := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: c.jail, inRoot: true}
		code := s.run(argv)
		c.stderr.WriteString(s.stderr.String())
		return code
	}
	var created []string
	if c.jail == "" {
		for _, cl := range strings.Fields(mustGet(v, "cloned_interfaces")) {
			if len(only) > 0 && !c.cloneWanted(v, cl, only) {
				continue
			}
			if sub(append([]string{"ifconfig", cl, "create"}, strings.Fields(mustGet(v, "create_args_"+ifVar(cl)))...)...) == 0 {
				created = append(created, cl)
			}
		}
		for _, k := range sortedVarKeys(v, "vlans_") {
			parent := strings.TrimPrefix(k, "vlans_")
			for _, vl := range strings.Fields(mustGet(v, k)) {
				name := vl
				args := strings.Fields(mustGet(v, "create_args_"+ifVar(vl)))
				if isDigits(vl) {
					name = parent + "." + vl
				}
				if !want(name) {
					continue
				}
				sub(append([]string{"ifconfig", name, "create"}, args...)...)
			}
		}
	}
	// ifnet_rename
	for _, i := range c.ifacesHere() {
		if to := mustGet(v, "ifconfig_"+ifVar(i.Name)+"_name"); to != "" && (len(only) == 0 || want(i.Name) || want(to) || slices.Contains(created, i.Unit) || slices.Contains(created, i.Name)) {
			sub("ifconfig", i.Name, "name", to)
		}
	}
	for _, i := range c.ifacesHere() {
		if !want(i.Name) && !slices.Contains(created, i.Unit) {
			continue
		}
		c.ifnStart(v, i.Name, sub)
	}
	return 0
}

// cloneWanted: the cloned interface cl (as cloned_interfaces names it)
// is, or is renamed to, one of only.
func (c *cmd) cloneWanted(v *rcVars, cl string, only []string) bool {
	names := []string{cl}
	if strings.HasPrefix(cl, "epair") {
		names = []string{cl + "a", cl + "b"}
	}
	for _, n := range names {
		if slices.Contains(only, n) || slices.Contains(only, mustGet(v, "ifconfig_"+ifVar(n)+"_name")) {
			return true
		}
	}
	return false
}

// ifnStart configures one interface from ifconfig_IF, its aliases and
// ifconfig_IF_ipv6 (rc.d/netif ifn_start, network.subr ifconfig_up).
func (c *cmd) ifnStart(v *rcVars, name string, sub func(...string) int) {
	iv := ifVar(name)
	val := mustGet(v, "ifconfig_"+iv)
	any := false
	if val != "" {
		var words []string
		for _, w := range strings.Fields(val) {
			switch strings.ToUpper(w) {
			case "DHCP", "SYNCDHCP", "NOSYNCDHCP", "WPA", "NOAUTO", "HOSTAP":
				continue
			}
			words = append(words, w)
		}
		if len(words) > 0 {
			sub(append([]string{"ifconfig", name}, words...)...)
		}
		any = true
	}
	for n := 0; ; n++ {
		a := mustGet(v, fmt.Sprintf("ifconfig_%s_alias%d", iv, n))
		if a == "" {
			break
		}
		sub(append(append([]string{"ifconfig", name}, strings.Fields(a)...), "alias")...)
		any = true
	}
	if a := mustGet(v, "ifconfig_"+iv+"_ipv6"); a != "" {
		sub(append([]string{"ifconfig", name}, strings.Fields(a)...)...)
		any = true
	}
	if any {
		sub("ifconfig", name, "up")
	}
}

// netifStop is rc.d/netif's stop: addresses removed and interfaces down,
// then the cloned ones destroyed (an epair with both ends, FREEBSD.md
// 5.3 and errata 12).
func (c *cmd) netifStop(x *rcCtx, only []string) int {
	cloned := strings.Fields(mustGet(x.vars, "cloned_interfaces"))
	for _, i := range c.ifacesHere() {
		if len(only) > 0 && !slices.Contains(only, i.Name) {
			continue
		}
		if i.Kind == "lo" {
			continue
		}
		i.Addrs, i.Up = nil, false
		if c.jail == "" && i.Unit != "" && (slices.Contains(cloned, i.Unit) || slices.Contains(cloned, i.Name)) {
			c.k.destroyIface(i)
		}
	}
	return 0
}

func sortedVarKeys(v *rcVars, prefix string) []string {
	var out []string
	for k := range v.raw {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// routingStart is rc.d/routing's start: the default routes, static
// routes, and gateway_enable's forwarding sysctl.
func (c *cmd) routingStart(x *rcCtx) int {
	v := x.vars
	sub := func(argv ...string) {
		s := &cmd{h: c.h, k: c.k, ctx: c.ctx, jail: c.jail, inRoot: true}
		s.run(argv)
		c.stdout.WriteString(s.stdout.String())
		c.stderr.WriteString(s.stderr.String())
	}
	if gw := mustGet(v, "defaultrouter"); gw != "" && gw != "NO" {
		sub("route", "add", "default", gw)
	}
	if gw := mustGet(v, "ipv6_defaultrouter"); gw != "" && gw != "NO" {
		sub("route", "add", "-inet6", "default", gw)
	}
	for _, r := range strings.Fields(mustGet(v, "static_routes")) {
		name, _, _ := strings.Cut(r, ":")
		if args := strings.Fields(mustGet(v, "route_"+name)); len(args) > 0 {
			sub(append([]string{"route", "add"}, args...)...)
		}
	}
	if c.jail == "" {
		if v.yes("gateway_enable") {
			sub("sysctl", "net.inet.ip.forwarding=1")
		}
		if v.yes("ipv6_gateway_enable") {
			sub("sysctl", "net.inet6.ip6.forwarding=1")
		}
	}
	return 0
}

// addrsOf lists the addresses services in the context bind: the jail's
// (or host's) interface addresses, loopback excluded, or a non-vnet
// jail's ip4.addr.
func (c *cmd) addrsOf(x *rcCtx) []string {
	vnet := ""
	if x.jail != nil {
		if !x.jail.Vnet {
			return x.jail.IPv4
		}
		vnet = x.jail.Name
	}
	var out []string
	var ifs []*Iface
	for _, i := range c.k.Ifaces {
		if i.Vnet == vnet && i.Kind != "lo" && i.Up {
			ifs = append(ifs, i)
		}
	}
	sort.Slice(ifs, func(a, b int) bool { return ifs[a].Name < ifs[b].Name })
	for _, i := range ifs {
		for _, a := range i.Addrs {
			out = append(out, addrOnly(a))
		}
	}
	return out
}

// startDaemons starts the real processes that stand for a service:
// spiped pipes, the PostgreSQL and nginx stand-ins, and what a local rc.d
// script starts.
func (c *cmd) startDaemons(x *rcCtx, name string) ([]Proc, error) {
	var specs []svcSpec
	switch name {
	case "spiped", "postgresql", "nginx", "sshd":
		var err error
		if specs, err = c.h.services(x.root, x.vars, c.addrsOf(x), name); err != nil {
			return nil, err
		}
	default:
		file := c.localScript(x, name)
		if file == "" {
			return nil, nil
		}
		spec, err := c.scriptSpec(x, name, file) // rcscript.go
		if err != nil {
			return nil, err
		}
		specs = []svcSpec{spec}
	}
	var procs []Proc
	var errs []error
	for _, sp := range specs {
		p, err := c.h.start(x.owner(), sp)
		if errors.Is(err, errSkipped) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		procs = append(procs, p)
	}
	return procs, errors.Join(errs...)
}

// jailRC is what exec.start's `/bin/sh /etc/rc` does in a jail: netif on
// the jail's interfaces, routing, then the services its rc.conf enables,
// in rcorder's order for those rigger knows.
func (c *cmd) jailRC(j *Jail) {
	x, err := c.rcContext()
	if err != nil {
		c.errf("/etc/rc: %v\n", err)
		return
	}
	c.netifStart(x, nil)
	c.routingStart(x)
	c.startEnabled(x)
}

// startEnabled starts every installed script whose rcvar is YES, the
// ones rigger knows in rcorder's order first.
func (c *cmd) startEnabled(x *rcCtx) {
	order := []string{"syslogd", "pflog", "spiped", "wireguard", "sshd", "cron", "postgresql", "nginx"}
	var rest []string
	for _, k := range sortedVarKeys(x.vars, "") {
		if n, ok := strings.CutSuffix(k, "_enable"); ok && !slices.Contains(order, n) {
			switch n {
			case "jail", "pf", "netif", "routing", "gateway", "ipv6_gateway", "sysctl":
				continue
			}
			rest = append(rest, n)
		}
	}
	for _, n := range append(order, rest...) {
		if !x.vars.yes(rcvarOf(n)) || !c.scriptExists(x, n) || c.running(x, n) {
			continue
		}
		c.rcStart(x, n, nil)
	}
}

// jailShutdown is rc.shutdown in a jail: its services stop.
func (c *cmd) jailShutdown(j *Jail) {
	if j == nil {
		return
	}
	var procs []Proc
	for _, s := range j.Services {
		procs = append(procs, s.Procs...)
	}
	terminateAll(append(procs, strays(c.h.root, j.Name, "")...))
	j.Services = nil
}

// BootLog is where Boot writes the console output, under the root.
const BootLog = "var/log/rigger-sim-boot.log"

// Boot is an emulated power cycle: every process stops and the kernel
// forgets everything, then /etc/rc runs: sysctl.conf, the NICs the
// machine has, netif (clones, renames, addresses), pf, pflog, routing,
// the services, the jails in order. It returns the console output.
//
// The machine's NICs: every hardware-looking interface name (em0,
// vtnet0) that the host's rc.conf configures, renames or uses as a
// member exists from power-on, as a machine has its cards whatever its
// config says; cloned interfaces exist only once created.
func (h *Host) Boot() (string, error) {
	var console string
	err := h.withKernel(func(k *Kernel) error {
		old := *k
		c := &cmd{h: h, k: k, inRoot: true}
		c.powerOff()
		nk := newKernel()
		nk.Booted = nowUTC()
		nk.NextJID = old.NextJID
		nk.NextPID = old.NextPID
		*k = *nk
		c.k = k
		x, err := c.rcContext()
		if err != nil {
			c.errf("/etc/rc: %v\n", err)
			console = c.stdout.String() + c.stderr.String()
			return err
		}
		for _, m := range strings.Fields(mustGet(x.vars, "kld_list")) {
			c.run([]string{"kldload", "-n", m})
		}
		c.sysctlStart(x)
		for _, n := range nicsIn(x.vars) {
			if k.Ifaces[n] == nil {
				k.putIface(&Iface{Name: n, Kind: "nic", MTU: 1500})
			}
		}
		c.netifStart(x, nil)
		if x.vars.yes("pf_enable") {
			c.pfStart(x)
		}
		c.routingStart(x)
		c.startEnabled(x)
		if x.vars.yes("jail_enable") {
			c.jailStart(x, nil)
		}
		console = c.stdout.String() + c.stderr.String()
		return nil
	})
	if werr := os.MkdirAll(filepath.Dir(hostPath(h.root, BootLog)), 0o755); werr == nil {
		os.WriteFile(hostPath(h.root, BootLog), []byte(console), 0o644)
	}
	return console, err
}

// PowerOff stops every process of the host and its jails and clears the
// kernel, as a halt would.
func (h *Host) PowerOff() error {
	return h.withKernel(func(k *Kernel) error {
		c := &cmd{h: h, k: k, inRoot: true}
		err := c.powerOff()
		jid, pid := k.NextJID, k.NextPID
		*k = *newKernel()
		k.NextJID, k.NextPID = jid, pid
		return err
	})
}

func (c *cmd) powerOff() error {
	var procs []Proc
	owners := []*Jail{c.k.Host}
	for _, j := range c.k.Jails {
		owners = append(owners, j)
	}
	for _, o := range owners {
		if o == nil {
			continue
		}
		for _, s := range o.Services {
			procs = append(procs, s.Procs...)
		}
	}
	return terminateAll(append(procs, strays(c.h.root, "", "")...))
}

// nicsIn lists the hardware interface names an rc.conf refers to.
func nicsIn(v *rcVars) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if isNICName(n) && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, k := range sortedVarKeys(v, "ifconfig_") {
		n := strings.TrimPrefix(k, "ifconfig_")
		for _, suf := range []string{"_name", "_ipv6", "_descr", "_aliases"} {
			n = strings.TrimSuffix(n, suf)
		}
		if i := strings.LastIndex(n, "_alias"); i > 0 {
			n = n[:i]
		}
		add(n)
		f := strings.Fields(mustGet(v, k))
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "laggport" || f[i] == "addm" || f[i] == "vlandev" {
				add(f[i+1])
			}
		}
	}
	for _, k := range sortedVarKeys(v, "vlans_") {
		add(strings.TrimPrefix(k, "vlans_"))
	}
	return out
}
