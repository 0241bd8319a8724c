// Package hostplan turns a change of a host's kernel-level configuration
// (two hostdesc.Host descriptions, the applied one and the new one) into
// the minimal FreeBSD command lines that take the running host from one to
// the other without a reboot, each with the commands that undo it. It is
// pure, so the bundler shows the plan a merge will cause (bundler diff) and
// the agent runs it (apply/live, journaled). What cannot be done live is
// reported as reboot-required with the reason.
//
// The commands follow what rc.d/netif and rc.d/routing would have done at
// boot with the new rc.conf (libexec/rc/network.subr: clone_up, ifnet_rename,
// ifn_start; libexec/rc/rc.d/routing: static_inet), applied one interface,
// address, member or route at a time. A cloned interface that carries
// members or vnet jails is never restarted (`service netif restart IF`
// destroys and recreates it, FREEBSD.md §0.12): members and addresses are
// added and removed one by one.
package hostplan

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// Phase says when a step runs relative to the installation of the new
// files. Before steps need the old files (a removed jail is stopped
// through its own jail.conf, a disabled service through the rc.conf that
// enables it); After steps need the new ones (a service starts only when
// rc.conf enables it, rc.subr's checkyesno; FREEBSD.md §0.2).
type Phase string

const (
	Before Phase = "before"
	After  Phase = "after"
)

// Step is one command with the commands that undo it.
type Step struct {
	Phase Phase    `json:"phase"`
	Do    []string `json:"do"`
	// Undo runs in order to reverse Do; empty when Do changes nothing
	// that needs undoing.
	Undo [][]string `json:"undo,omitempty"`
	// UndoLate: Undo needs the old files back (a service restarted with
	// new flags is restarted again once the old rc.conf is restored).
	UndoLate bool `json:"undo_late,omitempty"`
	// Bind: Do creates an epair and the kernel picks its unit; the name it
	// prints (epair12a) replaces Bind (epair7) in the words of every later
	// step and undo, so the plan reads with the boot-time names.
	Bind string `json:"bind,omitempty"`
	// UndoBind is Bind for the first command of Undo (an epair destroyed
	// is created again).
	UndoBind string `json:"undo_bind,omitempty"`
	// Gone: Do destroys this interface. After a crash or a failure in
	// the middle of Do, `ifconfig Gone` still answering means Do did not
	// happen, and its undo (creating it again) must not run.
	Gone string `json:"gone,omitempty"`
	// Mgmt: the step touches the interface, address or route that carries
	// the agent's connection to its git source.
	Mgmt bool   `json:"mgmt,omitempty"`
	Why  string `json:"why"`
}

// Plan is the ordered steps of one change.
type Plan struct {
	Steps []Step `json:"steps,omitempty"`
	// Reboot lists what only a reboot applies, one precise reason each.
	Reboot []string `json:"reboot,omitempty"`
	// StopJails are the jails the plan stops and that the new
	// configuration no longer has: the engine must not restart them.
	StopJails []string `json:"stop_jails,omitempty"`
}

// Mgmt marks steps that touch the path to the git source.
func (p *Plan) Mgmt() bool {
	for _, s := range p.Steps {
		if s.Mgmt {
			return true
		}
	}
	return false
}

// Lines renders the steps as shell-like lines for a reviewer, in order,
// marking the phase and the guarded steps.
func (p *Plan) Lines() []string {
	var out []string
	for _, s := range p.Steps {
		l := strings.Join(s.Do, " ")
		if s.Bind != "" {
			l += "   # prints the new unit, called " + s.Bind + " below"
		}
		if s.Mgmt {
			l += "   # management path: confirmed by the git source"
		}
		prefix := "  "
		if s.Phase == Before {
			prefix = "  (before install) "
		}
		out = append(out, prefix+l)
	}
	for _, r := range p.Reboot {
		out = append(out, "  reboot-required: "+r)
	}
	return out
}

// Management is where the agent's connection to its git source runs: the
// outgoing interface and the source's address (route -n get SOURCE).
type Management struct {
	Iface  string
	Source netip.Addr
}

