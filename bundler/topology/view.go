package topology

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// View is the data a template sees: the host, its jails and tables, and
// methods that resolve interface refs ("ipg_b", "peer/ipg_b",
// "serverB/ipg_b") to addresses, so no address is typed twice.
type View struct {
	Host     string
	Hostname string
	Domain   string
	Peer     string // "" when the host has none
	Vars     map[string]string
	Jails    []JailView
	Tables   []TableView
	// TunnelPorts are the ports of tunnels crossing hosts (see HostRender).
	TunnelPorts []int
	// Pipes are the host's spiped pipes (jails in boot order) with their
	// resolved endpoints and the hosts at the other end, so pf rules are
	// derived from them instead of repeating ports.
	Pipes []PipeView
	// WireGuard are the host's WireGuard interfaces and their peers.
	WireGuard []WGView

	r *Repo
	h *host
}

// JailView is one jail as templates see it.
type JailView struct {
	Name       string
	Hostname   string
	Path       string
	Addr       string   // first IPv4 address, "" if none
	Addrs      []string // every address of its interfaces, in order
	Interfaces []string
}

// PipeView is one spiped pipe as templates see it.
type PipeView struct {
	Name       string
	Jail       string
	Mode       string // encrypt | decrypt
	SourceAddr string
	SourcePort int
	// SourceIf is the jail interface carrying the source address; HostIf
	// the host's end of its epair (where the host's pf sees the jail's
	// packets), "" when it is not an epair end.
	SourceIf   string
	HostIf     string
	TargetAddr string
	TargetPort int
	// Peer is the host an encrypt pipe reaches ("" when it targets a
	// literal address or this host).
	Peer string
	// Remote: the pipe crosses hosts (an encrypt pipe to another host, a
	// decrypt pipe with a client on another host).
	Remote bool
	// Clients are the encrypt pipes of other hosts a decrypt pipe serves.
	Clients []PipeClient
	// ClientAddrs are their source addresses, sorted (for a pf rule).
	ClientAddrs []string
}

// PipeClient is an encrypt pipe on another host targeting a decrypt pipe.
type PipeClient struct {
	Host, Jail, Pipe, Addr string
}

// WGView is a WireGuard interface as templates see it.
type WGView struct {
	Name       string
	Addrs      []string // CIDR
	ListenPort int
	Peers      []WGPeerView
}

// WGPeerView is one peer: the host, its interface, the endpoint this host
// dials ("" when it has none) and the AllowedIPs.
type WGPeerView struct {
	Host         string
	Interface    string
	Endpoint     string // ADDR:PORT
	EndpointAddr string
	EndpointPort int
	AllowedIPs   []string
}

// TableView is one pf table file.
type TableView struct {
	Name string
	Path string
}

func (r *Repo) view(h *host) *View {
	v := &View{Host: h.name, Hostname: h.spec.Hostname, Domain: h.spec.Domain, Peer: h.spec.Peer, Vars: h.spec.Vars, r: r, h: h}
	if len(h.jailsIn) > 0 {
		v.Jails = make([]JailView, 0, len(h.jailsIn))
	}
	for _, j := range h.jailsIn {
		jv := JailView{Name: j.Name, Hostname: r.jailHostname(h, j), Path: r.jailParams(h, j).Path, Interfaces: j.Interfaces}
		for _, n := range j.Interfaces {
			i := h.ifaces[n]
			if i == nil {
				continue
			}
			for _, p := range i.prefix {
				jv.Addrs = append(jv.Addrs, p.Addr().String())
				if p.Addr().Is4() && jv.Addr == "" {
					jv.Addr = p.Addr().String()
				}
			}
		}
		v.Jails = append(v.Jails, jv)
	}
	if pf := h.spec.PF; pf != nil {
		for _, name := range sortedKeys(pf.Tables) {
			v.Tables = append(v.Tables, TableView{Name: name, Path: tablePath(name, pf.Tables[name])})
		}
	}
	v.TunnelPorts = h.tunnelPorts
	v.Pipes = r.pipeViews(h)
	v.WireGuard = r.wgViews(h)
	return v
}

func (r *Repo) pipeViews(h *host) []PipeView {
	var out []PipeView
	if len(h.pipes) > 0 {
		out = make([]PipeView, 0, len(h.pipes))
	}
	for _, rp := range h.pipes {
		pv := PipeView{Name: rp.p.Name, Jail: rp.jail.Name, Mode: rp.p.Mode,
			SourceAddr: rp.src.addr.String(), SourcePort: rp.src.port,
			TargetAddr: rp.dst.addr.String(), TargetPort: rp.dst.port}
		if _, i := r.jailOf(h, rp.src.addr); i != nil {
			pv.SourceIf = i.name
			pv.HostIf = epairPeer(h, i.name)
		}
		if rp.p.Mode == "encrypt" && rp.dst.host != h.name {
			pv.Peer = rp.dst.host
			pv.Remote = true
		}
		if rp.p.Mode == "decrypt" && h.listeners[rp.src.String()] == rp {
			for _, c := range h.clients[rp.src.String()] {
				if c.host == h {
					continue
				}
				pv.Remote = true
				pv.Clients = append(pv.Clients, PipeClient{Host: c.host.name, Jail: c.rp.jail.Name, Pipe: c.rp.p.Name, Addr: c.rp.src.addr.String()})
				if !slices.Contains(pv.ClientAddrs, c.rp.src.addr.String()) {
					pv.ClientAddrs = append(pv.ClientAddrs, c.rp.src.addr.String())
				}
			}
			sort.Strings(pv.ClientAddrs)
		}
		out = append(out, pv)
	}
	return out
}

