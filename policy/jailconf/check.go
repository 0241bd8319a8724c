package jailconf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// Parameter types jail(8) checks before it creates a jail. The internal
// ones are usr.sbin/jail/config.c's intparams table (PF_BOOL, PF_INT,
// PF_IMMUTABLE, checked by check_intparams and add_param); the kernel
// ones are what libjail's jailparam_import accepts for jail(8)'s listed
// parameters (sys/kern/kern_jail.c types).
var (
	boolParams = map[string]bool{
		"allow.dying": true, "exec.clean": true, "exec.system_jail_user": true, "ip_hostname": true,
		"mount.devfs": true, "mount.fdescfs": true, "mount.procfs": true, "persist": true,
	}
	intParams = map[string]bool{
		"exec.fib": true, "exec.timeout": true, "stop.timeout": true, "securelevel": true,
		"devfs_ruleset": true, "enforce_statfs": true, "children.max": true, "jid": true, "osreldate": true,
	}
	// jailsys parameters take new, inherit or disable (vnet: no disable)
	sysParams = map[string][]string{
		"vnet": {"new", "inherit"}, "ip4": {"new", "inherit", "disable"}, "ip6": {"new", "inherit", "disable"},
		"sysvmsg": {"new", "inherit", "disable"}, "sysvsem": {"new", "inherit", "disable"},
		"sysvshm": {"new", "inherit", "disable"}, "host": {"new", "inherit"},
	}
	// execParams hold commands jail(8) runs with /bin/sh -c
	execParams = map[string]bool{
		"exec.prepare": true, "exec.prestart": true, "exec.created": true, "exec.start": true,
		"command": true, "exec.poststart": true, "exec.prestop": true, "exec.stop": true,
		"exec.poststop": true, "exec.release": true,
	}
)

// CheckOptions say how Check runs the checks that need a tool.
type CheckOptions struct {
	// Shell checks the syntax of an exec.* command; nil means
	// policy.ShellSyntax (sh -n).
	Shell func(cmd string) error
}

// Check checks every concrete jail's effective parameters as jail(8) does
// before creating it: immutable parameters (name, and jid) defined again,
// boolean, integer and new|inherit|disable values, ip4.addr and ip6.addr
// addresses, an absolute path, and exec.* commands that sh must parse.
// Errors name the file and line of the offending definition.
func (c *Config) Check(opts CheckOptions) ErrorList {
	shell := opts.Shell
	if shell == nil {
		shell = policy.ShellSyntax
	}
	var errs ErrorList
	seen := map[string]bool{}
	add := func(p Param, jail, format string, a ...any) {
		e := &Error{File: p.File, Line: p.Line, Msg: "jail " + jail + ": " + fmt.Sprintf(format, a...)}
		if !seen[e.Error()] {
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}
	for _, name := range c.Names() {
		ps := c.applying(name)
		// add_param: the jail's name sets "name" (or "jid" when it is a
		// number) first; both are PF_IMMUTABLE.
		_, numErr := strconv.Atoi(name)
		defined := map[string]bool{"name": numErr != nil, "jid": numErr == nil}
		last := map[string]Param{}
		for _, p := range ps {
			if p.Name == "name" || p.Name == "jid" {
				if defined[p.Name] {
					add(p, name, "cannot redefine parameter %q", p.Name)
				}
				defined[p.Name] = true
			}
			last[p.Name] = p
		}
		vals, err := c.Resolve(name)
		if err != nil {
			continue // Resolve's error is the caller's to report
		}
		for pname, vs := range vals {
			p, ok := last[pname]
			if !ok {
				continue
			}
			checkValue(p, pname, vs, func(format string, a ...any) { add(p, name, format, a...) })
			if execParams[pname] {
				for _, cmd := range vs {
					if err := shell(cmd); err != nil {
						add(p, name, "%s: sh -n: %v", pname, err)
					}
				}
			}
		}
	}
	return errs
}

// applying returns the parameters that apply to jail name, in file order.
func (c *Config) applying(name string) []Param {
	var ps []Param
	ps = append(ps, c.Global...)
	for _, j := range c.Jails {
		if matches(j.Name, name) {
			ps = append(ps, j.Params...)
		}
	}
	sortBySeq(ps)
	return ps
}

func checkValue(p Param, name string, vs []string, fail func(string, ...any)) {
	if len(vs) == 0 {
		return
	}
	v := vs[len(vs)-1] // scalars keep the last value (import_params)
	base := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		base = name[i+1:]
	}
	isBool := boolParams[name] || strings.HasPrefix(name, "allow.")
	if strings.HasPrefix(base, "no") && (boolParams[strings.Replace(name, ".no", ".", 1)] || boolParams[strings.TrimPrefix(name, "no")]) {
		isBool = true
	}
	switch {
	case isBool:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") && !isInt(v) {
			fail("%s: unknown boolean value %q", name, v)
		}
	case intParams[name]:
		if !isInt(v) {
			fail("%s: non-integer value %q", name, v)
		}
	case sysParams[name] != nil:
		if !isInt(v) && !contains(sysParams[name], v) {
			fail("%s: unknown value %q (want %s)", name, v, strings.Join(sysParams[name], ", "))
		}
	case name == "ip4.addr" || name == "ip6.addr":
		for _, a := range vs {
			if msg := checkIPAddr(name, a); msg != "" {
				fail("%s", msg)
			}
		}
	case name == "path":
		if !strings.HasPrefix(v, "/") {
			fail("path %s: not an absolute pathname", v)
		}
	}
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(strings.TrimPrefix(s, "-"), 10, 64)
	return err == nil
}

// checkIPAddr checks one ip4.addr / ip6.addr value as check_intparams
// and libjail read it: [interface|]address[/prefix| netmask].
func checkIPAddr(param, v string) string {
	a := v
	if i := strings.IndexByte(a, '|'); i >= 0 {
		a = a[i+1:]
	}
	if i := strings.IndexAny(a, "/ "); i >= 0 {
		a = a[:i]
	}
	ip, err := netip.ParseAddr(a)
	if param == "ip4.addr" {
		if err != nil || !ip.Is4() {
			return "ip4.addr: not an IPv4 address: " + v
		}
		return ""
	}
	if err != nil || !ip.Is6() {
		return "ip6.addr: not an IPv6 address: " + v
	}
	return ""
}