// ForbiddenError: the plan touches the management path and the topology
// forbids that (management: forbid).
type ForbiddenError struct{ Steps []string }

func (e *ForbiddenError) Error() string {
	return "live change touches the path to the git source, which the topology forbids (management: forbid): " + strings.Join(e.Steps, "; ")
}

// Compute plans the steps from old to new. old nil means nothing is known
// of the running host beyond new: every difference is then unknown and the
// plan is empty (the first bundle's rc.conf takes effect at the next boot,
// as before). mgmt may be nil (not known: nothing is marked).
func Compute(old, new *hostdesc.Host, mgmt *Management) (*Plan, error) {
	p := &Plan{}
	if old == nil || new == nil {
		return p, nil
	}
	b := &builder{old: old, new: new, mgmt: mgmt}
	b.plan()
	p.Steps = append(b.before, b.after...)
	p.Reboot = b.reboot
	p.StopJails = b.stopJails
	if new.Management == hostdesc.MgmtForbid {
		var bad []string
		for _, s := range p.Steps {
			if s.Mgmt {
				bad = append(bad, strings.Join(s.Do, " "))
			}
		}
		if len(bad) > 0 {
			return nil, &ForbiddenError{Steps: bad}
		}
	}
	return p, nil
}

type builder struct {
	old, new      *hostdesc.Host
	mgmt          *Management
	before, after []Step
	reboot        []string
	stopJails     []string
	stopped       map[string]bool
	epairN        int
}

func argv(s ...string) []string { return s }

func (b *builder) step(ph Phase, why string, do []string, undo ...[]string) *Step {
	s := Step{Phase: ph, Do: do, Undo: undo, Why: why}
	if ph == Before {
		b.before = append(b.before, s)
		return &b.before[len(b.before)-1]
	}
	b.after = append(b.after, s)
	return &b.after[len(b.after)-1]
}

func (b *builder) mgmtIface(name string) bool {
	return b.mgmt != nil && b.mgmt.Iface != "" && b.mgmt.Iface == name
}

// mgmtRoute: a route of FIB 0 whose destination covers the source.
func (b *builder) mgmtRoute(r hostdesc.Route) bool {
	if b.mgmt == nil || !b.mgmt.Source.IsValid() || r.FIB != 0 {
		return false
	}
	if r.Dest == "default" {
		return true
	}
	if p, err := netip.ParsePrefix(r.Dest); err == nil {
		return p.Contains(b.mgmt.Source)
	}
	if a, err := netip.ParseAddr(r.Dest); err == nil {
		return a == b.mgmt.Source
	}
	return false
}

func (b *builder) plan() {
	olds := map[string]hostdesc.Interface{}
	news := map[string]hostdesc.Interface{}
	for _, i := range b.old.Interfaces {
		olds[i.Name] = i
	}
	for _, i := range b.new.Interfaces {
		news[i.Name] = i
	}
	// Interfaces that go (or come back as another kind) and those that
	// are new. wg interfaces belong to the wireguard units.
	var gone, added []hostdesc.Interface
	for _, o := range b.old.Interfaces {
		n, ok := news[o.Name]
		switch {
		case o.Kind == hostdesc.WG:
		case !ok || n.Kind != o.Kind || (o.Kind == hostdesc.Epair && n.Peer != o.Peer) ||
			(o.Kind == hostdesc.Vlan && (n.Tag != o.Tag || n.Parent != o.Parent)):
			gone = append(gone, o)
		}
	}
	for _, n := range b.new.Interfaces {
		o, ok := olds[n.Name]
		switch {
		case n.Kind == hostdesc.WG:
		case !ok || slices.ContainsFunc(gone, func(g hostdesc.Interface) bool { return g.Name == n.Name }):
			added = append(added, n)
		case n.Kind == hostdesc.Physical && n.CloneName() != o.CloneName():
			b.reboot = append(b.reboot, fmt.Sprintf("interface %s: driver name %s → %s: renaming a physical NIC in use is left to the boot (ifconfig_%s_name)",
				n.Name, o.CloneName(), n.CloneName(), ifVar(n.CloneName())))
		}
	}

	b.stopped = map[string]bool{}
	b.services(Before)
	b.jailStops(gone)
	b.routes(Before)
	b.shrink(olds, news, gone)
	b.destroy(gone)

	b.create(added)
	b.grow(olds, news, added)
	b.dropAddrs(news, gone)
	b.routes(After)
	if b.old.Forwarding != b.new.Forwarding {
		v := map[bool]string{true: "1", false: "0"}
		b.step(After, "gateway_enable", argv("sysctl", "net.inet.ip.forwarding="+v[b.new.Forwarding]),
			argv("sysctl", "net.inet.ip.forwarding="+v[b.old.Forwarding]))
	}
	if b.old.Hostname != b.new.Hostname && b.new.Hostname != "" && b.old.Hostname != "" {
		b.step(After, "hostname", argv("hostname", b.new.Hostname), argv("hostname", b.old.Hostname))
	}
	b.services(After)
	for _, k := range sortedKeys(b.old.Loader, b.new.Loader) {
		ov, oh := b.old.Loader[k]
		nv, nh := b.new.Loader[k]
		switch {
		case oh && !nh:
			b.reboot = append(b.reboot, fmt.Sprintf("loader tunable %s removed (was %q): read by loader(8) at boot only", k, ov))
		case !oh && nh:
			b.reboot = append(b.reboot, fmt.Sprintf("loader tunable %s=%q added: read by loader(8) at boot only", k, nv))
		case ov != nv:
			b.reboot = append(b.reboot, fmt.Sprintf("loader tunable %s: %q → %q: read by loader(8) at boot only", k, ov, nv))
		}
	}
}

