package topology

import "slices"

// mergeWG returns base with over merged in: scalars replaced when over
// sets them, fib_routes and hooks appended, peers merged by mergeWGPeers.
// base is the role's and shared by its hosts: never modified.
func (r *Repo) mergeWG(h *host, base, over *WG) *WG {
	m := &WG{
		Name:       base.Name,
		ListenPort: pickInt(over.ListenPort, base.ListenPort),
		PublicKey:  pick(over.PublicKey, base.PublicKey),
		PrivateKey: pick(over.PrivateKey, base.PrivateKey),
		Endpoint:   pick(over.Endpoint, base.Endpoint),
		MTU:        pickInt(over.MTU, base.MTU),
		Table:      pick(over.Table, base.Table),
		FIB:        pickInt(over.FIB, base.FIB),
		FIBRoutes:  appendNew(base.FIBRoutes, over.FIBRoutes),
		PostUp:     append(append([]string{}, base.PostUp...), over.PostUp...),
		PostDown:   append(append([]string{}, base.PostDown...), over.PostDown...),
		Peers:      r.mergeWGPeers(h, base.Peers, over.Peers),
	}
	// Problems about the merged interface point at the host's entry.
	h.samePos(m, over)
	return m
}

// mergeWGPeers merges a host's peers into the role's: a host peer naming
// the same host and interface as a role peer, or the same public key,
// overrides that peer field by field (routes appended, allowed_ips
// replaced when given); other host peers are appended.
func (r *Repo) mergeWGPeers(h *host, base, over []*WGPeer) []*WGPeer {
	out := append([]*WGPeer{}, base...)
	for _, p := range over {
		if p == nil {
			out = append(out, p) // reported as an empty peer
			continue
		}
		i := slices.IndexFunc(out[:len(base)], func(x *WGPeer) bool { return x != nil && samePeer(x, p) })
		if i < 0 {
			out = append(out, p)
			continue
		}
		b := out[i]
		m := &WGPeer{
			Host:         pick(p.Host, b.Host),
			Interface:    pick(p.Interface, b.Interface),
			PublicKey:    pick(p.PublicKey, b.PublicKey),
			AllowedIPs:   b.AllowedIPs,
			Routes:       appendNew(b.Routes, p.Routes),
			PresharedKey: pick(p.PresharedKey, b.PresharedKey),
			Keepalive:    pickInt(p.Keepalive, b.Keepalive),
		}
		if len(p.AllowedIPs) > 0 {
			m.AllowedIPs = p.AllowedIPs
		}
		h.samePos(m, p)
		out[i] = m
	}
	return out
}

// samePeer: one peer named twice, by host and interface (the interface
// defaults to the one being merged, so "" matches only ""), or by key.
func samePeer(a, b *WGPeer) bool {
	if a.PublicKey != "" && a.PublicKey == b.PublicKey {
		return true
	}
	return a.Host != "" && a.Host == b.Host && a.Interface == b.Interface
}

func pickInt(v ...int) int {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

// appendNew appends over's items not already in base to a copy of base.
func appendNew(base, over []string) []string {
	out := append([]string{}, base...)
	for _, s := range over {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
