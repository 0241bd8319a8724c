package topology

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"unicode/utf8"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

// Default metadata of rendered files.
const (
	defaultOwner   = "root"
	defaultGroup   = "wheel"
	defaultSpiped  = "/etc/spiped.key"
	wireguardDir   = "/usr/local/etc/wireguard"
	loaderConfPath = "/boot/loader.conf.d/rigger.conf"
)

const header = "# Rendered by rigger from the infra repo: edit the repo, not this file.\n"

// renderAll renders every host, on every core. Hosts are rendered from
// the resolved (read-only) repo, each into its own render and problem
// list (eachHost); the lists are joined in host order, and Problems are
// a sorted set, so the result does not depend on scheduling. Templates
// are parsed first, once, in host order: the first host using a broken
// or missing template reports it, as when hosts were rendered one by one.
func (r *Repo) renderAll(pl *problemList) {
	for _, name := range r.names {
		r.parseTemplates(r.hosts[name], pl)
	}
	// Nothing is handed on once the repo is known to have problems.
	hand := r.opts.Rendered
	if pl.err() != nil {
		hand = nil
	}
	r.eachHost(pl, func(h *host, pl *problemList) {
		h.render = r.prepareFiles(h, pl)
		if hand != nil && pl.err() == nil {
			hand(h.render)
		}
	})
	for _, name := range r.names {
		r.renders[name] = r.hosts[name].render
	}
}

// eachHost runs fn for every host on every core, each host with its own
// problem list; the lists are joined in host order. fn may change its
// host and only read the others.
func (r *Repo) eachHost(pl *problemList, fn func(h *host, pl *problemList)) {
	lists := make([]problemList, len(r.names))
	parallel(len(r.names), func(i int) {
		fn(r.hosts[r.names[i]], &lists[i])
	})
	for _, l := range lists {
		pl.ps = append(pl.ps, l.ps...)
	}
}

// parallel runs fn(0) … fn(n-1) on every core (GOMAXPROCS goroutines
// taking the next index) and returns when all have returned.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// parseTemplates parses the templates h uses that no earlier host used
// (the ones prepareFiles executes, in its order), so that rendering only
// reads r.tmpls.
func (r *Repo) parseTemplates(h *host, pl *problemList) {
	if pf := h.spec.PF; pf != nil && pf.Template != "" {
		r.parseTemplate(h, pf.Template, r.pos.at(pf, "template"), pl)
	}
	for _, fsp := range h.spec.Files {
		if fsp.Template != "" && fsp.Source == "" {
			r.parseTemplate(h, fsp.Template, r.pos.at(fsp, "template"), pl)
		}
	}
}