// services stops (Before) the services no longer enabled while the old
// rc.conf still enables them, and starts (After) the newly enabled ones
// and restarts those whose flags changed once the new rc.conf is in place.
func (b *builder) services(ph Phase) {
	olds := map[string]hostdesc.Service{}
	for _, s := range b.old.Services {
		olds[s.Name] = s
	}
	news := map[string]hostdesc.Service{}
	for _, s := range b.new.Services {
		news[s.Name] = s
	}
	if ph == Before {
		for _, s := range b.old.Services {
			if _, ok := news[s.Name]; !ok {
				b.step(Before, "service "+s.Name+" disabled", argv("service", s.Name, "stop"), argv("service", s.Name, "start"))
			}
		}
		return
	}
	for _, s := range b.new.Services {
		o, ok := olds[s.Name]
		switch {
		case !ok:
			b.step(After, "service "+s.Name+" enabled", argv("service", s.Name, "start"), argv("service", s.Name, "stop"))
		case o.Flags != s.Flags:
			st := b.step(After, "service "+s.Name+" flags", argv("service", s.Name, "restart"), argv("service", s.Name, "restart"))
			st.UndoLate = true
		}
	}
}

// jailStops stops the jails that leave the configuration and those that
// hold an interface about to be destroyed (vnet interfaces come back to
// the host only when the jail is removed; sys/kern/kern_jail.c, and
// FREEBSD.md §0.3 for dying jails). A jail that stays is started again by
// its own unit, whose jail.conf changed with its interfaces.
func (b *builder) jailStops(gone []hostdesc.Interface) {
	newJails := map[string]bool{}
	for _, j := range b.new.Jails {
		newJails[j.Name] = true
	}
	goneIf := map[string]bool{}
	for _, g := range gone {
		goneIf[g.Name] = true
		if g.Peer != "" {
			goneIf[g.Peer] = true
		}
	}
	// Reverse boot order, like jail_reverse_stop.
	for k := len(b.old.Jails) - 1; k >= 0; k-- {
		j := b.old.Jails[k]
		why := ""
		switch {
		case !newJails[j.Name]:
			why = "jail " + j.Name + " removed"
			b.stopJails = append(b.stopJails, j.Name)
		case slices.ContainsFunc(j.Interfaces, func(n string) bool { return goneIf[n] }):
			why = "jail " + j.Name + " gives back an interface that goes"
		default:
			continue
		}
		b.stopped[j.Name] = true
		b.step(Before, why, argv("service", "jail", "stop", j.Name), argv("service", "jail", "start", j.Name))
	}
}

