// Package lint runs every offline check on one host's rendered files:
// pf.conf (syntax and lints), jail.conf, rc files, WireGuard configs. It only reads the file
// map it is given; it never touches the local file system.
package lint

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/jailconf"
	"github.com/rigger-bsd/rigger/policy/pf"
	"github.com/rigger-bsd/rigger/policy/rcconf"
	"github.com/rigger-bsd/rigger/policy/wgconf"
)

// CONTRACT (shared with bundler check): names and signatures here are used
// elsewhere.

// Severity of a finding.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem in a rendered file.
type Finding struct {
	File     string // target path, e.g. /etc/pf.conf
	Line     int    // 0 when the finding is about the whole file
	Severity Severity
	Msg      string
}

// String formats the finding as FILE:LINE: severity: msg (FILE: severity:
// msg for whole-file findings).
func (f Finding) String() string {
	if f.Line <= 0 {
		return fmt.Sprintf("%s: %s: %s", f.File, f.Severity, f.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Severity, f.Msg)
}

// Options carry topology facts the linters cannot see in the files.
type Options struct {
	// TunnelPorts are ports of tunnels that pf must pass (a lint warns
	// when no rule passes one).
	TunnelPorts []int
	// FleetTunnelPorts are the tunnel ports of every host of the topology:
	// a pass rule naming one that is not in TunnelPorts is stale (a
	// warning).
	FleetTunnelPorts []int
	// Release is the host's FreeBSD release (0: the newest supported);
	// each checker accepts what that release's tools accept.
	Release policy.Release
}

// Paths of the files Host checks.
const (
	PfConf   = "/etc/pf.conf"
	JailConf = "/etc/jail.conf"
)

// Host checks the rendered files of one host (target path → contents).
// Table files and includes named by pf.conf and jail.conf are read from
// the same map.
func Host(files map[string][]byte, opts Options) []Finding {
	var out []Finding
	out = append(out, hostPf(files, opts)...)
	out = append(out, hostJails(files)...)
	out = append(out, hostRC(files)...)
	out = append(out, hostWG(files)...)
	return out
}

// WireGuardConfs are the wg-quick configs Host checks.
const WireGuardConfs = "/usr/local/etc/wireguard/*.conf"

// hostWG checks every rendered wg-quick config (wgconf: keys, addresses,
// endpoints, values, PostUp through sh -n).
func hostWG(files map[string][]byte) []Finding {
	var out []Finding
	for _, name := range sortedKeys(files, WireGuardConfs) {
		for _, e := range wgconf.Check(name, files[name], wgconf.Options{}) {
			out = append(out, Finding{File: e.File, Line: e.Line, Severity: Error, Msg: e.Msg})
		}
	}
	return out
}

// fromMap reads name from files; relative names are taken from /, the
// working directory of rc.d/pf.
func fromMap(files map[string][]byte) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if !path.IsAbs(name) {
			name = path.Join("/", name)
		}
		b, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
		}
		return b, nil
	}
}

// sortedKeys returns the map's names matching any of the patterns.
func sortedKeys(files map[string][]byte, patterns ...string) []string {
	var names []string
	for n := range files {
		for _, p := range patterns {
			if ok, _ := path.Match(p, n); ok {
				names = append(names, n)
				break
			}
		}
	}
	sort.Strings(names)
	return names
}

func hostPf(files map[string][]byte, opts Options) []Finding {
	src, ok := files[PfConf]
	if !ok {
		return nil
	}
	rs, err := pf.Parse(PfConf, src, pf.Options{ReadFile: fromMap(files), Release: opts.Release})
	if err != nil {
		var el pf.ErrorList
		if !errors.As(err, &el) {
			return []Finding{{File: PfConf, Severity: Error, Msg: err.Error()}}
		}
		var out []Finding
		for _, e := range el {
			out = append(out, Finding{File: e.File, Line: e.Line, Severity: Error, Msg: e.Msg})
		}
		return out
	}
	var out []Finding
	for _, w := range rs.Warnings {
		out = append(out, Finding{File: w.File, Line: w.Line, Severity: Warning, Msg: w.Msg})
	}
	return append(out, Pf(rs, opts)...)
}

