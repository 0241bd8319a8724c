package verify

import (
	"fmt"
	"strings"

	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// checkHostDesc refuses a host description whose names could not be what
// they claim (an interface name with a space, an option word that is a
// flag of another command): names in a host description become command
// arguments (argv, never a shell), so each is held to the shape of what
// it names (names.go).
func checkHostDesc(d *hostdesc.Host) error {
	if d == nil {
		return nil
	}
	switch d.Management {
	case hostdesc.MgmtConfirm, hostdesc.MgmtForbid:
	default:
		return fmt.Errorf("management %q: want empty or %q", d.Management, hostdesc.MgmtForbid)
	}
	if strings.ContainsAny(d.Hostname, " \t\n/") || strings.HasPrefix(d.Hostname, "-") {
		return fmt.Errorf("hostname %q", d.Hostname)
	}
	var seen nameSet
	for _, i := range d.Interfaces {
		if !isIfaceName(i.Name) {
			return fmt.Errorf("interface %q: not an interface name", i.Name)
		}
		if !seen.add(i.Name) {
			return fmt.Errorf("interface %s listed twice", i.Name)
		}
		switch i.Kind {
		case hostdesc.Physical, hostdesc.Epair, hostdesc.Bridge, hostdesc.Lagg, hostdesc.Vlan, hostdesc.WG:
		default:
			return fmt.Errorf("interface %s: unknown kind %q", i.Name, i.Kind)
		}
		for _, names := range [...][]string{{i.Clone, i.Peer, i.Parent}, i.Members, i.Ports} {
			for _, n := range names {
				if n == "" {
					continue
				}
				if !isIfaceName(n) {
					return fmt.Errorf("interface %s: name %q: not an interface name", i.Name, n)
				}
			}
		}
		for _, words := range [...][]string{{i.Proto}, i.Addrs, i.Options} {
			for _, w := range words {
				if strings.ContainsAny(w, " \t\n") || strings.HasPrefix(w, "-") && len(w) > 1 && !isNegatedOption(w) {
					return fmt.Errorf("interface %s: word %q", i.Name, w)
				}
			}
		}
		if i.MTU < 0 || i.FIB < 0 || i.Tag < 0 || i.Tag > 4094 {
			return fmt.Errorf("interface %s: mtu, fib or vlan tag out of range", i.Name)
		}
	}
	for _, r := range d.Routes {
		if r.Dest == "" || len(r.Args) == 0 || r.FIB < 0 {
			return fmt.Errorf("route %q: no destination", r.Name)
		}
		for _, a := range r.Args {
			if a == "" || strings.ContainsAny(a, " \t\n") {
				return fmt.Errorf("route %q: argument %q", r.Name, a)
			}
		}
	}
	for _, s := range d.Services {
		if !serviceName.match(s.Name) {
			return fmt.Errorf("service %q: not a service name", s.Name)
		}
	}
	for _, j := range d.Jails {
		if !serviceName.match(j.Name) {
			return fmt.Errorf("jail %q: not a jail name", j.Name)
		}
		for _, n := range j.Interfaces {
			if !isIfaceName(n) {
				return fmt.Errorf("jail %s: interface %q: not an interface name", j.Name, n)
			}
		}
	}
	for k := range d.Sysctls {
		if !sysctlName.match(k) {
			return fmt.Errorf("sysctl %q: not a sysctl name", k)
		}
	}
	return nil
}

// isIfaceName: an interface name never starts with "-" (an option).
func isIfaceName(n string) bool { return ifaceName.match(n) && !strings.HasPrefix(n, "-") }

// isNegatedOption: ifconfig's "-vlanhwtag", "-txcsum" turn a capability off.
func isNegatedOption(w string) bool {
	return negatedOpt.match(w)
}
