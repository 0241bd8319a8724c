// Package policy decides what a bundle may touch and checks configuration
// files offline: which target paths are allowed, and (in subpackages) the
// pf.conf, jail.conf and rc.conf linters.
package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultRoots are the trees a bundle may write to. A "*" segment matches
// exactly one path segment (a jail name). Use DefaultPaths; this slice is
// never handed out.
var defaultRoots = []string{
	"/etc",
	"/usr/local/etc",
	"/jails/*/etc",
	"/jails/*/usr/local/etc",
}

// DefaultRoots returns a copy of the default roots.
func DefaultRoots() []string { return slices.Clone(defaultRoots) }

// defaultDeny are the files inside the roots that a signed bundle still
// may not write: accounts and their databases, what init runs as shell
// scripts, host keys, privilege escalation, the loader. Each is a
// path.Match pattern ("*" within one segment) for the target or a
// directory above it, up to the root it lies in; a trailing "/" only says
// that a tree is meant. Under /jails/NAME the same patterns apply to the
// path inside the jail. Matching ignores case, so a case-insensitive file
// system (ZFS casesensitivity=insensitive) cannot be used to write
// /etc/Master.passwd. Only a root of the agent's own config (policy.roots)
// lifts them, and only below it: a root /usr/local/etc/rc.d allows rc
// scripts there, a root /boot/loader.conf.d allows loader snippets but
// not /boot/loader.conf.
var defaultDeny = []string{
	"/etc/master.passwd", "/etc/passwd", "/etc/group", "/etc/spwd.db", "/etc/pwd.db",
	"/etc/login.conf", "/etc/login.conf.db", "/etc/login.access", "/etc/pam.d/",
	"/etc/rc", "/etc/rc.d/", "/etc/rc.subr", "/etc/rc.shutdown", "/etc/rc.initdiskless",
	"/etc/rc.resume", "/etc/rc.suspend", "/etc/defaults/", "/etc/periodic/",
	"/etc/ssh/*key*", "/etc/sudoers*", "/usr/local/etc/sudoers*", "/usr/local/etc/doas.conf",
	"/usr/local/etc/rc.d/", "/usr/local/etc/periodic/", "/etc/libmap.conf", "/etc/ld.so.conf",
	"/etc/ttys", "/etc/fstab", "/boot/",
}

// DefaultDeny returns a copy of the deny-list that applies inside the roots.
func DefaultDeny() []string { return slices.Clone(defaultDeny) }

// Paths is a path policy: the roots under which targets are allowed, with
// the deny-list inside them.
type Paths struct {
	Roots []string
	// Any drops the roots and the deny-list, keeping only the form checks
	// (absolute, clean, printable). For tools that install nothing and
	// cannot know the host agent's roots (bundler publish, reading a
	// published serial): the agent applies its own policy.
	Any bool
}

// CheckRoot reports whether root may be an extra root of an agent's
// config (policy.roots, a topology's agent_roots): a clean absolute
// directory below /, without pattern characters (only the default roots
// match jail names).
func CheckRoot(root string) error {
	if !strings.HasPrefix(root, "/") || path.Clean(root) != root || root == "/" || strings.ContainsAny(root, "*?[\\") {
		return fmt.Errorf("root %q: want a clean absolute directory below /, no wildcards", root)
	}
	return nil
}

// WithRoots is the default policy plus the extra roots (each passing
// CheckRoot), as an agent configured with policy.roots judges.
func WithRoots(extra []string) (Paths, error) {
	p := DefaultPaths()
	for _, r := range extra {
		if err := CheckRoot(r); err != nil {
			return Paths{}, err
		}
		if !slices.Contains(p.Roots, r) {
			p.Roots = append(p.Roots, r)
		}
	}
	return p, nil
}

// DefaultPaths is the policy used when none is configured. Each call
// returns fresh slices.
func DefaultPaths() Paths { return Paths{Roots: DefaultRoots()} }