// prepareFiles renders host h once, recording problems (template errors,
// paths, units, duplicate targets). Render returns a copy of the result.
// It runs concurrently for different hosts: it only reads the repo.
func (r *Repo) prepareFiles(h *host, pl *problemList) *HostRender {
	hr := &HostRender{Host: h.name, Wave: h.wave, Bake: h.bake, ReportKey: h.reportKey, Release: h.rel, Paths: policy.Paths{Roots: append([]string(nil), h.paths.Roots...)}}
	// Every file but the optional ones: one allocation for the list.
	hr.Files = make([]RenderedFile, 0, 6+2*len(h.jailsIn)+len(h.spec.WireGuard)+len(h.spec.Files)+pfFiles(h.spec.PF))
	for _, g := range h.own.Gate {
		if gh := r.hosts[g]; gh != nil {
			hr.Gate = append(hr.Gate, g)
			if hr.ReportKeys == nil {
				hr.ReportKeys = map[string]string{}
			}
			hr.ReportKeys[g] = gh.reportKey
		}
	}
	pathsOK := r.pathsOK(h)
	add := func(f RenderedFile, pos Pos) {
		if err := r.checkPath(pathsOK, h, f.Path); err != nil {
			pl.add(pos, h.where, "%v", err)
			return
		}
		for _, o := range hr.Files {
			if o.Path == f.Path {
				pl.add(pos, h.where, "target %s rendered twice", f.Path)
				return
			}
		}
		hr.Files = append(hr.Files, f)
	}
	sys := func(p, unit string, mode verify.Mode, content []byte) RenderedFile {
		return RenderedFile{Path: p, Mode: mode, Owner: defaultOwner, Group: defaultGroup, Unit: unit, Content: content}
	}
	hostPos := r.pos.key(r.file.Hosts, h.name)

	add(sys("/etc/rc.conf", string(verify.UnitRebootRequired), 0o644, r.hostRC(h)), hostPos)
	if len(h.jailsIn) > 0 {
		jc := r.sizes.jailList.buffer(0)
		jc.WriteString(header)
		jc.WriteString("# Jails in boot order; each jail's block is in /etc/jail.conf.d/NAME.conf,\n# which `service jail restart NAME` reads on its own.\n")
		for _, j := range h.jailsIn {
			jc.WriteString(".include \"/etc/jail.conf.d/")
			jc.WriteString(j.Name)
			jc.WriteString(".conf\";\n")
		}
		add(sys("/etc/jail.conf", string(verify.UnitNone), 0o644, r.sizes.jailList.bytes(0, jc)), hostPos)
		for _, j := range h.jailsIn {
			add(sys("/etc/jail.conf.d/"+j.Name+".conf", "jail:"+j.Name, 0o644, r.jailConf(h, j)), r.pos.at(j, ""))
			p := r.jailParams(h, j)
			add(sys(p.Path+"/etc/rc.conf", "jail:"+j.Name, 0o644, r.jailRC(h, j)), r.pos.at(j, ""))
		}
	}
	if len(h.spec.Sysctl) > 0 {
		b := r.sizes.sysctl.buffer(0)
		b.WriteString(header)
		for _, k := range sortedKeys(h.spec.Sysctl) {
			fmt.Fprintf(b, "%s=%s\n", k, h.spec.Sysctl[k])
		}
		add(sys("/etc/sysctl.conf", string(verify.UnitSysctl), 0o644, r.sizes.sysctl.bytes(0, b)), r.specPos(h, "sysctl"))
	}
	if len(h.spec.Loader) > 0 {
		b := r.sizes.loader.buffer(0)
		b.WriteString(header)
		for _, k := range sortedKeys(h.spec.Loader) {
			fmt.Fprintf(b, "%s=%s\n", k, rcQuote(h.spec.Loader[k]))
		}
		add(sys(loaderConfPath, string(verify.UnitRebootRequired), 0o644, r.sizes.loader.bytes(0, b)), r.specPos(h, "loader"))
	}
	for _, w := range h.spec.WireGuard {
		add(sys(wireguardDir+"/"+w.Name+".conf", "wireguard:"+w.Name, 0o600, r.wgConf(h, w)), r.pos.at(w, ""))
	}
	view := r.view(h)
	if pf := h.spec.PF; pf != nil {
		for _, name := range sortedKeys(pf.Tables) {
			t := pf.Tables[name]
			var b []byte
			if t != nil && t.Source != "" {
				src, err := r.source(t.Source)
				if err != nil {
					pl.add(r.pos.at(t, "source"), h.where+": pf table "+name, "%v", err)
					continue
				}
				b = src // shared with every host using it: renders are read-only
			} else if t != nil {
				for _, e := range t.Entries {
					s, _ := r.tableEntry(h, e)
					b = append(append(b, s...), '\n')
				}
			}
			add(sys(tablePath(name, t), "pf-table:"+name, 0o644, b), r.pos.key(pf.Tables, name))
		}
		if pf.Template == "" {
			pl.add(r.pos.at(pf, ""), h.where+": pf", "no template")
		} else if out, ok := r.execute(h, pf.Template, view, pl); ok {
			add(sys("/etc/pf.conf", string(verify.UnitPF), 0o600, out), r.pos.at(pf, "template"))
		}
	}
	for _, fsp := range h.spec.Files {
		fw := h.where + ": file " + fsp.Target
		var content []byte
		switch {
		case (fsp.Template == "") == (fsp.Source == ""):
			pl.add(r.pos.at(fsp, ""), fw, "want exactly one of template or source")
			continue
		case fsp.Template != "":
			out, ok := r.execute(h, fsp.Template, view, pl)
			if !ok {
				continue
			}
			content = out
		default:
			src, err := r.source(fsp.Source)
			if err != nil {
				pl.add(r.pos.at(fsp, "source"), fw, "%v", err)
				continue
			}
			content = src // shared, as pf table sources
		}
		mode := verify.Mode(0o644)
		if fsp.Mode != "" {
			if err := mode.UnmarshalText([]byte(fsp.Mode)); err != nil {
				pl.add(r.pos.at(fsp, "mode"), fw, "%v", err)
			}
		}
		unit := pick(fsp.Unit, string(verify.UnitNone))
		if err := r.checkUnit(h, unit); err != nil {
			pl.add(r.pos.at(fsp, "unit"), fw, "%v", err)
		}
		add(RenderedFile{Path: fsp.Target, Mode: mode, Owner: pick(fsp.Owner, defaultOwner), Group: pick(fsp.Group, defaultGroup), Unit: unit, Content: content}, r.pos.at(fsp, "target"))
	}
	sortBy(hr.Files, func(f *RenderedFile) string { return f.Path })
	hr.Health = r.healthChecks(h, pl)
	hr.Secrets = r.secrets(h)
	hr.NetifRestart = append([]string(nil), h.spec.NetifRestart...)
	sort.Strings(hr.NetifRestart)
	hr.TunnelPorts = h.tunnelPorts
	hr.FleetTunnelPorts = r.fleetPorts
	hr.Desc = r.hostDesc(h, pl)
	return hr
}

