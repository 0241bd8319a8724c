package topology

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// crossHosts runs the checks that look at the fleet as a whole: what one
// host cannot know about itself but breaks on the hosts after the merge.
// Each problem names the hosts involved.
func (r *Repo) crossHosts(pl *problemList) {
	r.checkSharedAddrs(pl)
	r.checkPipeClients(pl)
	r.checkWirePeers(pl)
	r.checkGateways(pl)
	r.checkWaves(pl)
}

// sharedIfaces are h's interfaces on networks other hosts may share: NICs,
// laggs, vlans and WireGuard interfaces, bridges with one of those as a
// member, and epair ends whose other end is a member of such a bridge.
// The rest (jail-to-jail epairs, host-only bridges) are private to the
// host, so the same addresses may repeat on every host (uirig's xbridge).
func sharedIfaces(h *host) map[string]bool {
	out := map[string]bool{}
	for n, i := range h.ifaces {
		switch i.kind {
		case "nic", "lagg", "vlan", "wg":
			out[n] = true
		}
	}
	for _, b := range h.spec.Bridges {
		for _, m := range b.Members {
			if out[m] {
				out[b.Name] = true
				// members that are epair ends put their other end on the
				// shared network: marked below.
			}
		}
	}
	inShared := map[string]bool{}
	for _, b := range h.spec.Bridges {
		if out[b.Name] {
			for _, m := range b.Members {
				inShared[m] = true
			}
		}
	}
	for _, e := range h.spec.Epairs {
		a, b := (*e)[0], (*e)[1]
		if inShared[a] {
			out[b] = true
		}
		if inShared[b] {
			out[a] = true
		}
	}
	return out
}

// checkSharedAddrs: an address on a shared network is held by one host
// only (host, jail and tunnel addresses alike).
func (r *Repo) checkSharedAddrs(pl *problemList) {
	type holder struct {
		h   *host
		ifn string
		p   netip.Prefix
	}
	// Each host's shared addresses, on every core; then who holds each.
	held := make([][]holder, len(r.names))
	parallel(len(r.names), func(i int) {
		h := r.hosts[r.names[i]]
		shared := sharedIfaces(h)
		for _, ifn := range sortedKeys(h.ifaces) {
			if !shared[ifn] {
				continue
			}
			for _, p := range h.ifaces[ifn].prefix {
				if !p.Addr().IsLinkLocalUnicast() {
					held[i] = append(held[i], holder{h, ifn, p})
				}
			}
		}
	})
	by := map[netip.Addr][]holder{}
	var order []netip.Addr
	for _, hl := range held {
		for _, x := range hl {
			a := x.p.Addr()
			hs := by[a]
			if len(hs) > 0 && hs[len(hs)-1].h == x.h {
				continue // twice on one host: reported by resolveIfaces
			}
			if hs == nil {
				order = append(order, a)
			}
			by[a] = append(hs, x)
		}
	}
	for _, a := range order {
		hs := by[a]
		if len(hs) < 2 {
			continue
		}
		var names, refs []string
		for _, x := range hs {
			names = append(names, x.h.name)
			refs = append(refs, x.h.name+"/"+x.ifn)
		}
		pl.add(hs[len(hs)-1].h.addrPos[hs[len(hs)-1].ifn], "hosts "+strings.Join(names, ", "),
			"address %s (network %s) is held by %s: an address must be unique within its network across hosts",
			a, hs[0].p.Masked(), strings.Join(refs, " and "))
	}
}

