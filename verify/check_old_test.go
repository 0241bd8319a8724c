package verify

import (
	"fmt"
	"path"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// The manifest checks as they were before the fast paths (sorted paths
// found by binary search instead of a map per manifest, nameSet, the
// isSHA256 table): the oracle the faster ones must agree with, verdict
// and message, on every manifest (check_oracle_test.go).

func oldCheckManifest(m *Manifest, paths policy.Paths) error {
	bad := func(format string, args ...any) error { return reject(ErrMalformed, "manifest: "+format, args...) }
	if m.Schema != Schema {
		return bad("schema %d, want %d", m.Schema, Schema)
	}
	if !hostName.match(m.Host) {
		return bad("host %q: not a host name", m.Host)
	}
	if m.Serial == 0 {
		return bad("serial 0: serials start at 1")
	}
	if m.Created.IsZero() || m.Expires.IsZero() {
		return bad("created and expires are required")
	}
	if !m.Expires.After(m.Created) {
		return bad("expires %s is not after created %s", m.Expires, m.Created)
	}
	if !m.NotBefore.IsZero() && m.NotBefore.After(m.Expires) {
		return bad("not_before %s is after expires %s", m.NotBefore, m.Expires)
	}
	if !oldIsSHA256(m.Archive.SHA256) {
		return bad("archive.sha256 %q: want 64 lowercase hex digits", m.Archive.SHA256)
	}
	if m.Archive.Size <= 0 {
		return bad("archive.size %d: must be positive", m.Archive.Size)
	}
	if len(m.Files) == 0 {
		return bad("no files")
	}
	// Keyed by lower case: on a case-insensitive file system (ZFS
	// casesensitivity=insensitive) /etc/PF.conf is /etc/pf.conf, and two
	// entries for one file would leave which one wins to the install order.
	seen := make(map[string]string, len(m.Files))
	for i, f := range m.Files {
		if err := paths.Check(f.Path); err != nil {
			return reject(ErrPathNotAllowed, "manifest files[%d]: %v", i, err)
		}
		if other, ok := seen[strings.ToLower(f.Path)]; ok {
			if other == f.Path {
				return bad("files[%d]: duplicate path %s", i, f.Path)
			}
			return reject(ErrPathNotAllowed, "manifest files[%d]: %s collides with %s (letter case only)", i, f.Path, other)
		}
		seen[strings.ToLower(f.Path)] = f.Path
		// Config files never need setuid, setgid or sticky bits.
		if f.Mode&^0o777 != 0 {
			return bad("file %s: mode %04o: only permission bits allowed", f.Path, uint32(f.Mode))
		}
		if !ownerName.match(f.Owner) || !ownerName.match(f.Group) {
			return bad("file %s: owner %q / group %q: not user or group names", f.Path, f.Owner, f.Group)
		}
		if !oldIsSHA256(f.SHA256) {
			return bad("file %s: sha256 %q: want 64 lowercase hex digits", f.Path, f.SHA256)
		}
		if f.Size < 0 {
			return bad("file %s: negative size", f.Path)
		}
		u, err := ParseUnit(f.Unit)
		if err != nil {
			return bad("file %s: %v", f.Path, err)
		}
		if f.Mode&0o111 != 0 && !policy.ExecAllowed(f.Path, string(u.Kind)) {
			return reject(ErrPathNotAllowed, "file %s: mode %04o: executable, but unit %s runs no file", f.Path, uint32(f.Mode), u)
		}
	}
	// A file where another entry needs a directory cannot be installed
	// (/etc/rc.conf and /etc/rc.conf/evil).
	for _, f := range m.Files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			if other, ok := seen[strings.ToLower(d)]; ok {
				return reject(ErrPathNotAllowed, "file %s: below %s, which the bundle sends as a file", f.Path, other)
			}
		}
	}
	names := map[string]bool{}
	for i, c := range m.Health {
		if c.Name == "" {
			return bad("health[%d]: no name", i)
		}
		if names[c.Name] {
			return bad("health[%d]: duplicate check name %q", i, c.Name)
		}
		names[c.Name] = true
		switch c.Kind {
		case CheckJail, CheckTunnel, CheckPF, CheckGit, CheckTCP, CheckHTTP, CheckExec, CheckWireGuard:
		default:
			return bad("health check %q: unknown kind %q", c.Name, c.Kind)
		}
		if c.Jail != "" || c.Kind == CheckJail {
			if err := CheckUnitName(c.Jail); err != nil {
				return bad("health check %q: jail %v", c.Name, err)
			}
		}
		if c.Timeout < 0 {
			return bad("health check %q: negative timeout", c.Name)
		}
	}
	for _, s := range m.Secrets {
		// The pre-check reports whether a secret exists: outside the
		// roots that would probe any host path.
		if err := paths.CheckRoots(s); err != nil {
			return reject(ErrPathNotAllowed, "secret: %v", err)
		}
	}
	for _, n := range m.NetifRestart {
		if !ifaceName.match(n) {
			return bad("netif_restart %q: not an interface name", n)
		}
	}
	if m.ReportKey != "" {
		if _, err := LoadPublicKey([]byte(m.ReportKey)); err != nil {
			return bad("report_key: %v", err)
		}
	}
	if err := oldCheckHostDesc(m.HostDesc); err != nil {
		return bad("host_desc: %v", err)
	}
	return oldCheckGate(m)
}

func oldCheckGate(m *Manifest) error {
	g := m.Gate
	if g == nil {
		return nil
	}
	bad := func(format string, args ...any) error { return reject(ErrMalformed, "manifest gate: "+format, args...) }
	if len(g.Hosts) == 0 || len(g.Hosts) > MaxGateHosts {
		return bad("%d hosts: want 1 to %d", len(g.Hosts), MaxGateHosts)
	}
	if g.Bake < 0 {
		return bad("negative bake")
	}
	seen := map[string]bool{}
	for i, h := range g.Hosts {
		switch {
		case !hostName.match(h.Host):
			return bad("hosts[%d]: %q is not a host name", i, h.Host)
		case h.Host == m.Host:
			return bad("hosts[%d]: a host cannot gate itself", i)
		case seen[h.Host]:
			return bad("hosts[%d]: %s listed twice", i, h.Host)
		case h.Serial == 0:
			return bad("host %s: serial 0", h.Host)
		}
		seen[h.Host] = true
		if _, err := LoadPublicKey([]byte(h.Key)); err != nil {
			return bad("host %s: key: %v", h.Host, err)
		}
	}
	return nil
}

func oldCheckHostDesc(d *hostdesc.Host) error {
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
	seen := map[string]bool{}
	for _, i := range d.Interfaces {
		if !isIfaceName(i.Name) {
			return fmt.Errorf("interface %q: not an interface name", i.Name)
		}
		if seen[i.Name] {
			return fmt.Errorf("interface %s listed twice", i.Name)
		}
		seen[i.Name] = true
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
func oldIsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