// routes deletes (Before) the routes that go, and adds or changes (After)
// the new ones: a changed gateway is one `route change`, never a delete
// and an add that leaves a moment without the route.
func (b *builder) routes(ph Phase) {
	key := func(r hostdesc.Route) string { return strconv.Itoa(r.FIB) + " " + r.Dest }
	olds := map[string]hostdesc.Route{}
	for _, r := range b.old.Routes {
		olds[key(r)] = r
	}
	news := map[string]hostdesc.Route{}
	for _, r := range b.new.Routes {
		news[key(r)] = r
	}
	if ph == Before {
		for _, r := range b.old.Routes {
			if _, ok := news[key(r)]; !ok {
				s := b.step(Before, "route "+r.Name+" removed", routeCmd("delete", r), routeCmd("add", r))
				s.Mgmt = b.mgmtRoute(r)
			}
		}
		return
	}
	for _, r := range b.new.Routes {
		o, ok := olds[key(r)]
		switch {
		case !ok:
			s := b.step(After, "route "+r.Name+" added", routeCmd("add", r), routeCmd("delete", r))
			s.Mgmt = b.mgmtRoute(r)
		case !slices.Equal(o.Args, r.Args):
			s := b.step(After, "route "+r.Name+" changed", routeCmd("change", r), routeCmd("change", o))
			s.Mgmt = b.mgmtRoute(r)
		}
	}
}

// routeCmd is route(8) with rc.d/routing's arguments; -n: no DNS.
func routeCmd(verb string, r hostdesc.Route) []string {
	return append([]string{"route", "-n", verb}, r.Args...)
}

// shrink removes from interfaces that stay the bridge members and lagg
// ports the new configuration no longer has, or that are destroyed.
func (b *builder) shrink(olds, news map[string]hostdesc.Interface, gone []hostdesc.Interface) {
	isGone := func(n string) bool {
		return slices.ContainsFunc(gone, func(g hostdesc.Interface) bool { return g.Name == n })
	}
	for _, o := range b.old.Interfaces {
		if isGone(o.Name) || o.Kind == hostdesc.WG {
			continue
		}
		n := news[o.Name]
		for _, m := range o.Members {
			if !slices.Contains(n.Members, m) || isGone(m) {
				s := b.step(Before, "bridge "+o.Name+" loses "+m, argv("ifconfig", o.Name, "deletem", m), argv("ifconfig", o.Name, "addm", m))
				s.Mgmt = b.mgmtIface(o.Name) || b.mgmtIface(m)
			}
		}
		for _, pt := range o.Ports {
			if !slices.Contains(n.Ports, pt) || isGone(pt) {
				s := b.step(Before, "lagg "+o.Name+" loses "+pt, argv("ifconfig", o.Name, "-laggport", pt), argv("ifconfig", o.Name, "laggport", pt))
				s.Mgmt = b.mgmtIface(o.Name)
			}
		}
	}
}

// dropAddrs removes the addresses that interfaces keeping their place no
// longer have, after the new ones are added (make before break: an
// address moving on the interface that carries the connection is never
// absent in between, nor the routes through its prefix).
func (b *builder) dropAddrs(news map[string]hostdesc.Interface, gone []hostdesc.Interface) {
	for _, o := range b.old.Interfaces {
		n, ok := news[o.Name]
		if !ok || o.Kind == hostdesc.WG || o.Jail != "" || n.Jail != "" ||
			slices.ContainsFunc(gone, func(g hostdesc.Interface) bool { return g.Name == o.Name }) {
			continue // addresses of a jail's interface are the jail's
		}
		for _, a := range o.Addrs {
			if slices.Contains(n.Addrs, a) {
				continue
			}
			if isDHCP(a) {
				b.reboot = append(b.reboot, fmt.Sprintf("interface %s: DHCP removed: dhclient is left to the boot", o.Name))
				continue
			}
			s := b.step(After, "address "+a+" leaves "+o.Name, addrCmd(o.Name, a, "-alias"), addrCmd(o.Name, a, "alias"))
			s.Mgmt = b.mgmtIface(o.Name)
		}
	}
}

