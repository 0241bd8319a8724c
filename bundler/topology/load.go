package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rigger-bsd/rigger/policy"
)

// host is one host after merging its role and resolving its interfaces.
type host struct {
	name  string
	where string // "host serverA", prefixed to its problems
	own   *Spec
	role  *Spec
	spec  *Spec // merged
	wave  time.Duration
	bake  time.Duration
	// reportKey is the PEM of status_key, "" without one.
	reportKey string
	// paths is what the host's agent accepts: policy.DefaultPaths plus
	// agent_roots.
	paths policy.Paths
	rel   policy.Release

	addrPos map[string]Pos // where each addrs key came from
	ifaces  map[string]*iface
	// byAddr is the interface holding each address (one per address:
	// resolveIfaces reports the others).
	byAddr  map[netip.Addr]*iface
	jails   map[string]*Jail
	jailsIn []*Jail // boot order
	pipes   []*rpipe
	// listeners are decrypt pipe sources by "addr:port".
	listeners map[string]*rpipe
	// incoming are ports of this host's listeners that other hosts dial.
	incoming map[int]bool
	// clients are the encrypt pipes targeting each listener, by "addr:port".
	clients map[string][]pipeEnd
	// params are the jails' effective parameters (Repo.jailParams).
	params map[*Jail]*JailParams
	// tunnelPorts are Repo.tunnelPorts(h), once every host is resolved:
	// shared by the render and its view, which only read it.
	tunnelPorts []int
	// render is the host's render (Repo.renders once all are made).
	render *HostRender
	// posOf links items made by merging to the decoded items whose
	// positions they take, until build moves the links into Repo.pos.
	posOf map[any]any
}

// pipeEnd is a pipe on a host.
type pipeEnd struct {
	host *host
	rp   *rpipe
}

// iface is an interface the host creates (or owns, for NICs).
type iface struct {
	name  string
	kind  string // nic, lagg, vlan, bridge, epair, wg
	jail  string // owning jail, "" = the host
	claim string // who claimed it: "jail pg_j", "bridge ibridge", "lagg lagg0"
	// contested or badAddr: a problem is already reported; checks that
	// depend on the interface stay quiet instead of repeating it.
	contested bool
	badAddr   bool
	addrs     []string
	prefix    []netip.Prefix
	pos       Pos
}

// rpipe is a pipe with its endpoints resolved.
type rpipe struct {
	p        *Pipe
	jail     *Jail
	src, dst endpoint
}

type endpoint struct {
	host string // the host owning the address ("" = a literal address)
	addr netip.Addr
	port int
}

func (e endpoint) String() string {
	return netip.AddrPortFrom(e.addr, uint16(e.port)).String()
}

// Load reads, strictly decodes and validates the infra repo in dir. The
// error, if any, is a Problems listing every problem found.
func Load(dir string) (*Repo, error) { return LoadWith(dir, Options{}) }

// LoadFS is Load over any file system (tests, generated topologies).
func LoadFS(fsys fs.FS) (*Repo, error) { return LoadFSWith(fsys, Options{}) }

// Options are what a caller of LoadWith may add to loading.
type Options struct {
	// Rendered, when set, is called with each host's render as soon as
	// that host has rendered without problems, on the goroutine that
	// rendered it, while other hosts still render: the bundler packs a
	// host there, while its files are in that core's cache and without
	// waiting for the whole fleet. Calls for different hosts run
	// concurrently; the render is shared (see Repo.Rendered). A call does
	// not mean the repo loads: when Load returns problems, what Rendered
	// made must be dropped. It is not called once a problem is known
	// before rendering.
	Rendered func(*HostRender)
}

// LoadWith is Load with options.
func LoadWith(dir string, o Options) (*Repo, error) {
	r, err := LoadFSWith(os.DirFS(dir), o)
	if r != nil {
		r.Dir = dir
	}
	return r, err
}

// LoadFSWith is LoadFS with options.
func LoadFSWith(fsys fs.FS, o Options) (*Repo, error) {
	data, err := fs.ReadFile(fsys, TopologyFile)
	if err != nil {
		return nil, fmt.Errorf("infra repo: %w", err)
	}
	f, pos, err := decodeFile(TopologyFile, data)
	if err != nil {
		return nil, err
	}
	r := &Repo{fsys: fsys, file: f, pos: pos, hosts: map[string]*host{}, tmpls: map[string]*repoTemplate{}, sources: map[string][]byte{}, renders: map[string]*HostRender{}, opts: o}
	var pl problemList
	r.build(&pl)
	if err := pl.err(); err != nil {
		return nil, err
	}
	r.warns = pl.warnings()
	return r, nil
}

