package apply

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/rigger-bsd/rigger/verify"
)

// change is one file a transaction installs or removes.
type change struct {
	Change
	file verify.File // the new entry (the old one for a remove)
}

// computePlan diffs tgt against cur (nil: nothing applied yet). Files that
// left the bundle are removed only when cur lists them, i.e. this agent
// installed them.
func computePlan(cur, tgt *generation) (*Plan, []change, error) {
	old := map[string]verify.File{}
	if cur != nil {
		for _, f := range cur.meta.Manifest.Files {
			old[f.Path] = f
		}
	}
	var chs []change
	var units []verify.Unit
	var unitPaths []string // the file behind each of units
	addUnit := func(f verify.File) error {
		u, err := verify.ParseUnit(f.Unit)
		if err != nil {
			return fmt.Errorf("plan: %s: %w", f.Path, err)
		}
		units = append(units, u)
		unitPaths = append(unitPaths, f.Path)
		return nil
	}
	seen := map[string]bool{}
	for _, f := range tgt.meta.Manifest.Files {
		if err := checkTarget(f.Path); err != nil {
			return nil, nil, fmt.Errorf("plan: %w", err)
		}
		if seen[f.Path] {
			return nil, nil, fmt.Errorf("plan: %s listed twice", f.Path)
		}
		seen[f.Path] = true
		data, ok := tgt.files[f.Path]
		if !ok {
			return nil, nil, fmt.Errorf("plan: %s: no contents in the bundle", f.Path)
		}
		o, had := old[f.Path]
		c := change{Change: Change{Path: f.Path, New: data}, file: f}
		switch {
		case !had:
			c.Op = OpAdd
		case o.SHA256 != f.SHA256 || !bytes.Equal(cur.files[f.Path], data):
			c.Op, c.Old = OpModify, cur.files[f.Path]
		case o.Mode != f.Mode || o.Owner != f.Owner || o.Group != f.Group:
			c.Op, c.Old = OpMeta, cur.files[f.Path]
		default:
			continue
		}
		if err := addUnit(f); err != nil {
			return nil, nil, err
		}
		if had && o.Unit != f.Unit {
			if err := addUnit(o); err != nil {
				return nil, nil, err
			}
		}
		chs = append(chs, c)
	}
	if cur != nil {
		for _, o := range cur.meta.Manifest.Files {
			if seen[o.Path] {
				continue
			}
			chs = append(chs, change{Change: Change{Path: o.Path, Op: OpRemove, Old: cur.files[o.Path]}, file: o})
			if err := addUnit(o); err != nil {
				return nil, nil, err
			}
		}
	}
	sort.Slice(chs, func(i, j int) bool { return chs[i].Path < chs[j].Path })
	ordered, reboot := orderUnits(units, tgt.meta.Manifest.NetifRestart)
	p := &Plan{Serial: tgt.meta.Serial, Units: ordered, Reboot: reboot, RebootReasons: rebootReasons(units, unitPaths, tgt.meta.Manifest.NetifRestart)}
	for _, c := range chs {
		p.Changes = append(p.Changes, c.Change)
	}
	if err := planLive(cur, tgt, p, chs, nil); err != nil {
		return nil, nil, err
	}
	return p, chs, nil
}

// unitRank is the activation order: kernel settings first, then the
// network, the firewall, the jails, what runs in them and on the host, and
// the tunnels last, so each step finds what it depends on already in place.
var unitRank = map[verify.UnitKind]int{
	verify.UnitSysctl:      0,
	verify.UnitNetif:       1,
	verify.UnitPF:          2,
	verify.UnitPFTable:     3,
	verify.UnitJail:        4,
	verify.UnitJailService: 5,
	verify.UnitService:     6,
	verify.UnitWireGuard:   7,
}

