package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rigger-bsd/rigger/apply/freebsd/layout"
	"github.com/rigger-bsd/rigger/policy/jailconf"
	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// JailError: a jail did not start, and why, in jail(8)'s words where it
// has some.
type JailError struct {
	Jail   string
	Reason string
}

func (e *JailError) Error() string { return "jail " + e.Jail + " did not start: " + e.Reason }

// jailPlan is what starting a jail needs, read from the installed files.
type jailPlan struct {
	name   string
	path   string // inside the sandbox, as jail.conf says (/jails/pg_j)
	ifaces []string
	vars   *rcVars
	addrs  []string
}

// readFileIn is a reader for absolute host paths inside root.
func readFileIn(root string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) { return os.ReadFile(hostPath(root, p)) }
}

// loadJailConf finds the jail.conf that rc.d/jail would use for name
// (the first of /etc/jail.NAME.conf, /etc/jail.conf.d/NAME.conf,
// /etc/jail.conf that exists) and resolves the jail's parameters.
func (d *Driver) loadJailConf(name string) (string, map[string][]string, error) {
	for _, p := range layout.JailConfFor(name) {
		src, err := os.ReadFile(d.host(p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return p, nil, err
		}
		cfg, err := jailconf.ParseOptions(p, src, jailconf.Options{
			ReadFile: readFileIn(d.root),
			Glob:     globIn(d.root),
		})
		if err != nil {
			return p, nil, err
		}
		params, err := cfg.Resolve(name)
		if err != nil {
			return p, nil, fmt.Errorf("%s: %w", p, err)
		}
		return p, params, nil
	}
	return "", nil, fmt.Errorf("no jail.conf defines it (looked for %s)", strings.Join(layout.JailConfFor(name), ", "))
}

// planJail reads everything starting name needs and fails where jail(8)
// or the jail's /etc/rc would.
func (d *Driver) planJail(name string, s *State) (*jailPlan, error) {
	fail := func(format string, a ...any) error {
		return &JailError{Jail: name, Reason: fmt.Sprintf(format, a...)}
	}
	_, params, err := d.loadJailConf(name)
	if err != nil {
		return nil, fail("%v", err)
	}
	p := params["path"]
	if len(p) != 1 || !path.IsAbs(p[0]) {
		return nil, fail("jail: %s: path %q: not an absolute pathname", name, strings.Join(p, ","))
	}
	jp := &jailPlan{name: name, path: path.Clean(p[0])}
	if fi, err := os.Stat(d.host(jp.path)); err != nil || !fi.IsDir() {
		return nil, fail("jail: %s: path %s: No such file or directory", name, jp.path)
	}
	vnet := false
	if v, ok := params["vnet"]; ok && (len(v) == 0 || v[0] == "new") {
		vnet = true
	}
	if vnet {
		have, err := d.hostIfaces()
		if err != nil {
			return nil, fail("%v", err)
		}
		for _, ifn := range params["vnet.interface"] {
			if !have[ifn] {
				return nil, fail("ifconfig: interface %s does not exist; jail: %s: ifconfig %s vnet %s: failed (not created by %s)", ifn, name, ifn, name, layout.RCConf)
			}
			for other, j := range s.Jails {
				if other != name && contains(j.Ifaces, ifn) {
					return nil, fail("ifconfig: interface %s does not exist (it is in jail %s); jail: %s: ifconfig %s vnet %s: failed", ifn, other, name, ifn, name)
				}
			}
			jp.ifaces = append(jp.ifaces, ifn)
		}
	}
	vars, err := d.readRC(d.host(jp.path), path.Join(jp.path, "etc/rc.conf"), path.Join(jp.path, "etc/rc.conf.local"))
	if err != nil {
		return nil, fail("/etc/rc: %v", err)
	}
	jp.vars = vars
	var only map[string]bool
	if vnet {
		only = map[string]bool{}
		for _, i := range jp.ifaces {
			only[i] = true
		}
		addrs, err := vars.ifaceAddrs(only)
		if err != nil {
			return nil, fail("%v", err)
		}
		for _, a := range addrs {
			jp.addrs = append(jp.addrs, a.String())
		}
	} else {
		for _, a := range append(params["ip4.addr"], params["ip6.addr"]...) {
			if _, after, ok := strings.Cut(a, "|"); ok {
				a = after
			}
			a, _, _ = strings.Cut(a, "/")
			jp.addrs = append(jp.addrs, strings.TrimSpace(a))
		}
	}
	return jp, nil
}

// readRC checks and reads rc.conf-style files (later ones win), as the
// jail's /etc/rc would source them. root is where `cat FILE` reads.
func (d *Driver) readRC(root string, files ...string) (*rcVars, error) {
	v := &rcVars{root: root, raw: rcconf.Vars{}}
	for i, f := range files {
		src, err := os.ReadFile(d.host(f))
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			v.file = f
			continue // a jail without rc.conf starts nothing
		}
		if err != nil {
			return nil, err
		}
		if errs := rcconf.Check(f, src); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		vars, err := rcconf.Parse(f, src)
		if err != nil {
			return nil, err
		}
		if v.file == "" {
			v.file = f
		}
		for k, val := range vars {
			v.raw[k] = val
		}
	}
	return v, nil
}