// isName: s is a name of an interface, jail, pipe, service or table
// (^[A-Za-z][A-Za-z0-9_]*$, checked by hand: a regexp match cost more
// than the rest of adding an interface).
func isName(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// build merges, resolves and validates every host.
func (r *Repo) build(pl *problemList) {
	f := r.file
	if f.Policy != nil {
		pl.add(r.pos.at(f.Policy, ""), "policy", "policy.roots is gone: the roots a host accepts are its agent's; declare the extra roots a host's agent is configured with as agent_roots on the host or its role")
	}
	if len(f.Hosts) == 0 {
		pl.add(Pos{File: TopologyFile, Line: 1}, "", "no hosts defined")
	}
	fleetRel := r.release(policy.DefaultRelease, pl, "", f)
	for name, role := range f.Roles {
		where := "role " + name
		if role == nil {
			continue
		}
		r.release(0, pl, where, role)
		if role.Role != "" {
			pl.add(r.pos.at(role, "role"), where, "a role cannot have a role")
		}
		if role.Wave != "" || role.Peer != "" || len(role.NetifRestart) > 0 || len(role.Gate) > 0 || role.Bake != "" || role.StatusKey != "" {
			pl.add(r.pos.at(role, ""), where, "wave, peer, netif_restart, gate, bake and status_key are host keys")
		}
	}
	for name, own := range f.Hosts {
		if own == nil {
			own = &Spec{}
		}
		r.hosts[name] = &host{name: name, where: "host " + name, own: own}
		r.names = append(r.names, name)
	}
	sort.Strings(r.names)
	// Each host's merge only reads the repo and its role: every core. The
	// merged items' positions are linked into r.pos after.
	r.eachHost(pl, func(h *host, pl *problemList) { r.mergeHost(h, fleetRel, pl) })
	for _, name := range r.names {
		h := r.hosts[name]
		for item, from := range h.posOf {
			r.pos.nodes[item] = r.pos.nodes[from]
		}
		h.posOf = nil
	}
	r.eachHost(pl, func(h *host, pl *problemList) {
		r.loadStatusKey(h, pl)
		r.loadGate(h, pl)
	})
	// Each host's interfaces, then each host's own checks, only read
	// other hosts: both run on every core.
	r.eachHost(pl, r.resolveIfaces)
	r.eachHost(pl, r.resolveHost)
	for _, name := range r.names {
		r.crossCheck(r.hosts[name], pl)
	}
	// A host's tunnel ports need every host's pipes crossChecked.
	parallel(len(r.names), func(i int) {
		h := r.hosts[r.names[i]]
		h.tunnelPorts = r.tunnelPorts(h)
	})
	r.crossHosts(pl)
	fleet := map[int]bool{}
	for _, name := range r.names {
		for _, p := range r.hosts[name].tunnelPorts {
			fleet[p] = true
		}
	}
	for p := range fleet {
		r.fleetPorts = append(r.fleetPorts, p)
	}
	sort.Ints(r.fleetPorts)
	r.renderAll(pl)
}

// mergeHost checks h's name, role and wave, and merges its role.
func (r *Repo) mergeHost(h *host, fleetRel policy.Release, pl *problemList) {
	f, own := r.file, h.own
	if !hostRE.MatchString(h.name) {
		pl.add(r.pos.key(f.Hosts, h.name), h.where, "bad host name (letters, digits, '-', '_')")
	}
	if own.Role != "" {
		h.role = f.Roles[own.Role]
		if h.role == nil {
			pl.add(r.pos.at(own, "role"), h.where, "unknown role %q", own.Role)
		}
	}
	if own.Wave != "" {
		d, err := time.ParseDuration(own.Wave)
		if err != nil || d < 0 {
			pl.add(r.pos.at(own, "wave"), h.where, "wave %q: want a duration like 15m", own.Wave)
		}
		h.wave = d
	}
	h.spec = r.merge(h, pl)
	h.paths = r.hostPaths(h, pl)
	h.rel = r.release(fleetRel, pl, h.where, own, h.role)
}

// samePos gives item, made by merging h's spec, the position of from
// (a decoded item, or one merged before). Hosts merge concurrently:
// build links these into r.pos once all are merged.
func (h *host) samePos(item, from any) {
	if h.posOf == nil {
		h.posOf = map[any]any{}
	}
	if f, ok := h.posOf[from]; ok {
		from = f
	}
	h.posOf[item] = from
}

// at is r.pos.at for h's items while h merges.
func (r *Repo) at(h *host, item any, field string) Pos {
	if f, ok := h.posOf[item]; ok {
		item = f
	}
	return r.pos.at(item, field)
}

// hostPaths is the path policy of h's agent: the defaults plus the roots
// the topology says its agent is configured with.
func (r *Repo) hostPaths(h *host, pl *problemList) policy.Paths {
	p := policy.DefaultPaths()
	if len(h.spec.AgentRoots) == 0 {
		return p
	}
	roots := append([]string{}, p.Roots...)
	for i, root := range h.spec.AgentRoots {
		pos := r.pos.elem(h.own, "agent_roots", i)
		if i < len(h.role.agentRoots()) {
			pos = r.pos.elem(h.role, "agent_roots", i)
		}
		// The agent refuses the same roots in its policy.roots
		// (agent/config.go), so the topology cannot claim one it can't have.
		if err := policy.CheckRoot(root); err != nil {
			pl.add(pos, h.where+": agent_roots", "%v", err)
			continue
		}
		if !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
	}
	p.Roots = roots
	return p
}

func (s *Spec) agentRoots() []string {
	if s == nil {
		return nil
	}
	return s.AgentRoots
}

// release returns the first release the items (*File or *Spec, nearest
// first) set, else def; a bad value is a problem at its key.
func (r *Repo) release(def policy.Release, pl *problemList, where string, items ...any) policy.Release {
	for _, it := range items {
		var v string
		switch it := it.(type) {
		case *File:
			v = it.Release
		case *Spec:
			if it == nil {
				continue
			}
			v = it.Release
		}
		if v == "" {
			continue
		}
		rel, err := policy.ParseRelease(v)
		if err != nil {
			// a role's or the fleet's bad value is reported once, by its own call
			if it == items[0] {
				pl.add(r.pos.at(it, "release"), where, "%v", err)
			}
			return def
		}
		return rel
	}
	return def
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// merge returns the host's role spec with its own spec over it.
func (r *Repo) merge(h *host, pl *problemList) *Spec {
	own, role := h.own, h.role
	if role == nil {
		role = &Spec{}
	}
	m := &Spec{
		Role: own.Role, Wave: own.Wave, Peer: own.Peer, NetifRestart: own.NetifRestart,
		Gate: own.Gate, Bake: own.Bake, StatusKey: own.StatusKey,
		Release:       pick(own.Release, role.Release),
		Hostname:      pick(own.Hostname, role.Hostname),
		Domain:        pick(own.Domain, role.Domain, r.file.Domain),
		Gateway:       pick(own.Gateway, role.Gateway),
		Management:    pick(own.Management, role.Management),
		GatewayEnable: own.GatewayEnable,
	}
	if m.GatewayEnable == nil {
		m.GatewayEnable = role.GatewayEnable
	}
	m.Services = mergeNames(role.Services, own.Services)
	m.AgentRoots = append(append([]string{}, role.AgentRoots...), own.AgentRoots...)
	m.Serves = append(append([]string{}, role.Serves...), own.Serves...)
	m.RC = mergeMap(role.RC, own.RC)
	m.Sysctl = mergeMap(role.Sysctl, own.Sysctl)
	m.Loader = mergeMap(role.Loader, own.Loader)
	// Routes and a jail's netif stay copies, which problems about them
	// name no line of (pos.key knows decoded maps only), as before.
	m.Routes = copyMerge(role.Routes, own.Routes)
	m.Vars = mergeMap(mergeMap(r.file.Vars, role.Vars), own.Vars)
	m.Addrs = map[string]Strings{}
	h.addrPos = map[string]Pos{}
	for _, src := range []*Spec{role, own} {
		for k, v := range src.Addrs {
			m.Addrs[k] = v
			h.addrPos[k] = r.pos.key(src.Addrs, k)
		}
	}
	m.NICs = map[string]*NIC{}
	for k, v := range role.NICs {
		m.NICs[k] = v
	}
	for k, v := range own.NICs {
		base := m.NICs[k]
		if base == nil || v == nil {
			m.NICs[k] = v
			continue
		}
		n := *base
		if v.Driver != "" {
			n.Driver = v.Driver
		}
		if v.VlanHWTag != nil {
			n.VlanHWTag = v.VlanHWTag
		}
		if v.MTU != 0 {
			n.MTU = v.MTU
		}
		n.Options = append(append([]string{}, base.Options...), v.Options...)
		h.samePos(&n, v)
		m.NICs[k] = &n
	}
	m.Laggs = joinItems(r, pl, h, "lagg", role.Laggs, own.Laggs)
	m.Vlans = joinItems(r, pl, h, "vlan", role.Vlans, own.Vlans)
	m.Bridges = joinItems(r, pl, h, "bridge", role.Bridges, own.Bridges)
	m.Epairs = joinItems(r, pl, h, "epair", role.Epairs, own.Epairs)
	m.Jails = mergeByName(joinItems(r, pl, h, "jail", role.Jails), joinItems(r, pl, h, "jail", own.Jails), jailName,
		func(base, over *Jail) *Jail { return r.mergeJail(h, base, over) })
	m.WireGuard = mergeByName(joinItems(r, pl, h, "wireguard interface", role.WireGuard), joinItems(r, pl, h, "wireguard interface", own.WireGuard), wgName,
		func(base, over *WG) *WG { return r.mergeWG(h, base, over) })
	m.Files = joinItems(r, pl, h, "file", role.Files, own.Files)
	m.Checks = joinItems(r, pl, h, "check", role.Checks, own.Checks)
	withoutEmpty(r, h, pl, m.Jails, func(j *Jail) *[]*Pipe { return &j.Pipes },
		func(j *Jail) string { return h.where + ": jail " + j.Name }, "pipes", "pipe")
	withoutEmpty(r, h, pl, m.WireGuard, func(w *WG) *[]*WGPeer { return &w.Peers },
		func(w *WG) string { return h.where + ": wireguard " + w.Name }, "peers", "peer")
	m.JailsDef = mergeJailParams(role.JailsDef, own.JailsDef)
	switch {
	case own.PF == nil:
		m.PF = role.PF
	case role.PF == nil:
		m.PF = own.PF
	default:
		pf := &PF{Template: pick(own.PF.Template, role.PF.Template), Tables: map[string]*PFTable{}}
		for k, v := range role.PF.Tables {
			pf.Tables[k] = v
		}
		for k, v := range own.PF.Tables {
			base := pf.Tables[k]
			if v != nil && base != nil && len(v.Add) > 0 && len(v.Entries) == 0 && v.Source == "" {
				// add: the role's table plus these entries.
				t := *base
				t.Entries = append(append([]string{}, base.Entries...), v.Add...)
				t.Add = nil
				t.Path = pick(v.Path, base.Path)
				h.samePos(&t, v)
				v = &t
			}
			pf.Tables[k] = v
		}
		h.samePos(pf, own.PF)
		m.PF = pf
	}
	return m
}

// withoutEmpty replaces each item whose list (a jail's pipes, an
// interface's peers) has empty entries by a copy without them, reporting
// each: a role's items are shared by its hosts, never changed.
func withoutEmpty[T, E any](r *Repo, h *host, pl *problemList, items []*T, list func(*T) *[]*E, where func(*T) string, key, what string) {
	for i, it := range items {
		l := *list(it)
		if !slices.Contains(l, nil) {
			continue
		}
		c := *it
		kept := list(&c)
		*kept = nil
		for _, e := range l {
			if e != nil {
				*kept = append(*kept, e)
			} else {
				pl.add(r.at(h, it, key), where(it), "empty %s", what)
			}
		}
		h.samePos(&c, it)
		items[i] = &c
	}
}

// mergeNames appends over's names to base's, skipping names already
// there; "-NAME" removes an inherited NAME instead.
func mergeNames(base, over []string) []string {
	out := append([]string{}, base...)
	for _, n := range over {
		if drop, ok := strings.CutPrefix(n, "-"); ok {
			out = slices.DeleteFunc(out, func(x string) bool { return x == drop })
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// mergeByName merges a host's items into its role's: a host item named
// like a role item extends it in place (role order kept, merge must not
// modify the role's item, which its hosts share), other host items follow;
// a second host item of one name is appended as is, so the duplicate is
// reported where names are checked.
func mergeByName[T any](role, own []*T, name func(*T) string, merge func(base, over *T) *T) []*T {
	out := append([]*T{}, role...)
	for k, o := range own {
		i := slices.IndexFunc(out[:len(role)], func(x *T) bool { return name(x) == name(o) })
		if i < 0 || slices.ContainsFunc(own[:k], func(x *T) bool { return name(x) == name(o) }) {
			out = append(out, o)
			continue
		}
		out[i] = merge(out[i], o)
	}
	return out
}

// mergeJail returns base with over merged in: scalars replaced when over
// sets them, lists appended (interfaces, exec hooks), services by
// mergeNames, maps merged key by key (rc, params, netif), pipes replaced by
// name or appended.
func (r *Repo) mergeJail(h *host, base, over *Jail) *Jail {
	m := &Jail{
		Name:       base.Name,
		Hostname:   pick(over.Hostname, base.Hostname),
		JailParams: *mergeJailParams(&base.JailParams, &over.JailParams),
		Vnet:       firstPtr(over.Vnet, base.Vnet),
		Gateway:    pick(over.Gateway, base.Gateway),
		Services:   mergeNames(base.Services, over.Services),
		RC:         mergeMap(base.RC, over.RC),
		Netif:      copyMerge(base.Netif, over.Netif), // see merge's Routes
	}
	m.Interfaces = append([]string{}, base.Interfaces...)
	for _, n := range over.Interfaces {
		if !slices.Contains(m.Interfaces, n) {
			m.Interfaces = append(m.Interfaces, n)
		}
	}
	m.Pipes = append([]*Pipe{}, base.Pipes...)
	for _, p := range over.Pipes {
		if p == nil {
			m.Pipes = append(m.Pipes, p)
			continue
		}
		if i := slices.IndexFunc(m.Pipes[:len(base.Pipes)], func(x *Pipe) bool { return x != nil && x.Name == p.Name }); i >= 0 {
			m.Pipes[i] = p
		} else {
			m.Pipes = append(m.Pipes, p)
		}
	}
	// Problems about the merged jail point at the host's entry.
	h.samePos(m, over)
	return m
}

// joinItems concatenates a role's and a host's list, dropping empty items
// (and epairs that are not pairs) with a problem each.
func joinItems[T any](r *Repo, pl *problemList, h *host, what string, lists ...[]*T) []*T {
	var out []*T
	for _, l := range lists {
		for _, it := range l {
			if it == nil {
				pl.add(r.pos.at(h.own, ""), h.where, "empty %s", what)
				continue
			}
			if p, ok := any(it).(*Pair); ok && len(*p) != 2 {
				pl.add(r.pos.at(it, ""), h.where, "epair: want [a-end, b-end]")
				continue
			}
			out = append(out, it)
		}
	}
	return out
}

func pick(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// mergeMap is a with b over it. When one side adds nothing, it is the
// other map itself: merged specs are read-only, so a role's maps serve
// every host that does not add to them (a nil map still becomes an empty
// one, as templates can tell them apart).
func mergeMap[V any](a, b map[string]V) map[string]V {
	switch {
	case len(b) == 0 && a != nil:
		return a
	case len(a) == 0 && b != nil:
		return b
	}
	return copyMerge(a, b)
}

// copyMerge is a with b over it, in a new map.
func copyMerge[V any](a, b map[string]V) map[string]V {
	out := make(map[string]V, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func mergeJailParams(a, b *JailParams) *JailParams {
	if a == nil {
		a = &JailParams{}
	}
	if b == nil {
		b = &JailParams{}
	}
	out := &JailParams{
		Path:      pick(b.Path, a.Path),
		ExecStart: pick(b.ExecStart, a.ExecStart),
		ExecStop:  pick(b.ExecStop, a.ExecStop),
		Sysvshm:   pick(b.Sysvshm, a.Sysvshm),
		Sysvsem:   pick(b.Sysvsem, a.Sysvsem),
		Sysvmsg:   pick(b.Sysvmsg, a.Sysvmsg),
		Params:    mergeMap(a.Params, b.Params),
	}
	out.DevfsRuleset = firstPtr(b.DevfsRuleset, a.DevfsRuleset)
	out.MountDevfs = firstPtr(b.MountDevfs, a.MountDevfs)
	out.ExecClean = firstPtr(b.ExecClean, a.ExecClean)
	out.ExecPrestart = append(append([]string{}, a.ExecPrestart...), b.ExecPrestart...)
	out.ExecCreated = append(append([]string{}, a.ExecCreated...), b.ExecCreated...)
	out.ExecPoststart = append(append([]string{}, a.ExecPoststart...), b.ExecPoststart...)
	out.ExecPrestop = append(append([]string{}, a.ExecPrestop...), b.ExecPrestop...)
	out.ExecPoststop = append(append([]string{}, a.ExecPoststop...), b.ExecPoststop...)
	return out
}

func firstPtr[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// resolveIfaces builds the host's interface table: what it creates, who
// claims each interface, and the addresses.
func (r *Repo) resolveIfaces(h *host, pl *problemList) {
	s := h.spec
	// The interfaces in one allocation, the maps at their size.
	n := len(s.NICs) + len(s.Laggs) + len(s.Vlans) + len(s.Bridges) + 2*len(s.Epairs) + len(s.WireGuard)
	all := make([]iface, 0, n)
	h.ifaces = make(map[string]*iface, n)
	h.jails = make(map[string]*Jail, len(s.Jails))
	add := func(name, kind string, pos Pos) *iface {
		if !isName(name) {
			pl.add(pos, h.where, "bad interface name %q (letters, digits, '_')", name)
		}
		if old := h.ifaces[name]; old != nil {
			pl.add(pos, h.where, "interface %s defined twice (also %s at line %d)", name, old.kind, old.pos.Line)
			return old
		}
		all = append(all, iface{name: name, kind: kind, pos: pos}) // n adds at most: never moved
		i := &all[len(all)-1]
		h.ifaces[name] = i
		return i
	}
	for _, name := range sortedKeys(s.NICs) {
		add(name, "nic", r.pos.key(h.own.NICs, name))
		if _, ok := h.own.NICs[name]; !ok && h.role != nil {
			h.ifaces[name].pos = r.pos.key(h.role.NICs, name)
		}
	}
	for _, l := range s.Laggs {
		add(l.Name, "lagg", r.pos.at(l, "name"))
	}
	for _, v := range s.Vlans {
		add(v.Name, "vlan", r.pos.at(v, "name"))
	}
	for _, b := range s.Bridges {
		add(b.Name, "bridge", r.pos.at(b, "name"))
	}
	for _, e := range s.Epairs {
		add((*e)[0], "epair", r.pos.at(e, ""))
		add((*e)[1], "epair", r.pos.at(e, ""))
	}
	for _, w := range s.WireGuard {
		add(w.Name, "wg", r.pos.at(w, "name"))
	}
	claim := func(name, by, jail string, pos Pos) {
		i := h.ifaces[name]
		if i == nil {
			if jail != "" {
				pl.add(pos, h.where+": "+by, "vnet interface %s is never created by the host", name)
			} else {
				pl.add(pos, h.where+": "+by, "unknown interface %s", name)
			}
			return
		}
		if i.claim != "" {
			pl.add(pos, h.where, "interface %s claimed by both %s and %s", name, i.claim, by)
			i.contested = true
			return
		}
		i.claim, i.jail = by, jail
	}
	for _, l := range s.Laggs {
		switch l.Proto {
		case "failover", "lacp", "loadbalance", "roundrobin", "broadcast", "none":
		default:
			pl.add(r.pos.at(l, "proto"), h.where+": lagg "+l.Name, "proto %q: want failover, lacp, loadbalance or roundrobin", l.Proto)
		}
		if len(l.Ports) == 0 {
			pl.add(r.pos.at(l, "ports"), h.where+": lagg "+l.Name, "no ports")
		}
		for i, p := range l.Ports {
			claim(p, "lagg "+l.Name, "", r.pos.elem(l, "ports", i))
		}
	}
	for _, v := range s.Vlans {
		if v.Tag < 1 || v.Tag > 4094 {
			pl.add(r.pos.at(v, "tag"), h.where+": vlan "+v.Name, "tag %d: want 1-4094", v.Tag)
		}
		if h.ifaces[v.Parent] == nil {
			pl.add(r.pos.at(v, "parent"), h.where+": vlan "+v.Name, "unknown parent interface %q", v.Parent)
		}
	}
	for _, b := range s.Bridges {
		for i, m := range b.Members {
			claim(m, "bridge "+b.Name, "", r.pos.elem(b, "members", i))
		}
	}
	for _, j := range s.Jails {
		jw := h.where + ": jail " + j.Name
		if !isName(j.Name) {
			pl.add(r.pos.at(j, "name"), jw, "bad jail name (letters, digits, '_')")
		}
		if old := h.jails[j.Name]; old != nil {
			pl.add(r.pos.at(j, "name"), h.where, "jail %s defined twice (also line %d)", j.Name, r.pos.at(old, "").Line)
			continue
		}
		h.jails[j.Name] = j
		h.jailsIn = append(h.jailsIn, j)
		for i, name := range j.Interfaces {
			claim(name, "jail "+j.Name, j.Name, r.pos.elem(j, "interfaces", i))
		}
	}
	for _, e := range s.Epairs {
		for _, end := range *e {
			if i := h.ifaces[end]; i != nil && i.claim == "" && len(s.Addrs[end]) == 0 {
				pl.add(r.pos.at(e, ""), h.where, "epair end %s is never used (no bridge, jail or address)", end)
			}
		}
	}
	// Addresses: one place, checked for syntax, unknown interfaces and
	// duplicates within the host.
	seen := make(map[netip.Addr]string, len(s.Addrs))
	h.byAddr = make(map[netip.Addr]*iface, len(s.Addrs))
	for _, name := range sortedKeys(s.Addrs) {
		pos := h.addrPos[name]
		i := h.ifaces[name]
		if i == nil {
			pl.add(pos, h.where+": addrs", "unknown interface %s", name)
			continue
		}
		for _, a := range s.Addrs[name] {
			if a == "DHCP" || a == "SYNCDHCP" {
				i.addrs = append(i.addrs, a)
				continue
			}
			p, err := netip.ParsePrefix(a)
			if err != nil {
				pl.add(pos, h.where+": addrs: "+name, "address %q: want ADDR/PREFIXLEN", a)
				i.badAddr = true
				continue
			}
			if other, dup := seen[p.Addr()]; dup {
				pl.add(pos, h.where+": addrs: "+name, "address %s already used by %s", p.Addr(), other)
				continue
			}
			seen[p.Addr()] = name
			i.addrs = append(i.addrs, a)
			i.prefix = append(i.prefix, p)
			h.byAddr[p.Addr()] = i
		}
	}
	switch s.Management {
	case "", "confirm", "forbid":
	default:
		pl.add(r.specPos(h, "management"), h.where+": management", "%q: want confirm or forbid", s.Management)
	}
	for i, n := range s.NetifRestart {
		if h.ifaces[n] == nil {
			pl.add(r.pos.elem(h.own, "netif_restart", i), h.where+": netif_restart", "unknown interface %s", n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ref resolves "[HOST/]IF" or a literal address, relative to host h.
func (r *Repo) ref(h *host, s string) (endpoint, error) {
	if a, err := parseAddr(s); err == nil {
		return endpoint{addr: a}, nil
	}
	hn, ifn, ok := strings.Cut(s, "/")
	target := h
	if ok {
		if hn == "peer" {
			if h.spec.Peer == "" {
				return endpoint{}, fmt.Errorf("%q: host %s has no peer", s, h.name)
			}
			hn = h.spec.Peer
		}
		target = r.hosts[hn]
		if target == nil {
			return endpoint{}, fmt.Errorf("%q: unknown host %s", s, hn)
		}
	} else {
		ifn = hn
	}
	i := target.ifaces[ifn]
	if i == nil {
		return endpoint{}, fmt.Errorf("%q: host %s has no interface %s", s, target.name, ifn)
	}
	if len(i.prefix) == 0 {
		if i.badAddr {
			return endpoint{}, errReported
		}
		return endpoint{}, fmt.Errorf("%q: interface %s on host %s has no address", s, ifn, target.name)
	}
	for _, p := range i.prefix {
		if p.Addr().Is4() {
			return endpoint{host: target.name, addr: p.Addr()}, nil
		}
	}
	return endpoint{host: target.name, addr: i.prefix[0].Addr()}, nil
}

// errNotAddr: a ref that cannot be an address, as netip would say
// without allocating its error (most refs name interfaces).
var errNotAddr = errors.New("not an address")

// mayBeAddr: netip.ParseAddr could accept s (an IPv4 address has dots,
// an IPv6 one colons; netip.ParseAddr fails on anything else).
func mayBeAddr(s string) bool { return strings.ContainsAny(s, ".:") }

// parseAddr is netip.ParseAddr, failing on an interface ref without
// allocating an error.
func parseAddr(s string) (netip.Addr, error) {
	if !mayBeAddr(s) {
		return netip.Addr{}, errNotAddr
	}
	return netip.ParseAddr(s)
}

// parseAddrPort is netip.ParseAddrPort, failing on "REF:PORT" without
// allocating an error (its address is what precedes the last colon).
func parseAddrPort(s string) (netip.AddrPort, error) {
	if i := strings.LastIndexByte(s, ':'); i < 0 || !mayBeAddr(s[:i]) {
		return netip.AddrPort{}, errNotAddr
	}
	return netip.ParseAddrPort(s)
}

// parsePrefix is netip.ParsePrefix, failing on a ref ("IF",
// "HOST/IF") without allocating an error (its address is what precedes
// the last slash).
func parsePrefix(s string) (netip.Prefix, error) {
	if i := strings.LastIndexByte(s, '/'); i < 0 || !mayBeAddr(s[:i]) {
		return netip.Prefix{}, errNotAddr
	}
	return netip.ParsePrefix(s)
}

// prefixOf resolves "[HOST/]IF" to the interface's first address with
// its prefix length.
func (r *Repo) prefixOf(h *host, s string) (netip.Prefix, error) {
	e, err := r.ref(h, s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if e.host == "" {
		return netip.Prefix{}, fmt.Errorf("%q: want an interface, not an address", s)
	}
	for _, i := range r.hosts[e.host].ifaces {
		for _, p := range i.prefix {
			if p.Addr() == e.addr {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("%q: no address", s)
}

// endpointOf resolves "REF:PORT" or "[V6]:PORT".
func (r *Repo) endpointOf(h *host, s string) (endpoint, error) {
	if ap, err := parseAddrPort(s); err == nil {
		return endpoint{addr: ap.Addr(), port: int(ap.Port())}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return endpoint{}, fmt.Errorf("endpoint %q: want [HOST/]IF:PORT or ADDR:PORT", s)
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return endpoint{}, fmt.Errorf("endpoint %q: bad port", s)
	}
	e, err := r.ref(h, s[:i])
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %w", err)
	}
	e.port = port
	return e, nil
}

// resolveHost checks everything within one host: gateway, jails, pipes,
// WireGuard, files, checks.
func (r *Repo) resolveHost(h *host, pl *problemList) {
	s := h.spec
	if s.Peer != "" && r.hosts[s.Peer] == nil {
		pl.add(r.pos.at(h.own, "peer"), h.where, "unknown peer host %q", s.Peer)
	}
	if s.Peer == h.name {
		pl.add(r.pos.at(h.own, "peer"), h.where, "a host cannot be its own peer")
	}
	if s.Gateway != "" {
		if _, err := r.ref(h, s.Gateway); err != nil {
			pl.add(r.specPos(h, "gateway"), h.where+": gateway", "%v", err)
		}
	}
	for i, svc := range s.Services {
		if !isName(svc) {
			pl.add(r.pos.elem(h.own, "services", i), h.where+": services", "bad service name %q", svc)
		}
	}
	h.listeners = map[string]*rpipe{}
	bound := map[string]string{}
	for _, j := range h.jailsIn {
		jw := h.where + ": jail " + j.Name
		if j.Gateway != "" {
			if _, err := r.ref(h, j.Gateway); err != nil {
				pl.add(r.pos.at(j, "gateway"), jw+": gateway", "%v", err)
			}
		}
		for _, v := range []struct{ k, v string }{{"sysvshm", pick(j.Sysvshm, s.JailsDef.Sysvshm)}, {"sysvsem", pick(j.Sysvsem, s.JailsDef.Sysvsem)}, {"sysvmsg", pick(j.Sysvmsg, s.JailsDef.Sysvmsg)}} {
			switch v.v {
			case "", "new", "inherit", "disable":
			default:
				pl.add(r.pos.at(j, v.k), jw, "%s %q: want new, inherit or disable", v.k, v.v)
			}
		}
		if j.Vnet != nil && !*j.Vnet && len(j.Interfaces) > 0 {
			pl.add(r.pos.at(j, "vnet"), jw, "vnet: false, but interfaces need a vnet jail")
		}
		for _, n := range sortedKeys(j.Netif) {
			nw := jw + ": netif " + n
			pos := r.pos.key(j.Netif, n)
			if ni := j.Netif[n]; ni != nil {
				pos = r.pos.at(ni, "")
			}
			if !slices.Contains(j.Interfaces, n) && !slices.ContainsFunc(j.Interfaces, func(x string) bool { return epairPeer(h, x) == n }) {
				pl.add(pos, nw, "not an interface of the jail or the host's end of one of its epairs")
				continue
			}
			ni := j.Netif[n]
			if ni == nil {
				continue
			}
			if ni.FIB != nil && (*ni.FIB < 0 || *ni.FIB > 65535) {
				pl.add(r.pos.at(ni, "fib"), nw, "fib %d: want 0 or more (and below net.fibs)", *ni.FIB)
			}
			if ni.MTU != 0 && (ni.MTU < 68 || ni.MTU > 65535) {
				pl.add(r.pos.at(ni, "mtu"), nw, "mtu %d: want 68-65535", ni.MTU)
			}
			for i, rt := range ni.Routes {
				if _, ok := routeArgs(rt, n); !ok {
					pl.add(r.pos.elem(ni, "routes", i), nw, "route %q: want \"NETWORK\" or \"NETWORK GATEWAY\" of one family", rt)
				}
			}
		}
		p := r.jailParams(h, j)
		if h.params == nil {
			h.params = make(map[*Jail]*JailParams, len(h.jailsIn))
		}
		h.params[j] = p
		if !path.IsAbs(p.Path) || path.Clean(p.Path) != p.Path {
			pl.add(r.pos.at(j, "path"), jw, "path %q: want a clean absolute path", p.Path)
		}
		names := map[string]bool{}
		for _, pp := range j.Pipes {
			pw := jw + ": pipe " + pp.Name
			if !isName(pp.Name) {
				pl.add(r.pos.at(pp, "name"), pw, "bad pipe name (letters, digits, '_')")
			}
			if names[pp.Name] {
				pl.add(r.pos.at(pp, "name"), jw, "pipe %s defined twice", pp.Name)
			}
			names[pp.Name] = true
			if pp.Mode != "encrypt" && pp.Mode != "decrypt" {
				pl.add(r.pos.at(pp, "mode"), pw, "mode %q: want encrypt or decrypt", pp.Mode)
			}
			rp := &rpipe{p: pp, jail: j}
			var err error
			if rp.src, err = r.endpointOf(h, pp.Source); err != nil {
				pl.add(r.pos.at(pp, "source"), pw+": source", "%v", err)
				r.dangling.Store(true)
				continue
			}
			if rp.dst, err = r.endpointOf(h, pp.Target); err != nil {
				pl.add(r.pos.at(pp, "target"), pw+": target", "%v", err)
				r.dangling.Store(true)
				continue
			}
			if owner, i := r.jailOf(h, rp.src.addr); (i == nil || !i.contested) && (rp.src.host != h.name || owner != j.Name) {
				pl.add(r.pos.at(pp, "source"), pw+": source", "%s is not an address of jail %s", rp.src.addr, j.Name)
			}
			key := rp.src.String()
			if other, dup := bound[key]; dup {
				pl.add(r.pos.at(pp, "source"), pw+": source", "%s already bound by %s", key, other)
			}
			bound[key] = "pipe " + pp.Name + " in jail " + j.Name
			if pp.Mode == "decrypt" {
				h.listeners[key] = rp
			}
			if pp.Key != "" && !path.IsAbs(pp.Key) {
				pl.add(r.pos.at(pp, "key"), pw, "key %q: want an absolute path inside the jail", pp.Key)
			}
			switch pp.Probe {
			case "pg-ssl", "send-expect", "banner", "none":
			case "":
				if pp.Mode == "encrypt" {
					pl.add(r.pos.at(pp, ""), pw, "encrypt pipe needs a probe (pg-ssl, send-expect, banner or none)")
				}
			default:
				pl.add(r.pos.at(pp, "probe"), pw, "probe %q: want pg-ssl, send-expect, banner or none", pp.Probe)
			}
			if (pp.Probe == "send-expect" || pp.Probe == "banner") && pp.Expect == "" {
				pl.add(r.pos.at(pp, "probe"), pw, "probe %s needs expect", pp.Probe)
			}
			h.pipes = append(h.pipes, rp)
		}
		for i, svc := range j.Services {
			if !isName(svc) {
				pl.add(r.pos.elem(j, "services", i), jw+": services", "bad service name %q", svc)
			}
		}
	}
	r.checkWireGuard(h, pl)
	r.checkPF(h, pl)
}

// specPos is the position of a merged scalar key: the host's if it set
// it, else the role's.
func (r *Repo) specPos(h *host, key string) Pos {
	if n := r.pos.nodes[h.own]; n != nil && mapValue(n, key) != nil {
		return r.pos.at(h.own, key)
	}
	if h.role != nil {
		return r.pos.at(h.role, key)
	}
	return r.pos.at(h.own, key)
}

// jailOf names the jail owning addr on host h ("" = the host itself) and
// the interface carrying it.
func (r *Repo) jailOf(h *host, a netip.Addr) (string, *iface) {
	if i := h.byAddr[a]; i != nil {
		return i.jail, i
	}
	return "-", nil
}

// crossCheck runs the checks that need every host resolved: each encrypt
// pipe must reach a decrypt pipe listening on the address it targets.
func (r *Repo) crossCheck(h *host, pl *problemList) {
	for _, rp := range h.pipes {
		if rp.p.Mode != "encrypt" || rp.dst.host == "" {
			continue
		}
		peer := r.hosts[rp.dst.host]
		if peer != h {
			if peer.incoming == nil {
				peer.incoming = map[int]bool{}
			}
			peer.incoming[rp.dst.port] = true
		}
		if peer.clients == nil {
			peer.clients = map[string][]pipeEnd{}
		}
		peer.clients[rp.dst.String()] = append(peer.clients[rp.dst.String()], pipeEnd{h, rp})
		if _, ok := peer.listeners[rp.dst.String()]; !ok {
			r.dangling.Store(true)
			pl.add(r.pos.at(rp.p, "target"), h.where+": jail "+rp.jail.Name+": pipe "+rp.p.Name,
				"no decrypt pipe listens on %s on host %s", rp.dst, rp.dst.host)
		}
	}
}

func (r *Repo) checkWireGuard(h *host, pl *problemList) {
	for _, w := range h.spec.WireGuard {
		ww := h.where + ": wireguard " + w.Name
		if w.Table != "" && w.Table != "off" && w.Table != "auto" {
			pl.add(r.pos.at(w, "table"), ww, "table %q: want off or auto", w.Table)
		}
		if len(w.FIBRoutes) > 0 && w.Table != "off" {
			pl.add(r.pos.at(w, "fib_routes"), ww, "fib_routes need table: off")
		}
		for i, rt := range w.FIBRoutes {
			if _, err := netip.ParsePrefix(rt); err != nil {
				pl.add(r.pos.elem(w, "fib_routes", i), ww, "route %q: want a network like 0.0.0.0/0", rt)
			}
		}
		if len(h.ifaces[w.Name].prefix) == 0 {
			pl.add(r.pos.at(w, "name"), ww, "no address (add it under addrs)")
		}
		for _, p := range w.Peers {
			pw := ww + ": peer " + p.Host
			ph := r.hosts[p.Host]
			if ph == nil {
				pl.add(r.pos.at(p, "host"), pw, "unknown host %q", p.Host)
				continue
			}
			pi := r.peerWG(p, w)
			if pi == nil {
				pl.add(r.pos.at(p, "host"), pw, "host %s has no wireguard interface %s", p.Host, pick(p.Interface, w.Name))
				continue
			}
			if pi.PublicKey == "" {
				pl.add(r.pos.at(p, "host"), pw, "host %s's %s has no public_key", p.Host, pi.Name)
			}
			for i, a := range append(append([]string{}, p.AllowedIPs...), p.Routes...) {
				if _, err := netip.ParsePrefix(a); err != nil {
					pl.add(r.pos.elem(p, "allowed_ips", i), pw, "allowed IP %q: want a network", a)
				}
			}
		}
	}
}

// peerWG is the peer host's interface a WGPeer refers to.
func (r *Repo) peerWG(p *WGPeer, w *WG) *WG {
	ph := r.hosts[p.Host]
	if ph == nil {
		return nil
	}
	want := pick(p.Interface, w.Name)
	for _, x := range ph.spec.WireGuard {
		if x.Name == want {
			return x
		}
	}
	return nil
}

func (r *Repo) checkPF(h *host, pl *problemList) {
	pf := h.spec.PF
	if pf == nil {
		return
	}
	for _, name := range sortedKeys(pf.Tables) {
		t := pf.Tables[name]
		tw := h.where + ": pf table " + name
		if !isName(name) {
			pl.add(r.pos.key(pf.Tables, name), tw, "bad table name")
		}
		if t == nil {
			continue
		}
		if t.Source != "" && len(t.Entries) > 0 {
			pl.add(r.pos.at(t, "source"), tw, "use entries or source, not both")
		}
		for i, e := range t.Entries {
			if _, err := r.tableEntry(h, e); err != nil {
				pl.add(r.pos.elem(t, "entries", i), tw, "%v", err)
			}
		}
	}
}

// tableEntry renders one pf table entry: an address, a network, an
// interface ref ([HOST/]IF: its address) or net:REF (its network),
// optionally negated with "!".
func (r *Repo) tableEntry(h *host, e string) (string, error) {
	neg := ""
	if strings.HasPrefix(e, "!") {
		neg, e = "!", e[1:]
	}
	if p, err := parsePrefix(e); err == nil {
		return neg + p.String(), nil
	}
	if ref, ok := strings.CutPrefix(e, "net:"); ok {
		p, err := r.prefixOf(h, ref)
		if err != nil {
			return "", fmt.Errorf("entry %w", err)
		}
		return neg + p.Masked().String(), nil
	}
	ep, err := r.ref(h, e)
	if err != nil {
		return "", fmt.Errorf("entry %w", err)
	}
	return neg + ep.addr.String(), nil
}

// jailParams returns the effective jail.conf parameters of j.
// resolveHost makes them once for each jail of the host; the result is
// shared, read-only.
func (r *Repo) jailParams(h *host, j *Jail) *JailParams {
	if p := h.params[j]; p != nil {
		return p
	}
	p := mergeJailParams(h.spec.JailsDef, &j.JailParams)
	if p.Path == "" {
		p.Path = "/jails/" + j.Name
	}
	p.Path = strings.ReplaceAll(p.Path, "$name", j.Name)
	return p
}

func jailName(j *Jail) string { return j.Name }
func wgName(w *WG) string     { return w.Name }