// orderUnits dedups and orders the changed units. A pf reload refreshes
// every file-backed table, so table units are dropped when pf itself is
// reloaded; a jail restart restarts its services. netif runs only for the
// interfaces the topology allows; any other netif change, and loader
// files, make the plan report reboot-required instead.
func orderUnits(in []verify.Unit, netifAllowed []string) ([]verify.Unit, bool) {
	reboot := false
	have := map[verify.Unit]bool{}
	for _, u := range in {
		have[u] = true
	}
	pf := have[verify.Unit{Kind: verify.UnitPF}]
	var out []verify.Unit
	for u := range have {
		switch u.Kind {
		case verify.UnitNone, verify.UnitCron:
			continue
		case verify.UnitRebootRequired:
			reboot = true
			continue
		case verify.UnitNetif:
			if !slices.Contains(netifAllowed, u.Name) {
				reboot = true
				continue
			}
		case verify.UnitPFTable:
			if pf {
				continue
			}
		case verify.UnitJailService:
			if have[verify.Unit{Kind: verify.UnitJail, Jail: u.Jail}] {
				continue
			}
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := unitRank[out[i].Kind], unitRank[out[j].Kind]
		if ri != rj {
			return ri < rj
		}
		return out[i].String() < out[j].String()
	})
	return out, reboot
}

// rebootReasons names, for each file that makes a reboot necessary, the
// file and why (orderUnits decides the same cases).
func rebootReasons(units []verify.Unit, paths []string, netifAllowed []string) []string {
	var out []string
	for i, u := range units {
		switch {
		case u.Kind == verify.UnitRebootRequired:
			out = append(out, paths[i]+": "+bootOnly(paths[i]))
		case u.Kind == verify.UnitNetif && !slices.Contains(netifAllowed, u.Name):
			out = append(out, fmt.Sprintf("%s: interface %s changes and the topology does not allow restarting it live (netif_restart)", paths[i], u.Name))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// bootOnly says why a reboot-required file waits for a boot: the host
// rc.conf is read by /etc/rc (and rc.d/netif, routing, jail) only at boot
// when no live plan covers it; loader files by the loader.
func bootOnly(path string) string {
	if path == rcConf {
		return "read by /etc/rc at boot (the bundle does not describe the host, so no live steps apply it)"
	}
	return "loader settings take effect at the next boot"
}

// planDrift compares the current generation with the disk: a drifted file
// becomes a change that reinstalls it.
func (e *Engine) planDrift(cur *generation) (*Plan, []change, error) {
	rs, err := openRoots(e.cfg.Root)
	if err != nil {
		return nil, nil, err
	}
	defer rs.close()
	var chs []change
	var units []verify.Unit
	var unitPaths []string
	for _, f := range cur.meta.Manifest.Files {
		data := cur.files[f.Path]
		disk, st, err := rs.read(f.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("drift: %w", err)
		}
		c := change{Change: Change{Path: f.Path, New: data, Old: disk}, file: f}
		switch {
		case !st.exists:
			c.Op = OpAdd
		case !bytes.Equal(disk, data):
			c.Op = OpModify
		default:
			uid, gid, err := lookupOwner(rs, f)
			if err != nil {
				return nil, nil, fmt.Errorf("drift: %s: %w", f.Path, err)
			}
			if st.mode != fileMode(f.Mode) || (canChown() && (st.uid != uid || st.gid != gid)) {
				c.Op = OpMeta
			} else {
				continue
			}
		}
		u, err := verify.ParseUnit(f.Unit)
		if err != nil {
			return nil, nil, fmt.Errorf("drift: %s: %w", f.Path, err)
		}
		units = append(units, u)
		unitPaths = append(unitPaths, f.Path)
		chs = append(chs, c)
	}
	ordered, reboot := orderUnits(units, cur.meta.Manifest.NetifRestart)
	p := &Plan{Serial: cur.meta.Serial, Units: ordered, Reboot: reboot, RebootReasons: rebootReasons(units, unitPaths, cur.meta.Manifest.NetifRestart)}
	for _, c := range chs {
		p.Changes = append(p.Changes, c.Change)
	}
	return p, chs, nil
}

// checkTarget refuses target paths the installer cannot place safely.
func checkTarget(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("target path %q: want a clean absolute file path", p)
	}
	return nil
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