// destroy destroys the cloned interfaces that go, dependants first (vlans,
// laggs, bridges, epairs). An epair goes once, by the end the host holds.
// The undo recreates it as it was.
func (b *builder) destroy(gone []hostdesc.Interface) {
	order := map[hostdesc.Kind]int{hostdesc.Vlan: 0, hostdesc.Lagg: 1, hostdesc.Bridge: 2, hostdesc.Epair: 3, hostdesc.Physical: 4}
	sort.SliceStable(gone, func(i, j int) bool { return order[gone[i].Kind] < order[gone[j].Kind] })
	done := map[string]bool{}
	for _, g := range gone {
		if done[g.Name] {
			continue
		}
		done[g.Name] = true
		switch g.Kind {
		case hostdesc.Physical:
			// A NIC that leaves the description is not destroyed; only
			// its addresses go.
			for _, a := range g.Addrs {
				if !isDHCP(a) && g.Jail == "" {
					s := b.step(Before, "address "+a+" leaves "+g.Name, addrCmd(g.Name, a, "-alias"), addrCmd(g.Name, a, "alias"))
					s.Mgmt = b.mgmtIface(g.Name)
				}
			}
			continue
		case hostdesc.Epair:
			done[g.Peer] = true
			peer := b.old.Iface(g.Peer)
			var pi hostdesc.Interface
			if peer != nil {
				pi = *peer
			}
			a, z := g, pi
			if strings.HasSuffix(g.CloneName(), "b") {
				a, z = pi, g
			}
			end := a.Name
			if a.Jail != "" && z.Jail == "" {
				end = z.Name
			}
			unit := b.nextEpair()
			undo := [][]string{argv("ifconfig", "epair", "create")}
			undo = append(undo, b.epairConfig(unit, a, z)...)
			s := b.step(Before, "epair "+a.Name+"/"+z.Name+" removed", argv("ifconfig", end, "destroy"), undo...)
			s.UndoBind = unit
			s.Gone = end
			s.Mgmt = b.mgmtIface(a.Name) || b.mgmtIface(z.Name)
			continue
		}
		undo := [][]string{append(argv("ifconfig", createName(g), "create", "name", g.Name), ifaceWords(g)...)}
		for _, m := range g.Members {
			undo = append(undo, argv("ifconfig", g.Name, "addm", m))
		}
		undo = append(undo, argv("ifconfig", g.Name, "up"))
		s := b.step(Before, string(g.Kind)+" "+g.Name+" removed", argv("ifconfig", g.Name, "destroy"), undo...)
		s.Gone = g.Name
		s.Mgmt = b.mgmtIface(g.Name)
	}
}

// createName is the clone type ifconfig creates with the next free unit:
// bridge, lagg, vlan.
func createName(i hostdesc.Interface) string { return string(i.Kind) }

// nextEpair is a placeholder unit name for an epair the plan creates; the
// kernel's real unit replaces it (Step.Bind).
func (b *builder) nextEpair() string {
	b.epairN++
	return "epair" + strconv.Itoa(b.epairN-1+1000) // never a boot-time name
}