// epairPeer is the other end of epair end n on h, "" if n is none.
func epairPeer(h *host, n string) string {
	for _, e := range h.spec.Epairs {
		switch n {
		case (*e)[0]:
			return (*e)[1]
		case (*e)[1]:
			return (*e)[0]
		}
	}
	return ""
}

func (r *Repo) wgViews(h *host) []WGView {
	var out []WGView
	for _, w := range h.spec.WireGuard {
		wv := WGView{Name: w.Name, ListenPort: w.ListenPort}
		if i := h.ifaces[w.Name]; i != nil {
			for _, p := range i.prefix {
				wv.Addrs = append(wv.Addrs, p.String())
			}
		}
		for _, p := range w.Peers {
			pw := r.peerWG(p, w)
			if pw == nil {
				continue
			}
			pv := WGPeerView{Host: p.Host, Interface: pw.Name, AllowedIPs: r.wgAllowed(p, pw)}
			if ep, ok := r.wgEndpoint(pw, r.hosts[p.Host]); ok {
				pv.Endpoint, pv.EndpointAddr, pv.EndpointPort = ep.String(), ep.Addr().String(), int(ep.Port())
			}
			wv.Peers = append(wv.Peers, pv)
		}
		out = append(out, wv)
	}
	return out
}

// WG returns the named WireGuard interface of the host.
func (v *View) WG(name string) (WGView, error) {
	w, err := v.wg(name)
	if err != nil {
		return WGView{}, err
	}
	return *w, nil
}

// wg is WG(name) in place (compiled templates read it there).
func (v *View) wg(name string) (*WGView, error) {
	return byName(v.WireGuard, name, "wireguard interface", func(w *WGView) string { return w.Name })
}

// byName is the item of xs named name, in place.
func byName[T any](xs []T, name, what string, nameOf func(*T) string) (*T, error) {
	for i := range xs {
		if nameOf(&xs[i]) == name {
			return &xs[i], nil
		}
	}
	return nil, fmt.Errorf("unknown %s %q", what, name)
}

// RoleAddrs is the address of interface ifn on every host with the given
// role, in host order: "the database hosts' inic addresses".
func (v *View) RoleAddrs(role, ifn string) ([]string, error) {
	if _, ok := v.r.file.Roles[role]; !ok {
		return nil, fmt.Errorf("unknown role %q", role)
	}
	var out []string
	for _, name := range v.r.names {
		h := v.r.hosts[name]
		if h.own.Role != role {
			continue
		}
		e, err := v.r.ref(h, ifn)
		if err != nil {
			return nil, err
		}
		out = append(out, e.addr.String())
	}
	return out, nil
}

// Addr is the address of an interface ref, without prefix length.
func (v *View) Addr(ref string) (string, error) {
	e, err := v.r.ref(v.h, ref)
	if err != nil {
		return "", err
	}
	return e.addr.String(), nil
}

func (v *View) prefix(ref string) (netip.Prefix, error) { return v.r.prefixOf(v.h, ref) }

// CIDR is the address of an interface ref with its prefix length.
func (v *View) CIDR(ref string) (string, error) {
	p, err := v.prefix(ref)
	return p.String(), err
}

// Net is the network of an interface ref ("10.0.2.0/24").
func (v *View) Net(ref string) (string, error) {
	p, err := v.prefix(ref)
	return p.Masked().String(), err
}

// Jail returns the named jail.
func (v *View) Jail(name string) (JailView, error) {
	j, err := v.jail(name)
	if err != nil {
		return JailView{}, err
	}
	return *j, nil
}

// jail is Jail(name) in place (compiled templates read it there).
func (v *View) jail(name string) (*JailView, error) {
	return byName(v.Jails, name, "jail", func(j *JailView) string { return j.Name })
}

// Table returns the path of a pf table file declared in the topology.
func (v *View) Table(name string) (string, error) {
	for _, t := range v.Tables {
		if t.Name == name {
			return t.Path, nil
		}
	}
	return "", fmt.Errorf("unknown pf table %q", name)
}

// Var returns a template value, failing on unknown names.
func (v *View) Var(name string) (string, error) {
	s, ok := v.Vars[name]
	if !ok {
		return "", fmt.Errorf("unknown var %q", name)
	}
	return s, nil
}

// templateFuncs are the helpers every template gets besides View's methods.
var templateFuncs = template.FuncMap{
	"join":   func(sep string, xs []string) string { return strings.Join(xs, sep) },
	"fields": strings.Fields,
	"lower":  strings.ToLower,
	"upper":  strings.ToUpper,
	"quote":  strconv.Quote,
	"ports": func(ps []int) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(p)
		}
		return strings.Join(s, " ")
	},
	"sorted": func(xs []string) []string {
		out := append([]string(nil), xs...)
		sort.Strings(out)
		return out
	},
}
