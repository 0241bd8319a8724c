// Package layout knows where a FreeBSD host keeps the files rigger manages
// and how to read the few facts the drivers need from them: which staged
// files are rc files, which jail.conf files exist, which file backs a pf
// table. It is pure (no exec, no writes) so both host drivers, freebsd and
// sim, share it.
package layout

import (
	"errors"
	"path"
	"strings"

	"github.com/rigger-bsd/rigger/policy"
)

// Well-known host paths.
const (
	PFConf       = "/etc/pf.conf"
	JailConf     = "/etc/jail.conf"
	RCConf       = "/etc/rc.conf"
	SysctlConf   = "/etc/sysctl.conf"
	WireGuardDir = "/usr/local/etc/wireguard"
)

// WireGuardConf is the wg-quick config of interface ifname.
func WireGuardConf(ifname string) string { return WireGuardDir + "/" + ifname + ".conf" }

// IsRCFile reports whether p (an absolute host path) is sourced or run by
// /bin/sh at boot, on the host or in a jail: rc.conf, rc.conf.local,
// rc.conf.d snippets and rc.d scripts. Those get `sh -n`.
func IsRCFile(p string) bool {
	p = path.Clean(p)
	base := path.Base(p)
	if strings.HasSuffix(p, "/etc/rc.conf") || strings.HasSuffix(p, "/etc/rc.conf.local") {
		return true
	}
	for _, dir := range []string{"/etc/rc.conf.d/", "/etc/rc.d/"} {
		if i := strings.Index(p, dir); i >= 0 && base != "" && !strings.HasPrefix(base, ".") {
			return true
		}
	}
	return false
}

// IsJailConf reports whether p is a jail.conf(5) file that rc.d/jail reads:
// /etc/jail.conf, /etc/jail.NAME.conf or /etc/jail.conf.d/NAME.conf.
func IsJailConf(p string) bool {
	p = path.Clean(p)
	if p == JailConf {
		return true
	}
	if strings.HasPrefix(p, "/etc/jail.conf.d/") && strings.HasSuffix(p, ".conf") && path.Dir(p) == "/etc/jail.conf.d" {
		return true
	}
	return path.Dir(p) == "/etc" && strings.HasPrefix(path.Base(p), "jail.") && strings.HasSuffix(p, ".conf")
}

// JailConfFor lists, in rc.d/jail's lookup order, the files that may
// define jail name: /etc/jail.NAME.conf, /etc/jail.conf.d/NAME.conf,
// /etc/jail.conf. rc.d/jail's parse_options (libexec/rc/rc.d/jail, 14)
// uses the first that exists; the current script (15) uses /etc/jail.conf
// instead when /etc/jail.conf itself .includes /etc/jail.conf.d/. Either
// way the jail starts with the same parameters as long as each
// /etc/jail.conf.d file is self-contained.
func JailConfFor(name string) []string {
	return []string{"/etc/jail." + name + ".conf", "/etc/jail.conf.d/" + name + ".conf", JailConf}
}

// FileError is one problem in a file, at a line when known (0 = whole
// file). Drivers return these (joined) from Precheck so the engine and the
// operator see the host path, never the staging path.
type FileError = policy.FileError

// IsRCConf reports whether p is an rc.conf-style file (assignments only:
// rc.conf, rc.conf.local, rc.conf.d snippets), as opposed to an rc.d
// script. Both are rc files; only these are checked as rc.conf.
func IsRCConf(p string) bool {
	return IsRCFile(p) && !strings.Contains(path.Clean(p), "/etc/rc.d/")
}

// FirstFile returns the file named by the first FileError among errs, or
// "" when none names one.
func FirstFile(errs []error) string {
	for _, e := range errs {
		var fe *FileError
		if errors.As(e, &fe) {
			return fe.File
		}
	}
	return ""
}