// create creates the new cloned interfaces (epairs, bridges, laggs,
// vlans, in that order: a bridge adds epair ends, a vlan needs its parent)
// and renames a newly described NIC from its driver name.
func (b *builder) create(added []hostdesc.Interface) {
	order := map[hostdesc.Kind]int{hostdesc.Physical: 0, hostdesc.Epair: 1, hostdesc.Lagg: 2, hostdesc.Vlan: 3, hostdesc.Bridge: 4}
	sort.SliceStable(added, func(i, j int) bool { return order[added[i].Kind] < order[added[j].Kind] })
	done := map[string]bool{}
	for _, n := range added {
		if done[n.Name] {
			continue
		}
		done[n.Name] = true
		switch n.Kind {
		case hostdesc.Physical:
			if n.CloneName() != n.Name {
				s := b.step(After, "NIC "+n.CloneName()+" becomes "+n.Name, argv("ifconfig", n.CloneName(), "name", n.Name), argv("ifconfig", n.Name, "name", n.CloneName()))
				s.Mgmt = b.mgmtIface(n.CloneName())
			}
			b.configure(hostdesc.Interface{Name: n.Name}, n)
		case hostdesc.Epair:
			done[n.Peer] = true
			peer := b.new.Iface(n.Peer)
			var pi hostdesc.Interface
			if peer != nil {
				pi = *peer
			}
			a, z := n, pi
			if strings.HasSuffix(n.CloneName(), "b") {
				a, z = pi, n
			}
			unit := b.planEpair(a)
			s := b.step(After, "epair "+a.Name+"/"+z.Name+" added", argv("ifconfig", "epair", "create"), argv("ifconfig", unit+"a", "destroy"))
			s.Bind = unit
			for _, e := range []struct {
				end hostdesc.Interface
				sfx string
			}{{a, "a"}, {z, "b"}} {
				b.step(After, "epair "+a.Name+"/"+z.Name+" added", argv("ifconfig", unit+e.sfx, "name", e.end.Name), argv("ifconfig", e.end.Name, "name", unit+e.sfx))
				if e.end.Jail == "" {
					b.configure(hostdesc.Interface{Name: e.end.Name}, e.end)
					b.step(After, "epair "+a.Name+"/"+z.Name+" added", argv("ifconfig", e.end.Name, "up"))
				}
			}
		default:
			s := b.step(After, string(n.Kind)+" "+n.Name+" added", append(argv("ifconfig", createName(n), "create", "name", n.Name), ifaceWords(n)...), argv("ifconfig", n.Name, "destroy"))
			s.Mgmt = b.mgmtIface(n.Name)
			for _, a := range n.Addrs {
				if !isDHCP(a) {
					b.step(After, string(n.Kind)+" "+n.Name+" added", addrCmd(n.Name, a, "alias"))
				}
			}
			b.step(After, string(n.Kind)+" "+n.Name+" added", argv("ifconfig", n.Name, "up"))
		}
	}
}

// planEpair names the unit of a new epair for reading: its boot-time clone
// name when it has one (epair7), else a placeholder.
func (b *builder) planEpair(a hostdesc.Interface) string {
	if c := strings.TrimSuffix(a.CloneName(), "a"); strings.HasPrefix(c, "epair") && c != a.CloneName() {
		return c
	}
	return b.nextEpair()
}

// epairConfig renames and configures both ends of a recreated epair.
func (b *builder) epairConfig(unit string, a, z hostdesc.Interface) [][]string {
	var out [][]string
	for _, e := range []struct {
		end hostdesc.Interface
		sfx string
	}{{a, "a"}, {z, "b"}} {
		if e.end.Name == "" {
			continue
		}
		out = append(out, argv("ifconfig", unit+e.sfx, "name", e.end.Name))
		if e.end.Jail == "" {
			if w := ifaceWords(e.end); len(w) > 0 {
				out = append(out, append(argv("ifconfig", e.end.Name), w...))
			}
			for _, ad := range e.end.Addrs {
				if !isDHCP(ad) {
					out = append(out, addrCmd(e.end.Name, ad, "alias"))
				}
			}
			out = append(out, argv("ifconfig", e.end.Name, "up"))
		}
	}
	return out
}

// ifaceWords are the settings of an interface other than its addresses
// and members: mtu, fib, lagg and vlan parameters, options.
func ifaceWords(i hostdesc.Interface) []string {
	var w []string
	if i.MTU != 0 {
		w = append(w, "mtu", strconv.Itoa(i.MTU))
	}
	if i.FIB != 0 {
		w = append(w, "fib", strconv.Itoa(i.FIB))
	}
	if i.Proto != "" {
		w = append(w, "laggproto", i.Proto)
	}
	for _, p := range i.Ports {
		w = append(w, "laggport", p)
	}
	if i.Kind == hostdesc.Vlan {
		w = append(w, "vlan", strconv.Itoa(i.Tag), "vlandev", i.Parent)
	}
	return append(w, i.Options...)
}