// sortBy sorts xs by key, stably, moving each item once: the order is
// found on indexes (insertion sort: a host's lists are short), then
// applied cycle by cycle. Sorting large items themselves (files, host
// interfaces) moved them many times over.
func sortBy[T any](xs []T, key func(*T) string) {
	var buf [32]int
	idx := buf[:0]
	for i := range xs {
		idx = append(idx, i)
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && key(&xs[idx[j]]) < key(&xs[idx[j-1]]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	// Item i goes to the place of idx's i: follow each cycle once.
	for i := range idx {
		if idx[i] < 0 || idx[i] == i {
			continue
		}
		tmp := xs[i]
		j := i
		for {
			k := idx[j]
			idx[j] = -1
			if k == i {
				xs[j] = tmp
				break
			}
			xs[j] = xs[k]
			j = k
		}
	}
}

// checkPath is h.paths.Check(p), remembered in ok (pathsOK(h)): hosts
// render the same system paths (/etc/rc.conf, /etc/jail.conf.d/NAME.conf,
// ...), so those pass once for all hosts whose agents take the same
// roots.
func (r *Repo) checkPath(ok *sync.Map, h *host, p string) error {
	if _, found := ok.Load(p); found {
		return nil
	}
	err := h.paths.Check(p)
	if err == nil {
		ok.Store(p, true)
	}
	return err
}

// pathsOK is where checkPath remembers the targets h's agent accepts:
// r.defaultPathsOK for the hosts whose agents take the default paths
// (most), else the set shared by the hosts with the same agent roots.
func (r *Repo) pathsOK(h *host) *sync.Map {
	if len(h.spec.AgentRoots) == 0 {
		return &r.defaultPathsOK
	}
	m, _ := r.agentRootsOK.LoadOrStore(fmt.Sprintf("%q", h.paths.Roots), new(sync.Map))
	return m.(*sync.Map)
}

// pfFiles is how many files pf's part of a render has: pf.conf and a
// file per table.
func pfFiles(pf *PF) int {
	if pf == nil {
		return 0
	}
	return 1 + len(pf.Tables)
}

func tablePath(name string, t *PFTable) string {
	if t != nil && t.Path != "" {
		return t.Path
	}
	return "/etc/pf/" + name + ".table"
}

// checkUnit parses a unit and checks that what it names exists on h.
func (r *Repo) checkUnit(h *host, s string) error {
	u, err := verify.ParseUnit(s)
	if err != nil {
		return err
	}
	switch u.Kind {
	case verify.UnitJail, verify.UnitJailService:
		if h.jails[u.Jail] == nil {
			return fmt.Errorf("unit %q: unknown jail %s", s, u.Jail)
		}
	case verify.UnitPFTable:
		if h.spec.PF == nil || h.spec.PF.Tables == nil {
			return fmt.Errorf("unit %q: unknown pf table %s", s, u.Name)
		}
		if _, ok := h.spec.PF.Tables[u.Name]; !ok {
			return fmt.Errorf("unit %q: unknown pf table %s", s, u.Name)
		}
	case verify.UnitWireGuard, verify.UnitNetif:
		if h.ifaces[u.Name] == nil {
			return fmt.Errorf("unit %q: unknown interface %s", s, u.Name)
		}
	}
	return nil
}

// source reads a verbatim repo file (cached; hosts render concurrently).
func (r *Repo) source(name string) ([]byte, error) {
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	if b, ok := r.sources[name]; ok {
		return b, nil
	}
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("source %q: want a relative path inside the repo", name)
	}
	b, err := fs.ReadFile(r.fsys, name)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", name, err)
	}
	r.sources[name] = b
	return b, nil
}

// repoTemplate is a parsed repo template, its compiled form (nil when
// text/template runs it) and the size of its last output.
type repoTemplate struct {
	t    *template.Template
	c    *compiledTemplate
	size sizeHint
}

// sizeHint is the size of the last file of one kind a render wrote
// (hosts render concurrently), so that the next host's is allocated once
// at about its size rather than grown step by step. A host's jails'
// files differ from jail to jail (a database's rc.conf is not its
// proxy's) but repeat from host to host of a role, so they are
// remembered by the jail's place in the boot order (slot; 0 for the
// other kinds).
type sizeHint struct{ n [4]atomic.Int64 }

// buffer is an empty buffer with room for the slot's last size and some
// more (hosts of a role differ by a few address digits per address).
func (s *sizeHint) buffer(slot int) *bytes.Buffer {
	n := s.at(slot).Load()
	return bytes.NewBuffer(make([]byte, 0, n+n/16+64))
}

// bytes is b's contents, its size remembered for the slot.
func (s *sizeHint) bytes(slot int, b *bytes.Buffer) []byte {
	s.at(slot).Store(int64(b.Len()))
	return b.Bytes()
}

// at is the slot's size; the last slot serves the ones after it.
func (s *sizeHint) at(slot int) *atomic.Int64 { return &s.n[max(0, min(slot, len(s.n)-1))] }

