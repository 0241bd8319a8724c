package sim

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/rigger-bsd/rigger/policy/rcconf"
)

// rcVars is an rc.conf as /bin/sh would see it after sourcing, for the few
// forms the sim evaluates: $var and ${var} references and the
// `cat FILE` / $(cat FILE) substitutions real setups use to keep
// per-host values in files (uirig: `/bin/cat /etc/ip_ipg_b`). FILE is read
// inside root (the jail's root, or the sandbox for the host).
type rcVars struct {
	file string // host path, for messages
	root string
	raw  rcconf.Vars
}

var (
	catSubst = regexp.MustCompile("`\\s*(?:/bin/)?cat\\s+([^`\\s]+)\\s*`|\\$\\(\\s*(?:/bin/)?cat\\s+([^)\\s]+)\\s*\\)")
	anySubst = regexp.MustCompile("`|\\$\\(")
	varRef   = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
)

// get returns the evaluated value of name ("" when unset, as in sh).
func (v *rcVars) get(name string) (string, error) { return v.eval(v.raw[name], 0) }

func (v *rcVars) eval(s string, depth int) (string, error) {
	if depth > 8 {
		return "", fmt.Errorf("%s: variables nest too deep", v.file)
	}
	var ferr error
	s = catSubst.ReplaceAllStringFunc(s, func(m string) string {
		sub := catSubst.FindStringSubmatch(m)
		p := sub[1] + sub[2]
		b, err := readIn(v.root, p)
		if err != nil {
			ferr = fmt.Errorf("%s: %s: %w", v.file, m, err)
			return ""
		}
		return strings.TrimRight(string(b), "\n")
	})
	if ferr != nil {
		return "", ferr
	}
	if loc := anySubst.FindStringIndex(s); loc != nil {
		return "", fmt.Errorf("%s: unsupported command substitution in %q (the sim evaluates only `cat FILE`)", v.file, s)
	}
	s = varRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		val, err := v.eval(v.raw[sub[1]+sub[2]], depth+1)
		if err != nil {
			ferr = err
		}
		return val
	})
	return s, ferr
}

// yes is rc.subr's checkyesno.
func (v *rcVars) yes(name string) bool {
	s, err := v.get(name)
	if err != nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// readIn reads p (absolute inside root) without letting it, or a symlink
// planted in a jail, lead outside root.
func readIn(root, p string) ([]byte, error) {
	f, err := os.OpenInRoot(root, strings.TrimPrefix(path.Clean("/"+p), "/"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// ifaceAddrs returns the addresses an rc.conf configures, from
// ifconfig_IF, ifconfig_IF_aliasN and ifconfig_IF_ipv6: "inet A/N",
// "inet6 A prefixlen N", or a bare "A/N" as uirig writes. If only is
// non-nil, interfaces outside it are ignored (a vnet jail configures only
// the interfaces it was given).
func (v *rcVars) ifaceAddrs(only map[string]bool) ([]netip.Addr, error) {
	var keys []string
	for k := range v.raw {
		if strings.HasPrefix(k, "ifconfig_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []netip.Addr
	for _, k := range keys {
		ifn := strings.TrimPrefix(k, "ifconfig_")
		if strings.HasSuffix(ifn, "_name") || strings.HasSuffix(ifn, "_descr") || strings.HasSuffix(ifn, "_aliases") {
			continue
		}
		ifn = strings.TrimSuffix(ifn, "_ipv6")
		if i := strings.LastIndex(ifn, "_alias"); i > 0 && isDigits(ifn[i+len("_alias"):]) {
			ifn = ifn[:i]
		}
		if only != nil && !only[ifn] && ifn != "lo0" {
			continue
		}
		val, err := v.get(k)
		if err != nil {
			return nil, err
		}
		f := strings.Fields(val)
		for i, w := range f {
			cand := ""
			if (w == "inet" || w == "inet6") && i+1 < len(f) {
				cand = f[i+1]
			} else if i == 0 {
				cand = w
			}
			if cand == "" {
				continue
			}
			cand, _, _ = strings.Cut(cand, "/")
			if a, err := netip.ParseAddr(cand); err == nil {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