// hostIfaces lists the interfaces the host's rc.conf creates at boot:
// cloned_interfaces (an epairN gives epairNa and epairNb), vlans_IF,
// NICs it configures (names like em0), then ifconfig_IF_name renames.
func (d *Driver) hostIfaces() (map[string]bool, error) {
	v, err := d.readRC(d.root, layout.RCConf)
	if err != nil {
		return nil, err
	}
	var names []string
	cloned, err := v.get("cloned_interfaces")
	if err != nil {
		return nil, err
	}
	for _, c := range strings.Fields(cloned) {
		if strings.HasPrefix(c, "epair") && isDigits(strings.TrimPrefix(c, "epair")) {
			names = append(names, c+"a", c+"b")
			continue
		}
		names = append(names, c)
	}
	var keys []string
	for k := range v.raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "vlans_"):
			val, _ := v.get(k)
			for _, vl := range strings.Fields(val) {
				if isDigits(vl) {
					vl = strings.TrimPrefix(k, "vlans_") + "." + vl
				}
				names = append(names, vl)
			}
		case strings.HasPrefix(k, "ifconfig_"):
			// A NIC exists when rc.conf configures or renames it.
			n := strings.TrimSuffix(strings.TrimPrefix(k, "ifconfig_"), "_name")
			if isNIC(n) && !contains(names, n) {
				names = append(names, n)
			}
		}
	}
	have := map[string]bool{"lo0": true}
	for _, n := range names {
		if to, _ := v.get("ifconfig_" + strings.ReplaceAll(n, ".", "_") + "_name"); to != "" {
			n = to
		}
		have[n] = true
	}
	return have, nil
}

// isNIC: a driver name and unit (em0, vtnet1, igb0), not a clone or rename.
func isNIC(s string) bool {
	i := strings.IndexAny(s, "0123456789")
	if i <= 0 || !isDigits(s[i:]) {
		return false
	}
	for _, c := range s[:i] {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	switch s[:i] {
	case "epair", "bridge", "vlan", "lagg", "wg", "tap", "tun", "gif", "gre", "lo":
		return false
	}
	return true
}

func contains(l []string, x string) bool {
	for _, v := range l {
		if v == x {
			return true
		}
	}
	return false
}

// globIn expands a host path pattern inside root, returning host paths.
func globIn(root string) func(string) ([]string, error) {
	return func(pat string) ([]string, error) {
		m, err := filepath.Glob(hostPath(root, pat))
		for i := range m {
			m[i] = "/" + filepath.ToSlash(strings.TrimPrefix(m[i], root+string(filepath.Separator)))
		}
		return m, err
	}
}