// parseTemplate parses a repo template once into r.tmpls (nil when it is
// missing or broken: the problem is reported once, for host h).
func (r *Repo) parseTemplate(h *host, name string, pos Pos, pl *problemList) {
	if _, ok := r.tmpls[name]; ok {
		return
	}
	src, err := r.source(name)
	if err != nil {
		pl.add(pos, h.where, "template %v", err)
		r.tmpls[name] = nil
		return
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(string(src))
	if err != nil {
		pl.addProblem(templateProblem(err, ""))
		r.tmpls[name] = nil
		return
	}
	r.tmpls[name] = &repoTemplate{t: t, c: compileTemplate(t)}
}

// execute runs a repo template (parsed by parseTemplates) with the host's
// view.
func (r *Repo) execute(h *host, name string, view *View, pl *problemList) ([]byte, bool) {
	rt := r.tmpls[name]
	if rt == nil {
		return nil, false
	}
	b := rt.size.buffer(0)
	if rt.c != nil && rt.c.execute(b, view) == nil {
		return rt.size.bytes(0, b), true
	}
	if err := rt.t.Execute(b, view); err != nil {
		pl.addProblem(templateProblem(err, h.where))
		return nil, false
	}
	return rt.size.bytes(0, b), true
}

// rcQuote quotes an rc.conf value for /bin/sh: double quotes with the
// characters that would expand escaped, so a value is data, never code.
func rcQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"', '\\', '$', '`':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

func rcVar(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteByte('=')
	writeRCQuoted(b, value)
	b.WriteByte('\n')
}

// writeRCQuoted writes rcQuote(s) to b.
func writeRCQuoted(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	writeRCEscaped(b, s)
	b.WriteByte('"')
}

// writeRCEscaped writes rcQuote(s) without its quotes to b, without the
// string in between when s is valid UTF-8 (rcQuote writes anything else
// rune by rune, replacing invalid bytes).
func writeRCEscaped(b *bytes.Buffer, s string) {
	if !utf8.ValidString(s) {
		q := rcQuote(s)
		b.WriteString(q[1 : len(q)-1])
		return
	}
	for {
		i := strings.IndexAny(s, "\"\\$`")
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteByte('\\')
		b.WriteByte(s[i])
		s = s[i+1:]
	}
	b.WriteString(s)
}

// ifconfigLines renders an interface's ifconfig_X line: pre words, the
// first IPv4 address (or DHCP), post words; more IPv4 addresses become
// aliases, IPv6 goes to ifconfig_X_ipv6. An interface with nothing else
// to say is "up".
func ifconfigLines(b *bytes.Buffer, name string, pre, post, addrs []string) {
	// Written in place: this runs for every interface of every host.
	isV4 := func(a string) bool { return a == "DHCP" || a == "SYNCDHCP" || !strings.Contains(a, ":") }
	// ifconfig's words for address a: DHCP as is, else inet or inet6 and a.
	addrWords := func(a string) (string, string) {
		switch {
		case a == "DHCP" || a == "SYNCDHCP":
			return "", a
		case strings.Contains(a, ":"):
			return "inet6 ", a
		}
		return "inet ", a
	}
	start := func(suffix string) { // ifconfig_NAME<suffix>="
		b.WriteString("ifconfig_")
		b.WriteString(name)
		b.WriteString(suffix)
		b.WriteString(`="`)
	}
	start("")
	words := 0
	word := func(kind, w string) {
		if words > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kind)
		writeRCEscaped(b, w)
		words++
	}
	for _, w := range pre {
		word("", w)
	}
	first4 := slices.IndexFunc(addrs, isV4)
	if first4 >= 0 {
		word(addrWords(addrs[first4]))
	}
	for _, w := range post {
		word("", w)
	}
	if words == 0 {
		b.WriteString("up")
	}
	b.WriteString("\"\n")
	first6 := slices.IndexFunc(addrs, func(a string) bool { return !isV4(a) })
	if first6 >= 0 {
		start("_ipv6")
		kind, a := addrWords(addrs[first6])
		b.WriteString(kind)
		writeRCEscaped(b, a)
		b.WriteString("\"\n")
	}
	// More addresses are aliases: IPv4 ones first, then IPv6.
	n := 0
	for _, v4 := range []bool{true, false} {
		for i, a := range addrs {
			if isV4(a) != v4 || i == first4 || i == first6 {
				continue
			}
			b.WriteString("ifconfig_")
			b.WriteString(name)
			b.WriteString("_alias")
			b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(n), 10))
			b.WriteString(`="`)
			kind, a := addrWords(a)
			b.WriteString(kind)
			writeRCEscaped(b, a)
			b.WriteString("\"\n")
			n++
		}
	}
}

// hostRC renders /etc/rc.conf: interfaces (renames, clones, addresses,
// bridges), routing, and the enabled services.
func (r *Repo) hostRC(h *host) []byte {
	s := h.spec
	b := r.sizes.hostRC.buffer(0)
	b.WriteString(header)
	if s.Hostname != "" {
		rcVar(b, "hostname", s.Hostname)
	}
	b.WriteString("\n# Interfaces: NICs renamed from their drivers, cloned interfaces renamed.\n")
	nics := sortedKeys(s.NICs)
	for _, n := range nics {
		if nic := s.NICs[n]; nic != nil && nic.Driver != "" && nic.Driver != n {
			rcVar(b, "ifconfig_"+ifVar(nic.Driver)+"_name", n)
		}
	}
	type rename struct{ from, to string }
	nCloned := len(s.Laggs) + len(s.Vlans) + len(s.Bridges) + len(s.Epairs)
	cloned := make([]string, 0, nCloned)
	renames := make([]rename, 0, nCloned+len(s.Epairs))
	for i, l := range s.Laggs {
		c := "lagg" + strconv.Itoa(i)
		cloned = append(cloned, c)
		renames = append(renames, rename{c, l.Name})
	}
	for i, v := range s.Vlans {
		c := "vlan" + strconv.Itoa(i)
		cloned = append(cloned, c)
		renames = append(renames, rename{c, v.Name})
	}
	for i, br := range s.Bridges {
		c := "bridge" + strconv.Itoa(i)
		cloned = append(cloned, c)
		renames = append(renames, rename{c, br.Name})
	}
	for i, e := range s.Epairs {
		c := "epair" + strconv.Itoa(i)
		cloned = append(cloned, c)
		renames = append(renames, rename{c + "a", (*e)[0]}, rename{c + "b", (*e)[1]})
	}
	if len(cloned) > 0 {
		rcVar(b, "cloned_interfaces", strings.Join(cloned, " "))
	}
	for _, rn := range renames {
		if rn.from != rn.to {
			rcVar(b, "ifconfig_"+rn.from+"_name", rn.to)
		}
	}
	b.WriteString("\n# Addresses and members; interfaces handed to jails are configured there.\n")
	for _, n := range nics {
		nic := s.NICs[n]
		var pre []string
		if nic != nil {
			if nic.VlanHWTag != nil {
				pre = append(pre, nic.vlanHWTagWord())
			}
			if nic.MTU != 0 {
				pre = append(pre, "mtu", strconv.Itoa(nic.MTU))
			}
			pre = append(pre, nic.Options...)
		}
		ifconfigLines(b, n, nil, pre, hostAddrs(h.ifaces[n]))
	}
	for _, l := range s.Laggs {
		pre := []string{"laggproto", l.Proto}
		for _, p := range l.Ports {
			pre = append(pre, "laggport", p)
		}
		ifconfigLines(b, l.Name, pre, nil, hostAddrs(h.ifaces[l.Name]))
	}
	for _, v := range s.Vlans {
		ifconfigLines(b, v.Name, []string{"vlan", strconv.Itoa(v.Tag), "vlandev", v.Parent}, nil, hostAddrs(h.ifaces[v.Name]))
	}
	for _, e := range s.Epairs {
		for _, end := range *e {
			if i := h.ifaces[end]; i.jail == "" {
				ifconfigLines(b, end, nil, nil, i.addrs)
			}
		}
	}
	for _, br := range s.Bridges {
		post := make([]string, 0, 2*len(br.Members)+1)
		for _, m := range br.Members {
			post = append(post, "addm", m)
		}
		ifconfigLines(b, br.Name, nil, append(post, "up"), h.ifaces[br.Name].addrs)
	}
	if s.Gateway != "" || len(s.Routes) > 0 || (s.GatewayEnable != nil && *s.GatewayEnable) {
		b.WriteString("\n# Routing\n")
	}
	if s.Gateway != "" {
		gw, _ := r.ref(h, s.Gateway)
		rcVar(b, "defaultrouter", gw.addr.String())
	}
	if len(s.Routes) > 0 {
		names := sortedKeys(s.Routes)
		rcVar(b, "static_routes", strings.Join(names, " "))
		for _, n := range names {
			rcVar(b, "route_"+n, s.Routes[n])
		}
	}
	if s.GatewayEnable != nil && *s.GatewayEnable {
		rcVar(b, "gateway_enable", "YES")
	}
	b.WriteString("\n# Services\n")
	enabled := enabledServices(h)
	for _, svc := range sortedKeys(enabled) {
		rcVar(b, svc+"_enable", "YES")
	}
	if enabled["jail"] {
		rcVar(b, "jail_reverse_stop", "YES")
	}
	if len(s.WireGuard) > 0 {
		var names []string
		for _, w := range s.WireGuard {
			names = append(names, w.Name)
		}
		rcVar(b, "wireguard_interfaces", strings.Join(names, " "))
	}
	for _, k := range sortedKeys(s.RC) {
		rcVar(b, k, s.RC[k])
	}
	return r.sizes.hostRC.bytes(0, b)
}