// Check reports whether target may be written. The path must be absolute,
// clean, printable, strictly below one of the roots and not on the
// deny-list between that root and itself.
func (p Paths) Check(target string) error {
	root, err := p.root(target)
	if err != nil || p.Any {
		return err
	}
	if pat := denied(target, root); pat != "" {
		return fmt.Errorf("target path %q: denied by %q (an agent root below it, policy.roots, can allow it)", target, pat)
	}
	return nil
}

// CheckRoots is Check without the deny-list: for paths a bundle only names
// (secrets it relies on) but never writes.
func (p Paths) CheckRoots(target string) error {
	_, err := p.root(target)
	return err
}

// root returns the most specific root target lies strictly below, as a
// path with the jail name filled in.
func (p Paths) root(target string) (string, error) {
	if !printable(target) {
		return "", fmt.Errorf("target path %q: control or non-printing characters", target)
	}
	if !path.IsAbs(target) {
		return "", fmt.Errorf("target path %q: not absolute", target)
	}
	if !cleanAbs(target) && path.Clean(target) != target {
		return "", fmt.Errorf("target path %q: not clean (want %q)", target, path.Clean(target))
	}
	if p.Any {
		return "/", nil
	}
	roots := p.Roots
	if len(roots) == 0 {
		roots = defaultRoots
	}
	best, end := -1, 0
	for _, root := range roots {
		if n, e, ok := below(target, root); ok && n > best {
			best, end = n, e
		}
	}
	if best < 0 {
		return "", fmt.Errorf("target path %q: outside the allowed roots %s", target, strings.Join(roots, ", "))
	}
	return target[:end], nil
}

// below reports whether the clean absolute target lies strictly below
// root, segment by segment ("*" matches one name, not "." or ".."), with
// the number of root segments and where the matched prefix of target
// ends. It runs for every root and every file of every bundle built or
// verified: the literal parts of root are compared whole, in place, and
// only a "*" segment looks for the end of target's segment.
func below(target, root string) (n, end int, ok bool) {
	r, t := strings.TrimPrefix(root, "/"), target[1:]
	for {
		// r and t each begin a segment, the n-th.
		star := strings.IndexByte(r, '*')
		if star < 0 {
			// No pattern segment left: t holds r's segments and more
			// exactly when it begins with r and a "/".
			if len(t) <= len(r) || t[len(r)] != '/' || t[:len(r)] != r {
				return 0, 0, false
			}
			return n + strings.Count(r, "/") + 1, len(target) - len(t) + len(r), true
		}
		// Up to the "*", root is literal: most targets part there.
		if !strings.HasPrefix(t, r[:star]) {
			return 0, 0, false
		}
		if star > 0 && r[star-1] != '/' || star+1 < len(r) && r[star+1] != '/' {
			return walkBelow(target, r, t, n) // a "*" within a name
		}
		n += strings.Count(r[:star], "/")
		r, t = r[star:], t[star:]
		i := strings.IndexByte(t, '/')
		if i < 0 {
			return 0, 0, false // target ends at or above root
		}
		if ts := t[:i]; ts == "" || ts == "." || ts == ".." {
			return 0, 0, false
		}
		n++
		if len(r) == 1 {
			return n, len(target) - len(t) + i, true
		}
		r, t = r[2:], t[i+1:]
	}
}

// walkBelow is below from the n-th segment on, r and t beginning it,
// one segment at a time: for a root whose "*" is part of a name, which
// matches that name only.
func walkBelow(target, r, t string, n int) (int, int, bool) {
	for {
		rs, rrest, rmore := strings.Cut(r, "/")
		ts, trest, tmore := strings.Cut(t, "/")
		if rs == "*" {
			if ts == "" || ts == "." || ts == ".." {
				return 0, 0, false
			}
		} else if rs != ts {
			return 0, 0, false
		}
		n++
		if !tmore {
			return 0, 0, false // target ends at or above root
		}
		if !rmore {
			return n, len(target) - len(trest) - 1, true
		}
		r, t = rrest, trest
	}
}