// Pf runs the pf lints on a parsed ruleset: unused macros and tables,
// rules that can never match after a "block quick" catch-all, pass rules
// without quick overridden by a later catch-all block, and tunnel ports no
// pass rule covers.
func Pf(rs *pf.Ruleset, opts Options) []Finding {
	var out []Finding
	warn := func(file string, line int, format string, a ...any) {
		out = append(out, Finding{File: file, Line: line, Severity: Warning, Msg: fmt.Sprintf(format, a...)})
	}
	for _, m := range rs.Macros {
		if m.Uses == 0 {
			warn(m.File, m.Line, "macro %s is defined but never used", m.Name)
		}
	}
	for _, t := range rs.Tables {
		if rs.TableRefs[t.Name] == 0 {
			warn(t.File, t.Line, "table <%s> is defined but never used", t.Name)
		}
	}

	filter := filterRules(rs.Rules)
	reported := map[*pf.Rule]bool{}
	// A block quick catch-all ends evaluation for its direction.
	for i, r := range filter {
		if !(r.Kind == "block" && r.Quick && r.Catchall) {
			continue
		}
		for _, later := range filter[i+1:] {
			if reported[later] || !covers(r.Dir, later.Dir) {
				continue
			}
			reported[later] = true
			warn(later.File, later.Line, "rule can never match: %q at %s:%d blocks every packet first",
				r.Text, r.File, r.Line)
		}
	}
	// Last match wins: a later catch-all block overrides a pass without quick.
	for i, r := range filter {
		if r.Kind != "pass" || r.Quick || reported[r] {
			continue
		}
		for _, later := range filter[i+1:] {
			if later.Kind == "block" && later.Catchall && covers(later.Dir, r.Dir) {
				reported[r] = true
				warn(r.File, r.Line, "pass rule is overridden by the later catch-all %q at %s:%d (last match wins: add quick or move the pass after it)",
					later.Text, later.File, later.Line)
				break
			}
		}
	}
	for _, port := range opts.TunnelPorts {
		if !passesPort(rs.Rules, port) {
			out = append(out, Finding{File: rs.File, Severity: Warning,
				Msg: fmt.Sprintf("no pass rule covers tunnel port %d", port)})
		}
	}
	own := map[int]bool{}
	for _, p := range opts.TunnelPorts {
		own[p] = true
	}
	for _, port := range opts.FleetTunnelPorts {
		if own[port] {
			continue
		}
		for _, r := range rs.Rules {
			if (r.Kind == "pass" || (r.Kind == "rdr" && r.Pass)) && r.To.Op == "=" && r.To.Lo == port {
				warn(r.File, r.Line, "pass rule names tunnel port %d, which no tunnel of this host uses (the topology defines it for other hosts)", port)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// filterRules are the top-level filter rules in evaluation order.
func filterRules(rules []*pf.Rule) []*pf.Rule {
	var f []*pf.Rule
	for _, r := range rules {
		switch r.Kind {
		case "pass", "block", "match", "anchor":
			f = append(f, r)
		}
	}
	return f
}

// covers reports whether a rule for direction outer ("" = both) sees every
// packet a rule for direction inner sees.
func covers(outer, inner string) bool { return outer == "" || outer == inner }

// passesPort reports whether some pass rule (or rdr pass) lets traffic
// to port through.
func passesPort(rules []*pf.Rule, port int) bool {
	for _, r := range rules {
		if r.Kind != "pass" && !(r.Kind == "rdr" && r.Pass) {
			continue
		}
		switch r.Proto {
		case "", "tcp", "udp", "sctp":
		default:
			continue
		}
		if r.To.Not && r.To.Addr == "any" {
			continue
		}
		if r.To.MatchesPort(port) {
			return true
		}
	}
	return false
}

func hostJails(files map[string][]byte) []Finding {
	var out []Finding
	readFile := fromMap(files)
	var included []string
	opts := jailconf.Options{
		ReadFile: func(n string) ([]byte, error) {
			included = append(included, n)
			return readFile(n)
		},
		Glob: func(p string) ([]string, error) {
			if !path.IsAbs(p) {
				p = path.Join("/", p)
			}
			return sortedKeys(files, p), nil
		},
	}
	check := func(name string) {
		cfg, err := jailconf.ParseOptions(name, files[name], opts)
		if err != nil {
			var el jailconf.ErrorList
			if !errors.As(err, &el) {
				out = append(out, Finding{File: name, Severity: Error, Msg: err.Error()})
				return
			}
			for _, e := range el {
				out = append(out, Finding{File: e.File, Line: e.Line, Severity: Error, Msg: e.Msg})
			}
			// the jails that did parse are still resolved below
		}
		for _, w := range cfg.Warnings {
			out = append(out, Finding{File: w.File, Line: w.Line, Severity: Warning, Msg: w.Msg})
		}
		// values jail(8) refuses: immutable names, types, addresses,
		// exec.* commands sh cannot parse
		for _, e := range cfg.Check(jailconf.CheckOptions{}) {
			out = append(out, Finding{File: e.File, Line: e.Line, Severity: Error, Msg: e.Msg})
		}
		for _, j := range cfg.Names() {
			if _, err := cfg.Resolve(j); err != nil {
				var re *jailconf.ResolveError
				if errors.As(err, &re) {
					out = append(out, Finding{File: re.File, Line: re.Line, Severity: Error, Msg: "jail " + re.Jail + ": " + re.Msg})
				} else {
					out = append(out, Finding{File: name, Severity: Error, Msg: err.Error()})
				}
			}
		}
	}
	if _, ok := files[JailConf]; ok {
		check(JailConf)
	}
	// rc.d/jail also reads /etc/jail.conf.d/NAME.conf on its own.
	for _, n := range sortedKeys(files, "/etc/jail.conf.d/*.conf") {
		if contains(included, n) {
			continue
		}
		check(n)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func hostRC(files map[string][]byte) []Finding {
	var out []Finding
	for _, n := range sortedKeys(files, "/etc/rc.conf", "/etc/rc.conf.local", "/etc/rc.conf.d/*", "/jails/*/etc/rc.conf") {
		for _, err := range rcconf.Check(n, files[n]) {
			var re *rcconf.Error
			if errors.As(err, &re) {
				out = append(out, Finding{File: re.File, Line: re.Line, Severity: Error, Msg: re.Msg})
			} else {
				out = append(out, Finding{File: n, Severity: Error, Msg: strings.TrimPrefix(err.Error(), n+": ")})
			}
		}
	}
	return out
}
