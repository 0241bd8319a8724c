package topology

import (
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// hostDesc describes the state that h's rendered /etc/rc.conf (with
// sysctl.conf, loader.conf and the jails' vnet.interface) gives at boot,
// for the agent's live plan. It reads the same resolved values as hostRC,
// and hostdesc_test holds the two equal through hostdesc.FromRC.
func (r *Repo) hostDesc(h *host, pl *problemList) *hostdesc.Host {
	s := h.spec
	d := &hostdesc.Host{
		Hostname:   s.Hostname,
		Forwarding: s.GatewayEnable != nil && *s.GatewayEnable,
		Sysctls:    copyMerge(nil, s.Sysctl), // the render's own
		Loader:     copyMerge(nil, s.Loader),
		Management: s.Management,
	}
	if n := len(s.NICs) + len(s.Laggs) + len(s.Vlans) + len(s.Bridges) + 2*len(s.Epairs) + len(s.WireGuard); n > 0 {
		d.Interfaces = make([]hostdesc.Interface, 0, n) // one allocation, not a regrowth per interface
	}
	add := func(i hostdesc.Interface, words ...string) {
		// The same words the rc.conf line carries, read the same way.
		_ = hostdesc.ParseIfconfig(&i, strings.Join(words, " "))
		if i.Clone == i.Name {
			i.Clone = ""
		}
		d.Interfaces = append(d.Interfaces, i)
	}
	addrWords := func(addrs []string) []string {
		var w []string
		for _, a := range addrs {
			switch {
			case a == "DHCP" || a == "SYNCDHCP":
				w = append(w, a)
			case strings.Contains(a, ":"):
				w = append(w, "inet6", a)
			default:
				w = append(w, "inet", a)
			}
		}
		return w
	}
	for _, n := range sortedKeys(s.NICs) {
		i := hostdesc.Interface{Name: n, Kind: hostdesc.Physical}
		var w []string
		if nic := s.NICs[n]; nic != nil {
			i.Clone = nic.Driver
			if nic.VlanHWTag != nil {
				w = append(w, nic.vlanHWTagWord())
			}
			if nic.MTU != 0 {
				w = append(w, "mtu", strconv.Itoa(nic.MTU))
			}
			w = append(w, nic.Options...)
		}
		add(i, append(addrWords(hostAddrs(h.ifaces[n])), w...)...)
	}
	for k, l := range s.Laggs {
		w := []string{"laggproto", l.Proto}
		for _, p := range l.Ports {
			w = append(w, "laggport", p)
		}
		add(hostdesc.Interface{Name: l.Name, Kind: hostdesc.Lagg, Clone: "lagg" + strconv.Itoa(k)},
			append(w, addrWords(hostAddrs(h.ifaces[l.Name]))...)...)
	}
	for k, v := range s.Vlans {
		add(hostdesc.Interface{Name: v.Name, Kind: hostdesc.Vlan, Clone: "vlan" + strconv.Itoa(k)},
			append([]string{"vlan", strconv.Itoa(v.Tag), "vlandev", v.Parent}, addrWords(hostAddrs(h.ifaces[v.Name]))...)...)
	}
	for k, br := range s.Bridges {
		var w []string
		for _, m := range br.Members {
			w = append(w, "addm", m)
		}
		add(hostdesc.Interface{Name: br.Name, Kind: hostdesc.Bridge, Clone: "bridge" + strconv.Itoa(k)},
			append(addrWords(h.ifaces[br.Name].addrs), w...)...)
	}
	for k, e := range s.Epairs {
		c := "epair" + strconv.Itoa(k)
		ends := [2]string{(*e)[0], (*e)[1]}
		for x, end := range ends {
			i := hostdesc.Interface{Name: end, Kind: hostdesc.Epair, Clone: c + string(rune('a'+x)), Peer: ends[1-x]}
			if ifc := h.ifaces[end]; ifc != nil {
				i.Jail = ifc.jail
				add(i, addrWords(hostAddrs(ifc))...)
			} else {
				add(i)
			}
		}
	}
	for _, w := range s.WireGuard {
		add(hostdesc.Interface{Name: w.Name, Kind: hostdesc.WG})
	}
	if s.Gateway != "" {
		if gw, err := r.ref(h, s.Gateway); err == nil {
			rt, _ := hostdesc.ParseRoute("_default", "default "+gw.addr.String())
			d.Routes = append(d.Routes, rt)
		}
	}
	for _, n := range sortedKeys(s.Routes) {
		rt, err := hostdesc.ParseRoute(n, s.Routes[n])
		if err != nil {
			pl.add(r.pos.key(s.Routes, n), h.where+": routes", "%v", err)
			continue
		}
		d.Routes = append(d.Routes, rt)
	}
	enabled := enabledServices(h)
	for k, v := range s.RC {
		if name, ok := strings.CutSuffix(k, "_enable"); ok {
			enabled[name] = rcYes(v)
		}
	}
	for _, n := range sortedKeys(enabled) {
		if enabled[n] && hostdesc.IsLiveService(n) {
			d.Services = append(d.Services, hostdesc.Service{Name: n, Flags: s.RC[n+"_flags"]})
		}
	}
	if len(h.jailsIn) > 0 {
		d.Jails = make([]hostdesc.Jail, 0, len(h.jailsIn))
	}
	for _, j := range h.jailsIn {
		d.Jails = append(d.Jails, hostdesc.Jail{Name: j.Name, Interfaces: append([]string(nil), j.Interfaces...)})
	}
	// In name order already, Normalize's sort of the interfaces (large
	// structs, moved by reflection) only compares them.
	sortBy(d.Interfaces, func(i *hostdesc.Interface) string { return i.Name })
	d.Normalize()
	return d
}

// rcYes is rc.subr's checkyesno.
func rcYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}
