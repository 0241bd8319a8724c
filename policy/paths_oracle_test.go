package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The path checks as they were before their ASCII fast paths (printable,
// cleanAbs, below's literal prefixes, dirAbs): the oracle the faster ones
// must agree with, verdict and message, on every input.

func (p Paths) oldCheck(target string) error {
	root, err := p.oldRoot(target)
	if err != nil || p.Any {
		return err
	}
	if pat := oldDenied(target, root); pat != "" {
		return fmt.Errorf("target path %q: denied by %q (an agent root below it, policy.roots, can allow it)", target, pat)
	}
	return nil
}

func (p Paths) oldCheckRoots(target string) error {
	_, err := p.oldRoot(target)
	return err
}

func (p Paths) oldRoot(target string) (string, error) {
	if !utf8.ValidString(target) || strings.IndexFunc(target, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) >= 0 {
		return "", fmt.Errorf("target path %q: control or non-printing characters", target)
	}
	if !path.IsAbs(target) {
		return "", fmt.Errorf("target path %q: not absolute", target)
	}
	if path.Clean(target) != target {
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
		if n, e, ok := oldBelow(target, root); ok && n > best {
			best, end = n, e
		}
	}
	if best < 0 {
		return "", fmt.Errorf("target path %q: outside the allowed roots %s", target, strings.Join(roots, ", "))
	}
	return target[:end], nil
}

func oldBelow(target, root string) (n, end int, ok bool) {
	r, t := strings.TrimPrefix(root, "/"), target[1:]
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
			return 0, 0, false
		}
		if !rmore {
			return n, len(target) - len(trest) - 1, true
		}
		r, t = rrest, trest
	}
}

