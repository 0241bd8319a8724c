package topology

import (
	"time"

	"github.com/rigger-bsd/rigger/verify"
)

// loadGate reads the host's status key and checks its gate: every gating
// host exists, rolls out in an earlier wave (a gate on the same or a later
// wave could never open in time, or would deadlock) and has a status key
// to check its reports with.
func (r *Repo) loadGate(h *host, pl *problemList) {
	own := h.own
	if own.Bake != "" {
		d, err := time.ParseDuration(own.Bake)
		if err != nil || d < 0 {
			pl.add(r.pos.at(own, "bake"), h.where, "bake %q: want a duration like 10m", own.Bake)
		}
		h.bake = d
		if len(own.Gate) == 0 {
			pl.add(r.pos.at(own, "bake"), h.where, "bake needs a gate")
		}
	}
	seen := map[string]bool{}
	for i, g := range own.Gate {
		pos := r.pos.elem(own, "gate", i)
		gh := r.hosts[g]
		switch {
		case g == h.name:
			pl.add(pos, h.where, "gate %s: a host cannot gate itself", g)
		case gh == nil:
			pl.add(pos, h.where, "gate %s: no such host", g)
		case seen[g]:
			pl.add(pos, h.where, "gate %s: listed twice", g)
		case gh.wave >= h.wave:
			pl.add(pos, h.where, "gate %s: wave %s is not earlier than this host's wave %s", g, gh.wave, h.wave)
		case gh.own.StatusKey == "":
			pl.add(pos, h.where, "gate %s: host %s has no status_key to check its reports with", g, g)
		}
		seen[g] = true
	}
}

// loadStatusKey reads and checks the host's status_key file.
func (r *Repo) loadStatusKey(h *host, pl *problemList) {
	if h.own.StatusKey == "" {
		return
	}
	b, err := r.source(h.own.StatusKey)
	if err == nil {
		_, err = verify.LoadPublicKey(b)
	}
	if err != nil {
		pl.add(r.pos.at(h.own, "status_key"), h.where, "status_key: %v", err)
		return
	}
	h.reportKey = string(b)
}
