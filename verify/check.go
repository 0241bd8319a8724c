package verify

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rigger-bsd/rigger/policy"
)

// MaxSerialJump bounds how far one bundle may move a host's serial ahead
// once a serial has been accepted, so a compromised signer cannot burn the
// serial space (fast-forward attack). Recovery past it needs an operator.
const MaxSerialJump = 1_000_000

// DecodeManifest strictly decodes a manifest payload and checks it on its
// own: schema, host name, times, archive digest form, and every file (path
// allowed by paths, mode, owner, digest, unit), health check and secret. It
// says nothing about signatures, freshness or the archive.
func DecodeManifest(payload []byte, paths policy.Paths) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(payload, &m); err != nil {
		return nil, reject(ErrMalformed, "manifest: %v", err)
	}
	if err := CheckManifest(&m, paths); err != nil {
		return nil, err
	}
	return &m, nil
}

// CheckManifest validates a manifest's content as DecodeManifest does. The
// bundler runs it before signing, so it never signs what Verify refuses.
func CheckManifest(m *Manifest, paths policy.Paths) error {
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
	if !isSHA256(m.Archive.SHA256) {
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
	// The bundler lists the paths sorted and in lower case: then no two
	// collide and each path is its own key, found by binary search
	// without a map per manifest.
	sorted := sortedLower(m.Files)
	var seen map[string]string
	if !sorted {
		seen = make(map[string]string, len(m.Files))
	}
	for i, f := range m.Files {
		if err := paths.Check(f.Path); err != nil {
			return reject(ErrPathNotAllowed, "manifest files[%d]: %v", i, err)
		}
		if !sorted {
			if other, ok := seen[strings.ToLower(f.Path)]; ok {
				if other == f.Path {
					return bad("files[%d]: duplicate path %s", i, f.Path)
				}
				return reject(ErrPathNotAllowed, "manifest files[%d]: %s collides with %s (letter case only)", i, f.Path, other)
			}
			seen[strings.ToLower(f.Path)] = f.Path
		}
		// Config files never need setuid, setgid or sticky bits.
		if f.Mode&^0o777 != 0 {
			return bad("file %s: mode %04o: only permission bits allowed", f.Path, uint32(f.Mode))
		}
		if !ownerName.match(f.Owner) || !ownerName.match(f.Group) {
			return bad("file %s: owner %q / group %q: not user or group names", f.Path, f.Owner, f.Group)
		}
		if !isSHA256(f.SHA256) {
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
	// (/etc/rc.conf and /etc/rc.conf/evil). Every path is clean and
	// absolute here (paths.Check).
	for i, f := range m.Files {
		for d := dirAbs(f.Path); d != "/"; d = dirAbs(d) {
			var other string
			var ok bool
			if sorted {
				ok, other = sortedHas(m.Files[:i], d), d // d sorts before f
			} else {
				other, ok = seen[strings.ToLower(d)]
			}
			if ok {
				return reject(ErrPathNotAllowed, "file %s: below %s, which the bundle sends as a file", f.Path, other)
			}
		}
	}
	var names nameSet
	for i, c := range m.Health {
		if c.Name == "" {
			return bad("health[%d]: no name", i)
		}
		if !names.add(c.Name) {
			return bad("health[%d]: duplicate check name %q", i, c.Name)
		}
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
	if err := checkHostDesc(m.HostDesc); err != nil {
		return bad("host_desc: %v", err)
	}
	return checkGate(m)
}

// sortedLower reports whether the files' paths are strictly increasing
// and ASCII without upper-case letters (so strings.ToLower leaves each as
// it is), as the bundler writes them.
func sortedLower(files []File) bool {
	for i, f := range files {
		if i > 0 && f.Path <= files[i-1].Path {
			return false
		}
		for j := 0; j < len(f.Path); j++ {
			if c := f.Path[j]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
				return false
			}
		}
	}
	return true
}

// sortedHas reports whether files, sorted by path, has one at p (a
// binary search without a closure per probe).
func sortedHas(files []File, p string) bool {
	lo, hi := 0, len(files)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if files[m].Path < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(files) && files[lo].Path == p
}

// dirAbs is path.Dir of a clean absolute path (which is clean already, so
// nothing is left for path.Clean to do).
func dirAbs(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// MaxGateHosts bounds the gating hosts of one bundle.
const MaxGateHosts = 64

func checkGate(m *Manifest) error {
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
	var seen nameSet
	for i, h := range g.Hosts {
		switch {
		case !hostName.match(h.Host):
			return bad("hosts[%d]: %q is not a host name", i, h.Host)
		case h.Host == m.Host:
			return bad("hosts[%d]: a host cannot gate itself", i)
		case !seen.add(h.Host):
			return bad("hosts[%d]: %s listed twice", i, h.Host)
		case h.Serial == 0:
			return bad("host %s: serial 0", h.Host)
		}
		if _, err := LoadPublicKey([]byte(h.Key)); err != nil {
			return bad("host %s: key: %v", h.Host, err)
		}
	}
	return nil
}

// checkFresh applies the trust state: expected host, serial above the last
// accepted one (with a bounded jump) and not expired.
func checkFresh(m *Manifest, opts Options) error {
	if opts.Host != "" && m.Host != opts.Host {
		return reject(ErrWrongHost, "manifest is for host %q, this is %q", m.Host, opts.Host)
	}
	if m.Serial <= opts.LastSerial {
		return reject(ErrRollback, "serial %d, last accepted %d", m.Serial, opts.LastSerial)
	}
	if opts.LastSerial > 0 && m.Serial-opts.LastSerial > MaxSerialJump {
		return reject(ErrSerialJump, "serial %d is more than %d above the last accepted %d", m.Serial, MaxSerialJump, opts.LastSerial)
	}
	now := opts.now()
	if !now.Before(m.Expires) {
		return reject(ErrExpired, "expired %s, now %s", m.Expires.UTC().Format("2006-01-02T15:04:05Z"), now.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

func reject(reason error, format string, args ...any) *RejectError {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