// enabledServices are the host services rc.conf enables: the topology's
// list, and jail, pf and wireguard when the host has them.
func enabledServices(h *host) map[string]bool {
	s := h.spec
	enabled := map[string]bool{}
	for _, svc := range s.Services {
		enabled[svc] = true
	}
	if len(h.jailsIn) > 0 {
		enabled["jail"] = true
	}
	if s.PF != nil {
		enabled["pf"] = true
	}
	if len(s.WireGuard) > 0 {
		enabled["wireguard"] = true
	}
	return enabled
}

// hostAddrs are the addresses the host's rc.conf sets on i: none for an
// interface handed to a jail, whose own rc.conf configures it.
func hostAddrs(i *iface) []string {
	if i.jail != "" {
		return nil
	}
	return i.addrs
}

// ifVar is name as a shell variable name part (rc.conf's ifconfig_NAME).
func ifVar(name string) string { return ifVarReplacer.Replace(name) }

// ifVarReplacer is built once: a Replacer per call cost more than the
// replacing (ifVar runs for every interface of every host).
var ifVarReplacer = strings.NewReplacer(".", "_", "-", "_")

// jailQuoter escapes a jail.conf string (built once: a Replacer's tables
// cost more than the quoting).
var jailQuoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// writeJailQuoted writes s to b as a quoted jail.conf string.
func writeJailQuoted(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	jailQuoter.WriteString(b, s)
	b.WriteByte('"')
}

func (r *Repo) jailHostname(h *host, j *Jail) string {
	if j.Hostname != "" {
		return j.Hostname
	}
	if h.spec.Domain != "" {
		return j.Name + "." + h.spec.Domain
	}
	return j.Name
}

// jailConf renders one jail's self-contained jail.conf block.
func (r *Repo) jailConf(h *host, j *Jail) []byte {
	p := r.jailParams(h, j)
	slot := slices.Index(h.jailsIn, j)
	b := r.sizes.jailConf.buffer(slot)
	b.WriteString(header)
	b.WriteString(j.Name)
	b.WriteString(" {\n")
	line := func(k, op, v string, quote bool) { // "\tk op v;"
		b.WriteByte('\t')
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(op)
		b.WriteByte(' ')
		if quote {
			writeJailQuoted(b, v)
		} else {
			b.WriteString(v)
		}
		b.WriteString(";\n")
	}
	line("path", "=", p.Path, true)
	line("host.hostname", "=", r.jailHostname(h, j), true)
	if jailVnet(j) {
		b.WriteString("\tvnet;\n")
	}
	if len(j.Interfaces) > 0 {
		line("vnet.interface", "=", strings.Join(j.Interfaces, ", "), false)
	}
	if p.DevfsRuleset != nil {
		line("devfs_ruleset", "=", strconv.Itoa(*p.DevfsRuleset), false)
	}
	if p.MountDevfs == nil || *p.MountDevfs {
		b.WriteString("\tmount.devfs;\n")
	}
	if p.ExecClean == nil || *p.ExecClean {
		b.WriteString("\texec.clean;\n")
	}
	multi := func(k string, vs ...[]string) {
		op := "="
		for _, l := range vs {
			for _, v := range l {
				line(k, op, v, true)
				op = "+="
			}
		}
	}
	pre, post, poststop := r.netifHooks(h, j)
	multi("exec.prestart", pre, p.ExecPrestart)
	multi("exec.created", p.ExecCreated)
	line("exec.start", "=", pick(p.ExecStart, "/bin/sh /etc/rc"), true)
	multi("exec.poststart", post, p.ExecPoststart)
	multi("exec.prestop", p.ExecPrestop)
	line("exec.stop", "=", pick(p.ExecStop, "/bin/sh /etc/rc.shutdown"), true)
	multi("exec.poststop", p.ExecPoststop, poststop)
	for _, kv := range [][2]string{{"sysvshm", p.Sysvshm}, {"sysvsem", p.Sysvsem}, {"sysvmsg", p.Sysvmsg}} {
		if kv[1] != "" {
			line(kv[0], "=", kv[1], true)
		}
	}
	for _, k := range sortedKeys(p.Params) {
		switch v := p.Params[k]; v {
		case "true":
			b.WriteByte('\t')
			b.WriteString(k)
			b.WriteString(";\n")
		default:
			line(k, "=", v, true)
		}
	}
	b.WriteString("}\n")
	return r.sizes.jailConf.bytes(slot, b)
}

