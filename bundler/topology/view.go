package topology

import (
	"fmt"
	"net/netip"
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

	r *Repo
	h *host
}

// JailView is one jail as templates see it.
type JailView struct {
	Name       string
	Hostname   string
	Path       string
	Addr       string // first IPv4 address, "" if none
	Interfaces []string
}

// TableView is one pf table file.
type TableView struct {
	Name string
	Path string
}

func (r *Repo) view(h *host) *View {
	v := &View{Host: h.name, Hostname: h.spec.Hostname, Domain: h.spec.Domain, Peer: h.spec.Peer, Vars: h.spec.Vars, r: r, h: h}
	for _, j := range h.jailsIn {
		jv := JailView{Name: j.Name, Hostname: r.jailHostname(h, j), Path: r.jailParams(h, j).Path, Interfaces: j.Interfaces}
		for _, n := range j.Interfaces {
			if i := h.ifaces[n]; i != nil && jv.Addr == "" {
				for _, p := range i.prefix {
					if p.Addr().Is4() {
						jv.Addr = p.Addr().String()
						break
					}
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
	v.TunnelPorts = r.tunnelPorts(h)
	return v
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
	for _, j := range v.Jails {
		if j.Name == name {
			return j, nil
		}
	}
	return JailView{}, fmt.Errorf("unknown jail %q", name)
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
	"join":  func(sep string, xs []string) string { return strings.Join(xs, sep) },
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"quote": strconv.Quote,
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