// denied returns the deny pattern that target, or a directory between it
// and root, matches, or "" (the first such pattern of defaultDeny).
func denied(target, root string) string {
	cands := make([]string, 0, 16) // on the stack for paths of usual depth
	for d := strings.ToLower(target); len(d) > len(root); d = dirAbs(d) {
		cands = append(cands, d)
		// Inside a jail the host patterns apply to the jail's own tree.
		if rest, ok := strings.CutPrefix(d, "/jails/"); ok {
			if i := strings.IndexByte(rest, '/'); i > 0 {
				cands = append(cands, rest[i:])
			}
		}
	}
	best := -1
	for _, c := range cands {
		if len(c) > denyExactMax {
			continue
		}
		if i, ok := denyExact[c]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	// Every candidate is a prefix of the first (the target) or, in a
	// jail, of the second (its path in the jail): a pattern whose literal
	// prefix begins neither matches no candidate.
	heads := cands[:min(len(cands), 2)]
	for _, g := range denyGlobs {
		if best >= 0 && g.i > best {
			break
		}
		if !slices.ContainsFunc(heads, func(h string) bool { return strings.HasPrefix(h, g.lit) }) {
			continue
		}
		if slices.ContainsFunc(cands, func(c string) bool {
			// A match starts with the pattern's literal prefix: most
			// candidates are ruled out without path.Match.
			ok := strings.HasPrefix(c, g.lit)
			if ok {
				ok, _ = path.Match(g.pat, c)
			}
			return ok
		}) {
			best = g.i
			break
		}
	}
	if best < 0 {
		return ""
	}
	return defaultDeny[best]
}

// printable reports whether s is valid UTF-8 without control or
// non-printing characters. Target paths are nearly always ASCII: those are
// judged byte by byte, anything else rune by rune.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) < 0
		}
		if c < ' ' || c == 0x7f { // unicode.IsPrint's ASCII: ' ' to '~'
			return false
		}
	}
	return true
}

// cleanAbs reports whether path.Clean leaves the absolute path s as it
// is, without building the clean path: no empty, "." or ".." segment and
// no trailing "/" (but "/" itself).
func cleanAbs(s string) bool {
	if s == "/" {
		return true
	}
	seg := 0 // the "/" before the current segment
	for i := 1; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			switch s[seg+1 : i] {
			case "", ".", "..":
				return false
			}
			seg = i
		}
	}
	return true
}

// dirAbs is path.Dir of a clean absolute path, which is already clean.
func dirAbs(d string) string {
	if i := strings.LastIndexByte(d, '/'); i > 0 {
		return d[:i]
	}
	return "/"
}

// denyExact and denyGlobs are defaultDeny in the form denied matches,
// built once: lower case without the trailing "/", the patterns without
// a wildcard (most of them) looked up by name instead of path.Match, each
// with its index in defaultDeny so the first listed pattern still wins.
// denyExactMax is the longest name of denyExact: no longer candidate is
// looked up.
var denyExact, denyGlobs, denyExactMax = func() (map[string]int, []denyGlob, int) {
	exact := map[string]int{}
	var globs []denyGlob
	longest := 0
	for i, pat := range defaultDeny {
		lp := strings.TrimSuffix(strings.ToLower(pat), "/")
		if m := strings.IndexAny(lp, `*?[\`); m >= 0 {
			globs = append(globs, denyGlob{pat: lp, lit: lp[:m], i: i})
		} else if _, dup := exact[lp]; !dup {
			exact[lp] = i
			longest = max(longest, len(lp))
		}
	}
	return exact, globs, longest
}()

type denyGlob struct {
	pat, lit string // the pattern and its part before the first wildcard
	i        int
}

// ExecAllowed reports whether a file at target activated by a unit of
// kind may carry an executable bit: only an rc.d script restarted by its
// service (which the deny-list refuses unless an agent root allows it).
// Config files are read, never run.
func ExecAllowed(target, unitKind string) bool {
	return (unitKind == "service" || unitKind == "jail-service") && path.Base(path.Dir(target)) == "rc.d"
}