func jailVnet(j *Jail) bool { return len(j.Interfaces) > 0 || (j.Vnet != nil && *j.Vnet) }

// netifHooks renders a jail's netif fields into its exec hooks. FIB and
// MTU are set by exec.prestart, which jail(8) runs on the host before the
// jail exists, while both epair ends are still in the host's stack (vnet
// moves keep them: sys/net/if.c if_vmove). Routes through the host's end
// are added by exec.poststart and removed by exec.poststop, so a restart
// does not fail on a route that already exists; routes through the jail's
// own interfaces go in its rc.conf (jailRoutes).
func (r *Repo) netifHooks(h *host, j *Jail) (pre, post, poststop []string) {
	for _, n := range sortedKeys(j.Netif) {
		ni := j.Netif[n]
		if ni == nil {
			continue
		}
		var words []string
		if ni.FIB != nil {
			words = append(words, "fib", strconv.Itoa(*ni.FIB))
		}
		if ni.MTU != 0 {
			words = append(words, "mtu", strconv.Itoa(ni.MTU))
		}
		if len(words) > 0 {
			pre = append(pre, "/sbin/ifconfig "+n+" "+strings.Join(words, " "))
		}
		if slices.Contains(j.Interfaces, n) {
			continue
		}
		for _, rt := range ni.Routes {
			args, ok := routeArgs(rt, n)
			if !ok {
				continue
			}
			if ni.FIB != nil {
				args += " -fib " + strconv.Itoa(*ni.FIB)
			}
			post = append(post, "/sbin/route -q -n add "+args)
			poststop = append(poststop, "/sbin/route -q -n delete "+args)
		}
	}
	return pre, post, poststop
}

// routeArgs turns a netif route ("DEST" or "DEST GATEWAY") into route(8)
// arguments through interface ifn, with the family flag.
func routeArgs(rt, ifn string) (string, bool) {
	f := strings.Fields(rt)
	if len(f) == 0 || len(f) > 2 {
		return "", false
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		return "", false
	}
	fam := "-inet"
	if p.Addr().Is6() {
		fam = "-inet6"
	}
	kind := "-net"
	if p.IsSingleIP() {
		kind = "-host"
	}
	args := fam + " " + kind + " " + p.Masked().String()
	if p.IsSingleIP() {
		args = fam + " " + kind + " " + p.Addr().String()
	}
	if len(f) == 2 {
		gw, err := netip.ParseAddr(f[1])
		if err != nil || gw.Is6() != p.Addr().Is6() {
			return "", false
		}
		return args + " " + gw.String(), true
	}
	return args + " -interface " + ifn, true
}

// jailRoutes writes the routes through the jail's own interfaces as its
// rc.conf static routes (rc.d/routing runs "route add ARGS" for inet and
// "route add -inet6 ARGS" for inet6 inside the jail).
func jailRoutes(b *bytes.Buffer, j *Jail) {
	var v4, v6 []string
	vals := map[string]string{}
	for _, n := range sortedKeys(j.Netif) {
		ni := j.Netif[n]
		if ni == nil || !slices.Contains(j.Interfaces, n) {
			continue
		}
		for i, rt := range ni.Routes {
			args, ok := routeArgs(rt, n)
			if !ok {
				continue
			}
			name := ifVar(n) + "_" + strconv.Itoa(i)
			if a, ok := strings.CutPrefix(args, "-inet6 "); ok {
				v6 = append(v6, name)
				vals["ipv6_route_"+name] = a
			} else {
				v4 = append(v4, name)
				vals["route_"+name] = strings.TrimPrefix(args, "-inet ")
			}
		}
	}
	if len(v4) > 0 {
		rcVar(b, "static_routes", strings.Join(v4, " "))
	}
	if len(v6) > 0 {
		rcVar(b, "ipv6_static_routes", strings.Join(v6, " "))
	}
	for _, k := range sortedKeys(vals) {
		rcVar(b, k, vals[k])
	}
}