// grow adds to interfaces that stay what the new configuration has more
// or differently: mtu, fib, lagg proto and ports, addresses, members (new
// members last, once they exist under their names).
func (b *builder) grow(olds, news map[string]hostdesc.Interface, added []hostdesc.Interface) {
	isAdded := func(n string) bool {
		return slices.ContainsFunc(added, func(a hostdesc.Interface) bool { return a.Name == n })
	}
	for _, n := range b.new.Interfaces {
		if n.Kind == hostdesc.WG || isAdded(n.Name) {
			continue
		}
		b.configure(olds[n.Name], n)
	}
	// Members: every bridge, new or not, gets its new members once all
	// interfaces exist.
	for _, n := range b.new.Interfaces {
		o := olds[n.Name]
		if isAdded(n.Name) {
			o = hostdesc.Interface{}
		}
		for _, m := range n.Members {
			// A member destroyed and created again left the bridge.
			if !slices.Contains(o.Members, m) || isAdded(m) {
				s := b.step(After, "bridge "+n.Name+" gains "+m, argv("ifconfig", n.Name, "addm", m), argv("ifconfig", n.Name, "deletem", m))
				s.Mgmt = b.mgmtIface(n.Name) || b.mgmtIface(m)
			}
		}
	}
}

// configure brings the settings of one interface from o to n (o's name
// empty: nothing known, only what n sets).
func (b *builder) configure(o, n hostdesc.Interface) {
	set := func(why string, do, undo []string) {
		s := b.step(After, why, do, undo)
		s.Mgmt = b.mgmtIface(n.Name)
	}
	known := o.Name != ""
	if n.MTU != o.MTU && (n.MTU != 0 || known) {
		set("mtu of "+n.Name, argv("ifconfig", n.Name, "mtu", strconv.Itoa(orDefault(n.MTU, 1500))),
			argv("ifconfig", n.Name, "mtu", strconv.Itoa(orDefault(o.MTU, 1500))))
	}
	if n.FIB != o.FIB {
		set("fib of "+n.Name, argv("ifconfig", n.Name, "fib", strconv.Itoa(n.FIB)), argv("ifconfig", n.Name, "fib", strconv.Itoa(o.FIB)))
	}
	if known && n.Proto != o.Proto && n.Proto != "" {
		set("laggproto of "+n.Name, argv("ifconfig", n.Name, "laggproto", n.Proto), argv("ifconfig", n.Name, "laggproto", o.Proto))
	}
	for _, pt := range n.Ports {
		if !slices.Contains(o.Ports, pt) {
			set("lagg "+n.Name+" gains "+pt, argv("ifconfig", n.Name, "laggport", pt), argv("ifconfig", n.Name, "-laggport", pt))
		}
	}
	if known && !slices.Equal(n.Options, o.Options) {
		b.reboot = append(b.reboot, fmt.Sprintf("interface %s: ifconfig options %q → %q: not undoable live (ifconfig_%s)",
			n.Name, strings.Join(o.Options, " "), strings.Join(n.Options, " "), ifVar(n.Name)))
	} else if !known && len(n.Options) > 0 {
		set("options of "+n.Name, append(argv("ifconfig", n.Name), n.Options...), nil)
	}
	if n.Jail != "" || o.Jail != "" {
		return
	}
	for _, a := range n.Addrs {
		if slices.Contains(o.Addrs, a) {
			continue
		}
		if isDHCP(a) {
			b.reboot = append(b.reboot, fmt.Sprintf("interface %s: DHCP added: dhclient is left to the boot", n.Name))
			continue
		}
		set("address "+a+" on "+n.Name, addrCmd(n.Name, a, "alias"), addrCmd(n.Name, a, "-alias"))
	}
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// addrCmd adds or removes one address: ifconfig IF inet|inet6 ADDR alias
// (the first address of an interface is added the same way).
func addrCmd(ifname, addr, verb string) []string {
	af := "inet"
	if strings.Contains(addr, ":") {
		af = "inet6"
	}
	return argv("ifconfig", ifname, af, addr, verb)
}

func isDHCP(a string) bool { return a == "DHCP" || a == "SYNCDHCP" }

func ifVar(n string) string { return strings.NewReplacer(".", "_", "-", "_").Replace(n) }

func sortedKeys(ms ...map[string]string) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