// checkPipeClients: every decrypt pipe has a client, and the clients of one
// listener are on one host unless the pipe says clients: many.
func (r *Repo) checkPipeClients(pl *problemList) {
	r.eachHost(pl, func(h *host, pl *problemList) {
		for _, rp := range h.pipes {
			if rp.p.Mode != "decrypt" {
				continue
			}
			pw := h.where + ": jail " + rp.jail.Name + ": pipe " + rp.p.Name
			switch rp.p.Clients {
			case "", "one", "many", "external":
			default:
				pl.add(r.pos.at(rp.p, "clients"), pw, "clients %q: want one, many or external", rp.p.Clients)
				continue
			}
			key := rp.src.String()
			if h.listeners[key] != rp {
				continue // bound twice: reported already
			}
			cl := h.clients[key]
			if len(cl) == 0 {
				if rp.p.Clients != "external" && !r.dangling.Load() {
					pl.add(r.pos.at(rp.p, "source"), pw,
						"no client: no encrypt pipe in the topology targets %s (clients: external if its clients are outside the topology)", key)
				}
				continue
			}
			hosts := map[string]bool{}
			for _, c := range cl {
				hosts[c.host.name] = true
			}
			if len(hosts) > 1 && rp.p.Clients != "many" {
				var who []string
				for _, c := range cl {
					who = append(who, fmt.Sprintf("%s (jail %s pipe %s)", c.host.name, c.rp.jail.Name, c.rp.p.Name))
				}
				sort.Strings(who)
				pl.add(r.pos.at(rp.p, "source"), pw,
					"clients on %d hosts share this listener: %s (give each its own decrypt pipe, or clients: many)", len(hosts), strings.Join(who, ", "))
			}
		}
	})
}

// checkWirePeers: a peering is declared on both sides, keys are WireGuard
// keys, unique, and match where a peer spells one; each pair has an
// endpoint to dial; the peers of one interface have disjoint AllowedIPs.
func (r *Repo) checkWirePeers(pl *problemList) {
	keys := map[string]string{}
	for _, name := range r.names {
		h := r.hosts[name]
		for _, w := range h.spec.WireGuard {
			ww := h.where + ": wireguard " + w.Name
			if w.PublicKey != "" {
				if !validWGKey(w.PublicKey) {
					pl.add(r.pos.at(w, "public_key"), ww, "public_key %q: want a base64 WireGuard key (32 bytes)", w.PublicKey)
				} else if other, dup := keys[w.PublicKey]; dup {
					pl.add(r.pos.at(w, "public_key"), ww, "public_key is also %s's: each interface needs its own key pair", other)
				} else {
					keys[w.PublicKey] = name + "/" + w.Name
				}
			}
			type allowed struct {
				peer string
				p    netip.Prefix
			}
			var seen []allowed
			for _, p := range w.Peers {
				pw := r.peerWG(p, w)
				if pw == nil {
					continue // reported by checkWireGuard
				}
				ph := r.hosts[p.Host]
				pwhere := ww + ": peer " + p.Host
				if p.PublicKey != "" && p.PublicKey != pw.PublicKey {
					pl.add(r.pos.at(p, "public_key"), pwhere, "public_key %s does not match %s/%s's public_key %s", p.PublicKey, p.Host, pw.Name, pw.PublicKey)
				}
				back := false
				for _, q := range pw.Peers {
					if q.Host == h.name && pick(q.Interface, pw.Name) == w.Name {
						back = true
					}
				}
				if !back {
					pl.add(r.pos.at(p, "host"), pwhere, "peering declared on one side only: %s/%s has no peer %s (interface %s)", p.Host, pw.Name, h.name, w.Name)
				}
				// One report per pair: from the lower host name, or from the
				// only side that declares it.
				if (h.name < p.Host || !back) && !dialable(w) && !dialable(pw) {
					pl.add(r.pos.at(p, "host"), pwhere, "neither %s/%s nor %s/%s has an endpoint and listen_port: the pair can never handshake", h.name, w.Name, ph.name, pw.Name)
				}
				for _, a := range r.wgAllowed(p, pw) {
					pfx, err := netip.ParsePrefix(a)
					if err != nil {
						continue // reported by checkWireGuard
					}
					for _, s := range seen {
						if s.peer != p.Host && s.p.Overlaps(pfx) {
							pl.add(r.pos.at(p, "host"), pwhere, "allowed IPs %s overlap %s of peer %s: WireGuard routes an address to one peer only", pfx, s.p, s.peer)
						}
					}
					seen = append(seen, allowed{p.Host, pfx})
				}
			}
		}
	}
}

func dialable(w *WG) bool { return w.Endpoint != "" && w.ListenPort != 0 }

func validWGKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 32
}