// jailRC renders the jail's own rc.conf: its interfaces, router, services
// and spiped pipes (the port's spiped_pipe_* variables).
func (r *Repo) jailRC(h *host, j *Jail) []byte {
	slot := slices.Index(h.jailsIn, j)
	b := r.sizes.jailRC.buffer(slot)
	b.WriteString(header)
	rcVar(b, "hostname", r.jailHostname(h, j))
	for _, n := range j.Interfaces {
		if i := h.ifaces[n]; i != nil {
			ifconfigLines(b, ifVar(n), nil, nil, i.addrs)
		}
	}
	if j.Gateway != "" {
		gw, _ := r.ref(h, j.Gateway)
		rcVar(b, "defaultrouter", gw.addr.String())
	}
	jailRoutes(b, j)
	for _, svc := range j.Services {
		rcVar(b, svc+"_enable", "YES")
	}
	for _, k := range sortedKeys(j.RC) {
		rcVar(b, k, j.RC[k])
	}
	var pipes []*rpipe
	for _, rp := range h.pipes {
		if rp.jail == j {
			pipes = append(pipes, rp)
		}
	}
	if len(pipes) > 0 {
		b.WriteString("\n# spiped tunnels\n")
		rcVar(b, "spiped_enable", "YES")
		names := make([]string, len(pipes))
		for i, rp := range pipes {
			names[i] = rp.p.Name
		}
		rcVar(b, "spiped_pipes", strings.Join(names, " "))
		for _, rp := range pipes {
			pre := "spiped_pipe_" + rp.p.Name + "_"
			rcVar(b, pre+"mode", rp.p.Mode)
			spipedVar(b, pre+"source", rp.src)
			spipedVar(b, pre+"target", rp.dst)
			rcVar(b, pre+"key", pick(rp.p.Key, defaultSpiped))
		}
	}
	return r.sizes.jailRC.bytes(slot, b)
}

func spipedAddr(e endpoint) string {
	return "[" + e.addr.String() + "]:" + strconv.Itoa(e.port)
}

// spipedVar is rcVar(b, name, spipedAddr(e)) written in place: an
// address and a port need no escapes.
func spipedVar(b *bytes.Buffer, name string, e endpoint) {
	if !e.addr.IsValid() {
		rcVar(b, name, spipedAddr(e))
		return
	}
	b.WriteString(name)
	b.WriteString(`="[`)
	b.Write(e.addr.AppendTo(b.AvailableBuffer()))
	b.WriteString("]:")
	b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(e.port), 10))
	b.WriteString("\"\n")
}

// wgConf renders a wg-quick config. Keys stay on the host: PostUp loads
// the private and preshared keys from their files.
func (r *Repo) wgConf(h *host, w *WG) []byte {
	b := r.sizes.wgConf.buffer(0)
	b.WriteString(header)
	b.WriteString("[Interface]\n")
	i := h.ifaces[w.Name]
	if len(i.addrs) > 0 {
		fmt.Fprintf(b, "Address = %s\n", strings.Join(i.addrs, ", "))
	}
	if w.ListenPort != 0 {
		fmt.Fprintf(b, "ListenPort = %d\n", w.ListenPort)
	}
	if w.MTU != 0 {
		fmt.Fprintf(b, "MTU = %d\n", w.MTU)
	}
	if w.Table != "" {
		fmt.Fprintf(b, "Table = %s\n", w.Table)
	}
	fmt.Fprintf(b, "PostUp = wg set %%i private-key %s\n", wgKey(w))
	for _, p := range w.Peers {
		if p.PresharedKey != "" {
			if pw := r.peerWG(p, w); pw != nil {
				fmt.Fprintf(b, "PostUp = wg set %%i peer %s preshared-key %s\n", pw.PublicKey, p.PresharedKey)
			}
		}
	}
	for _, rt := range w.FIBRoutes {
		fam := "-inet"
		if strings.Contains(rt, ":") {
			fam = "-inet6"
		}
		fmt.Fprintf(b, "PostUp = route -q -n add %s %s -interface %s -fib %d\n", fam, rt, w.Name, w.FIB)
	}
	for _, c := range w.PostUp {
		fmt.Fprintf(b, "PostUp = %s\n", c)
	}
	for _, c := range w.PostDown {
		fmt.Fprintf(b, "PostDown = %s\n", c)
	}
	for _, p := range w.Peers {
		pw := r.peerWG(p, w)
		if pw == nil {
			continue
		}
		ph := r.hosts[p.Host]
		fmt.Fprintf(b, "\n[Peer]\n# %s %s\nPublicKey = %s\n", p.Host, pw.Name, pw.PublicKey)
		allowed := r.wgAllowed(p, pw)
		if len(allowed) > 0 {
			fmt.Fprintf(b, "AllowedIPs = %s\n", strings.Join(allowed, ", "))
		}
		if ep, ok := r.wgEndpoint(pw, ph); ok {
			fmt.Fprintf(b, "Endpoint = %s\n", ep)
		}
		if p.Keepalive != 0 {
			fmt.Fprintf(b, "PersistentKeepalive = %d\n", p.Keepalive)
		}
	}
	return r.sizes.wgConf.bytes(0, b)
}

// wgAllowed is a peer's AllowedIPs: allowed_ips as given, else the peer
// interface's addresses (host routes) plus routes.
func (r *Repo) wgAllowed(p *WGPeer, pw *WG) []string {
	if len(p.AllowedIPs) > 0 {
		return p.AllowedIPs
	}
	var allowed []string
	if i := r.hosts[p.Host].ifaces[pw.Name]; i != nil {
		for _, pf := range i.prefix {
			allowed = append(allowed, netip.PrefixFrom(pf.Addr(), pf.Addr().BitLen()).String())
		}
	}
	return append(allowed, p.Routes...)
}

// wgEndpoint is the address and port peers dial to reach w on host h.
func (r *Repo) wgEndpoint(w *WG, h *host) (netip.AddrPort, bool) {
	if w.Endpoint == "" || w.ListenPort == 0 {
		return netip.AddrPort{}, false
	}
	ep, err := r.ref(h, w.Endpoint)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ep.addr, uint16(w.ListenPort)), true
}