func oldDenied(target, root string) string {
	cands := make([]string, 0, 16)
	for d := strings.ToLower(target); len(d) > len(root); d = path.Dir(d) {
		cands = append(cands, d)
		if rest, ok := strings.CutPrefix(d, "/jails/"); ok {
			if i := strings.IndexByte(rest, '/'); i > 0 {
				cands = append(cands, rest[i:])
			}
		}
	}
	best := -1
	for _, c := range cands {
		if i, ok := denyExact[c]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	for _, g := range denyGlobs {
		if best >= 0 && g.i > best {
			break
		}
		if slices.ContainsFunc(cands, func(c string) bool {
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

// oraclePolicies are the policies each target is judged under: the
// default, a uirig host's (an agent root of its own), Any, and roots
// no agent config passes (CheckRoot refuses them) but Paths still takes.
func oraclePolicies(extra ...string) []Paths {
	own, err := WithRoots(uirigRoots)
	if err != nil {
		panic(err)
	}
	ps := []Paths{
		DefaultPaths(), own, {Any: true},
		{Roots: []string{"/", "", "etc", "/etc/", "/*", "/jails/*", "/a*b/c", "/a*/c", "/*x/etc", "/jails/*/etc*", "/jails/*/", "*/etc", "/jails/*/*/x", "//etc", "/etc//x", "/etc/./x"}},
	}
	for _, r := range extra {
		ps = append(ps, Paths{Roots: append(DefaultRoots(), r)}, Paths{Roots: []string{r}})
	}
	return ps
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}

// agreesWithOld fails t unless Check, CheckRoots, root, below, printable
// and cleanAbs judge target as the oracle does under every policy.
func agreesWithOld(t *testing.T, target string, extraRoots ...string) {
	t.Helper()
	for _, p := range oraclePolicies(extraRoots...) {
		if got, want := p.Check(target), p.oldCheck(target); !sameErr(got, want) {
			t.Fatalf("roots %q any=%v: Check(%q) = %v, the old check says %v", p.Roots, p.Any, target, got, want)
		}
		if got, want := p.CheckRoots(target), p.oldCheckRoots(target); !sameErr(got, want) {
			t.Fatalf("roots %q any=%v: CheckRoots(%q) = %v, the old check says %v", p.Roots, p.Any, target, got, want)
		}
		got, err := p.root(target)
		want, werr := p.oldRoot(target)
		if got != want || !sameErr(err, werr) {
			t.Fatalf("roots %q any=%v: root(%q) = %q, %v, the old root says %q, %v", p.Roots, p.Any, target, got, err, want, werr)
		}
	}
	wantPrint := utf8.ValidString(target) && strings.IndexFunc(target, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) < 0
	if printable(target) != wantPrint {
		t.Fatalf("printable(%q) = %v", target, !wantPrint)
	}
	if strings.HasPrefix(target, "/") {
		if cleanAbs(target) != (path.Clean(target) == target) {
			t.Fatalf("cleanAbs(%q) = %v, path.Clean gives %q", target, cleanAbs(target), path.Clean(target))
		}
		if cleanAbs(target) && dirAbs(target) != path.Dir(target) {
			t.Fatalf("dirAbs(%q) = %q, path.Dir gives %q", target, dirAbs(target), path.Dir(target))
		}
		for _, p := range oraclePolicies(extraRoots...) {
			for _, root := range append(p.Roots, extraRoots...) {
				n, e, ok := below(target, root)
				wn, we, wok := oldBelow(target, root)
				if n != wn || e != we || ok != wok {
					t.Fatalf("below(%q, %q) = %d, %d, %v, the old walk says %d, %d, %v", target, root, n, e, ok, wn, we, wok)
				}
			}
		}
	}
}

// oracleTargets are the edge cases: every denied pattern as it stands,
// in upper case, below it, beside it and in a jail; non-ASCII, invalid
// UTF-8, control bytes, "." and "..", "//", a trailing "/", the empty path.
func oracleTargets() []string {
	ts := append([]string{
		"", "/", "//", "/.", "/..", ".", "..", "etc", "etc/rc.conf", "/etc", "/etc/", "/etc//rc.conf",
		"/etc/./rc.conf", "/etc/../etc/rc.conf", "/etc/rc.conf/", "/etc/rc.conf/.", "/etc/rc.conf/..",
		"/etc/.", "/etc/..", "/etc/...", "/etc/.x", "/etc/..x", "/etc/x.", "/etc/x..",
		"/etc/rc.conf", "/etc/RC.conf", "/ETC/rc.conf", "/etc/pf/x.table", "/usr/local/etc/nginx/nginx.conf",
		"/usr/local/etc", "/usr/local/etcx/a", "/usr/local/etc/", "/etcx/a", "/et", "/e",
		"/jails/pg_j/etc/rc.conf", "/jails/pg_j/etc", "/jails//etc/rc.conf", "/jails/./etc/x", "/jails/../etc/x",
		"/jails/.../etc/x", "/jails/pg_j/usr/local/etc/x", "/jails/pg_j/usr/local/etc/rc.d/x",
		"/jails/node_j/usr/local/etc/rc.d/node", "/jails/node_j/usr/local/etc/rc.d", "/jails/node_j/usr/local/etc/rc.d/a/b",
		"/jails/NODE_J/usr/local/etc/rc.d/node", "/jails/a/b/x", "/jails/a/b/x/y", "/a/b/c", "/a/xb/c/d", "/axb/c/d", "/ab/c/x", "/a*/c/x", "/a*b/c/x", "/*x/etc/y", "/ab/etc/y", "/jails/a/etc*/x", "/jails/a/etcx/x", "/jails/a/etc/x",
		"/etc/x\nstate: idle", "/etc/x\x1b[2J", "/etc/\x7f", "/etc/\x00", "/etc/\x1f", "/etc/ ", "/etc/~", "/etc/x\tz",
		"/etc/\xff", "/etc/\xc3", "/etc/\xc3\xa9", "/etc/é/x", "/etc/É", "/etc/a\u200bb", "/etc/\u00a0",
		"/etc/\ufffd", "/etc/\u0130", "/etc/\u212a", "/etc/MASTER.PASSWD", "/etc/master.passwd\u0130",
		"/etc/\xed\xa0\x80", "/etc/\xf4\x90\x80\x80", "\xff/etc", "/jails/\u00e9/etc/passwd", "/JAILS/x/etc/passwd",
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/SSH_HOST_KEY.pub", "/etc/ssh/sshd_config", "/etc/sudoers.d/x",
		"/jails/x/etc/ssh/host_key", "/jails/x/usr/local/etc/sudoers", "/boot/loader.conf", "/boot",
		"/boot/loader.conf.d/x.conf", "/etc/pam.d", "/etc/pam.d/sshd", "/etc/rc.d", "/etc/rc.dx", "/etc/rcx",
	}, uirigPaths...)
	for _, pat := range defaultDeny {
		p := strings.TrimSuffix(pat, "/")
		p = strings.ReplaceAll(p, "*", "key")
		for _, q := range []string{p, strings.ToUpper(p), p + "/x", p + "x", p + "/", p + "/..", strings.TrimSuffix(p, p[len(p)-1:])} {
			ts = append(ts, q, "/jails/web_j"+q, "/jails/node_j"+strings.ToUpper(q))
		}
	}
	return ts
}

func TestPathsAgreeWithOld(t *testing.T) {
	for _, target := range oracleTargets() {
		agreesWithOld(t, target, "/boot/loader.conf.d", "/etc/ssh", "/jails/web_j/etc/rc.d")
	}
}

// FuzzPathsAgreeWithOld: for any target and any extra root, the checks
// agree with the oracle (run it with -fuzz; CI runs the seeds).
func FuzzPathsAgreeWithOld(f *testing.F) {
	for i, target := range oracleTargets() {
		f.Add(target, []string{"/boot/loader.conf.d", "/jails/*/etc", "", "/etc/", "*"}[i%5])
	}
	f.Fuzz(func(t *testing.T, target, root string) {
		agreesWithOld(t, target, root)
	})
}