// checkGateways warns about a default router, a jail's router or a static
// route's gateway that no host or network of the topology holds: a typo,
// or a network the repo does not describe.
func (r *Repo) checkGateways(pl *problemList) {
	type gateway struct {
		pos   Pos
		where string
		addr  netip.Addr
	}
	// The gateways that are addresses, host by host on every core.
	gws := make([][]gateway, len(r.names))
	parallel(len(r.names), func(i int) {
		h := r.hosts[r.names[i]]
		add := func(pos Pos, where, gw string) {
			if a, err := netip.ParseAddr(gw); err == nil {
				gws[i] = append(gws[i], gateway{pos, where, a})
			}
		}
		if h.spec.Gateway != "" {
			add(r.specPos(h, "gateway"), h.where+": gateway", h.spec.Gateway)
		}
		for _, rt := range sortedKeys(h.spec.Routes) {
			if gw := routeGateway(h.spec.Routes[rt]); gw != "" {
				add(r.mapPos(h, func(s *Spec) map[string]string { return s.Routes }, rt), h.where+": routes: "+rt, gw)
			}
		}
		for _, j := range h.jailsIn {
			if j.Gateway != "" {
				add(r.pos.at(j, "gateway"), h.where+": jail "+j.Name+": gateway", j.Gateway)
			}
		}
	})
	// A gateway is held when an interface's network contains it: the
	// networks that would (each gateway's prefix at every length) are
	// looked up with each interface's, host by host on every core. A
	// fleet has few distinct gateways, and many more addresses.
	nets := map[netip.Prefix][]netip.Addr{}
	for _, hg := range gws {
		for _, g := range hg {
			if p, _ := g.addr.Prefix(g.addr.BitLen()); !slices.Contains(nets[p], g.addr) {
				for bits := 0; bits <= g.addr.BitLen(); bits++ {
					p, _ := g.addr.Prefix(bits)
					nets[p] = append(nets[p], g.addr)
				}
			}
		}
	}
	if len(nets) == 0 {
		return
	}
	heldBy := make([][]netip.Addr, len(r.names))
	parallel(len(r.names), func(i int) {
		for _, ifc := range r.hosts[r.names[i]].ifaces {
			for _, p := range ifc.prefix {
				heldBy[i] = append(heldBy[i], nets[p.Masked()]...)
			}
		}
	})
	held := map[netip.Addr]bool{}
	for _, as := range heldBy {
		for _, a := range as {
			held[a] = true
		}
	}
	for _, hg := range gws {
		for _, g := range hg {
			if !held[g.addr] {
				pl.warn(g.pos, g.where, "gateway %s is not an address or in a network of any host in the topology", g.addr)
			}
		}
	}
}

// routeGateway is the gateway of a route(8) argument list ("-net
// 10.0.0.0/8 10.0.0.1"): the last word, unless it is an interface.
func routeGateway(s string) string {
	f := strings.Fields(s)
	if len(f) < 2 {
		return ""
	}
	switch f[len(f)-2] {
	case "-interface", "-iface", "-netmask", "-prefixlen", "-fib":
		return ""
	}
	return f[len(f)-1]
}

// mapPos is the position of a merged map key: the host's if it set it,
// else the role's.
func (r *Repo) mapPos(h *host, m func(*Spec) map[string]string, key string) Pos {
	if _, ok := m(h.own)[key]; ok || h.role == nil {
		return r.pos.key(m(h.own), key)
	}
	return r.pos.key(m(h.role), key)
}

// checkWaves: hosts behind one service name are never in the same wave, so
// a rollout never takes all of them down at once.
func (r *Repo) checkWaves(pl *problemList) {
	type slot struct {
		svc  string
		wave time.Duration
	}
	by := map[slot][]*host{}
	var order []slot
	for _, name := range r.names {
		h := r.hosts[name]
		seen := map[string]bool{}
		for _, svc := range h.spec.Serves {
			if seen[svc] {
				continue
			}
			seen[svc] = true
			s := slot{svc, h.wave}
			if by[s] == nil {
				order = append(order, s)
			}
			by[s] = append(by[s], h)
		}
	}
	for _, s := range order {
		hs := by[s]
		if len(hs) < 2 {
			continue
		}
		var names []string
		for _, h := range hs {
			names = append(names, h.name)
		}
		pl.add(r.specPos(hs[len(hs)-1], "serves"), "hosts "+strings.Join(names, ", "),
			"all serve %s in the same wave (%s): a rollout would take them down at once (give each its own wave)", s.svc, s.wave)
	}
}