func wgKey(w *WG) string { return pick(w.PrivateKey, wireguardDir+"/"+w.Name+".key") }

// healthChecks lists what the agent checks after applying: the git source,
// pf, every jail, every encrypt pipe end to end, then the user's checks.
func (r *Repo) healthChecks(h *host, pl *problemList) []verify.Check {
	cs := make([]verify.Check, 0, 2+len(h.jailsIn)+len(h.spec.WireGuard)+len(h.pipes)+len(h.spec.Checks))
	cs = append(cs, verify.Check{Kind: verify.CheckGit, Name: "git-source"})
	if h.spec.PF != nil {
		cs = append(cs, verify.Check{Kind: verify.CheckPF, Name: "pf"})
	}
	for _, j := range h.jailsIn {
		cs = append(cs, verify.Check{Kind: verify.CheckJail, Name: "jail-" + j.Name, Jail: j.Name})
	}
	// A WireGuard interface's peers must have live sessions: wg show's
	// exit status says nothing about them.
	for _, w := range h.spec.WireGuard {
		if len(w.Peers) > 0 {
			cs = append(cs, verify.Check{Kind: verify.CheckWireGuard, Name: "wireguard-" + w.Name, Iface: w.Name})
		}
	}
	for _, rp := range h.pipes {
		if rp.p.Mode != "encrypt" || rp.p.Probe == "none" || rp.p.Probe == "" {
			continue
		}
		to := rp.dst.host
		if to == "" {
			to = rp.dst.addr.String()
		}
		cs = append(cs, verify.Check{
			Kind: verify.CheckTunnel, Name: strings.ToLower(rp.p.Name) + "-to-" + to, Jail: rp.jail.Name,
			Addr: rp.src.String(), Probe: rp.p.Probe, Send: rp.p.Send, Expect: rp.p.Expect,
		})
	}
	for _, c := range h.spec.Checks {
		cw := h.where + ": check " + c.Name
		vc := verify.Check{Kind: verify.CheckKind(c.Kind), Name: c.Name, Jail: c.Jail, URL: c.URL, Status: c.Status, Command: c.Command}
		switch vc.Kind {
		case verify.CheckTCP:
			if c.Addr == "" {
				pl.add(r.pos.at(c, ""), cw, "tcp check needs addr")
			}
		case verify.CheckHTTP:
			if c.URL == "" || (strings.HasPrefix(c.URL, "/") && c.Addr == "") {
				pl.add(r.pos.at(c, ""), cw, "http check needs a url (or addr and a path)")
			}
		case verify.CheckExec:
			if len(c.Command) == 0 {
				pl.add(r.pos.at(c, ""), cw, "exec check needs command")
			}
		default:
			pl.add(r.pos.at(c, "kind"), cw, "kind %q: want tcp, http or exec", c.Kind)
		}
		if c.Addr != "" {
			ep, err := r.endpointOf(h, c.Addr)
			if err != nil {
				pl.add(r.pos.at(c, "addr"), cw, "%v", err)
			}
			vc.Addr = ep.String()
			// An http check may name its server by addr and give only
			// the path, so the address is not typed twice.
			if vc.Kind == verify.CheckHTTP && strings.HasPrefix(c.URL, "/") {
				vc.URL, vc.Addr = "http://"+vc.Addr+c.URL, ""
			}
		}
		if c.Jail != "" && h.jails[c.Jail] == nil {
			pl.add(r.pos.at(c, "jail"), cw, "unknown jail %s", c.Jail)
		}
		if c.Timeout != "" {
			if err := vc.Timeout.UnmarshalText([]byte(c.Timeout)); err != nil {
				pl.add(r.pos.at(c, "timeout"), cw, "timeout %q: want a duration", c.Timeout)
			}
		}
		cs = append(cs, vc)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if seen[c.Name] {
			pl.add(r.pos.key(r.file.Hosts, h.name), h.where, "health check name %s used twice", c.Name)
		}
		seen[c.Name] = true
	}
	return cs
}

// secrets lists host files the render relies on but never carries.
func (r *Repo) secrets(h *host) []string {
	set := map[string]bool{}
	for _, rp := range h.pipes {
		set[r.jailParams(h, rp.jail).Path+pick(rp.p.Key, defaultSpiped)] = true
	}
	for _, w := range h.spec.WireGuard {
		set[wgKey(w)] = true
		for _, p := range w.Peers {
			if p.PresharedKey != "" {
				set[p.PresharedKey] = true
			}
		}
	}
	return sortedKeys(set)
}

// tunnelPorts are the ports pf must pass for tunnels that cross hosts:
// the targets of this host's outgoing pipes, its listeners that other
// hosts dial, its WireGuard listen ports and those of the peers it dials.
func (r *Repo) tunnelPorts(h *host) []int {
	set := map[int]bool{}
	for _, rp := range h.pipes {
		if rp.p.Mode == "encrypt" && rp.dst.host != "" && rp.dst.host != h.name {
			set[rp.dst.port] = true
		}
	}
	for p := range h.incoming {
		set[p] = true
	}
	// WireGuard: the port this host listens on for its peers, and the
	// ports of the peers it dials.
	for _, w := range h.spec.WireGuard {
		if w.ListenPort != 0 && len(w.Peers) > 0 {
			set[w.ListenPort] = true
		}
		for _, p := range w.Peers {
			if pw := r.peerWG(p, w); pw != nil {
				if _, ok := r.wgEndpoint(pw, r.hosts[p.Host]); ok {
					set[pw.ListenPort] = true
				}
			}
		}
	}
	out := make([]int, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}
