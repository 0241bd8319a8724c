package policy

import (
	"path"
	"slices"
	"strings"
	"testing"
)

func TestPathsCheck(t *testing.T) {
	p := DefaultPaths()
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/etc/rc.conf", true},
		{"/etc/rc.conf.d/sshd", true},
		{"/etc/pf.conf", true},
		{"/etc/cron.d/ratelimit", true},
		{"/etc/ssh/sshd_config", true},
		{"/usr/local/etc/nginx/nginx.conf", true},
		{"/jails/pg_j/etc/rc.conf", true},
		{"/jails/nginx_j/usr/local/etc/nginx/nginx.conf", true},
		{"/etc", false},
		{"/jails/pg_j/etc", false},
		{"/jails/pg_j/root/.ssh/authorized_keys", false},
		{"/root/.ssh/authorized_keys", false},
		{"/etc/../root/x", false},
		{"etc/rc.conf", false},
		{"/jails/../etc/x", false},
		{"/jails//etc/x", false},
		{"/usr/local/bin/evil", false},
	} {
		err := p.Check(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

// TestDenyInsideRoots (issue 14, item 6): files inside the allowed roots
// that a signed bundle still may not write, in any letter case and inside
// jails too; only the agent's own Lift allows one, and only that one.
func TestDenyInsideRoots(t *testing.T) {
	p := DefaultPaths()
	for _, target := range []string{
		"/etc/master.passwd", "/etc/passwd", "/etc/group", "/etc/spwd.db", "/etc/pwd.db",
		"/etc/rc.d/evil", "/etc/rc", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key.pub",
		"/etc/sudoers", "/etc/sudoers.d/x", "/usr/local/etc/sudoers", "/usr/local/etc/sudoers.d/ops",
		"/usr/local/etc/doas.conf", "/usr/local/etc/rc.d/evil", "/etc/Master.passwd", "/ETC/rc.d/x",
		"/etc/periodic/daily/999.evil", "/jails/pg_j/etc/master.passwd", "/jails/pg_j/etc/rc.d/x",
		"/jails/pg_j/usr/local/etc/sudoers",
	} {
		err := p.Check(target)
		if target == "/ETC/rc.d/x" {
			// Outside the roots (case matters for roots), refused either way.
			if err == nil {
				t.Errorf("Check(%q) passed", target)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "denied by") {
			t.Errorf("Check(%q) = %v, want denied", target, err)
		}
	}
	for _, target := range []string{"/etc/rc.conf", "/etc/rc.conf.local", "/etc/groups.conf", "/etc/passwdqc.conf"} {
		if err := p.Check(target); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", target, err)
		}
	}
	// Another root of the agent lifts the deny-list below it, and only there.
	own := Paths{Roots: append(DefaultRoots(), "/usr/local/etc/rc.d", "/boot/loader.conf.d")}
	for _, target := range []string{"/usr/local/etc/rc.d/pflog2txt", "/boot/loader.conf.d/rigger.conf"} {
		if err := own.Check(target); err != nil {
			t.Errorf("Check(%q) with its root configured: %v", target, err)
		}
	}
	for _, target := range []string{"/etc/master.passwd", "/boot/loader.conf", "/etc/rc.d/x"} {
		if err := own.Check(target); err == nil {
			t.Errorf("Check(%q) passed: a root elsewhere lifted it", target)
		}
	}
}

func TestControlCharacters(t *testing.T) {
	p := DefaultPaths()
	for _, target := range []string{"/etc/x\nstate: idle", "/etc/x\x1b[2J", "/etc/\x7f", "/etc/\xff", "/etc/a\u200bb", "/etc/x\tz"} {
		if err := p.Check(target); err == nil {
			t.Errorf("Check(%q) passed", target)
		}
	}
}

func TestDefaultsAreCopies(t *testing.T) {
	p := DefaultPaths()
	p.Roots[0] = "/"
	q := DefaultRoots()
	q[1] = "/"
	d := DefaultDeny()
	d[0] = "/nothing"
	if err := DefaultPaths().Check("/root/.ssh/authorized_keys"); err == nil {
		t.Fatal("changing a returned slice widened the default policy")
	}
	if err := DefaultPaths().Check("/etc/master.passwd"); err == nil {
		t.Fatal("changing DefaultDeny's result lifted the deny-list")
	}
}

// TestPathsAny: a tool that installs nothing (publish) drops roots and
// deny-list, never the form checks.
func TestPathsAny(t *testing.T) {
	any := Paths{Any: true}
	for _, ok := range []string{"/usr/local/etc/rc.d/pflog2txt", "/boot/loader.conf.d/geli.conf"} {
		if err := any.Check(ok); err != nil {
			t.Errorf("Any.Check(%q) = %v", ok, err)
		}
		if err := DefaultPaths().Check(ok); err == nil {
			t.Errorf("DefaultPaths().Check(%q) = nil, want denied", ok)
		}
	}
	for _, bad := range []string{"etc/rc.conf", "/etc/../etc/rc.conf", "/etc/rc.conf\n"} {
		if err := any.Check(bad); err == nil {
			t.Errorf("Any.Check(%q) = nil, want a form error", bad)
		}
	}
}

// An extra root is what an agent's policy.roots may hold: no patterns
// (only the default roots match jail names), clean, absolute, below /.
func TestWithRoots(t *testing.T) {
	for _, bad := range []string{"", "/", "boot", "/boot/", "/boot/../etc", "/jails/*/usr/local/etc/rc.d", "/a?", "/a[b]", `/a\b`} {
		if _, err := WithRoots([]string{bad}); err == nil {
			t.Errorf("WithRoots(%q): no error", bad)
		}
	}
	p, err := WithRoots([]string{"/boot/loader.conf.d", "/etc", "/jails/node_j/usr/local/etc/rc.d"})
	if err != nil {
		t.Fatal(err)
	}
	if want := append(DefaultRoots(), "/boot/loader.conf.d", "/jails/node_j/usr/local/etc/rc.d"); !slices.Equal(p.Roots, want) {
		t.Errorf("roots %q, want %q", p.Roots, want)
	}
	// Below its own root an rc script is allowed; in another jail not.
	if err := p.Check("/jails/node_j/usr/local/etc/rc.d/node"); err != nil {
		t.Errorf("node_j rc.d script: %v", err)
	}
	if err := p.Check("/jails/pg_j/usr/local/etc/rc.d/node"); err == nil {
		t.Error("pg_j rc.d script allowed by node_j's root")
	}
}

// splitRoot is root's matching as it was written first (split both paths,
// compare segment lists): the model the in-place walk must agree with.
func splitRoot(target string, roots []string) (string, bool) {
	segs := strings.Split(target[1:], "/")
	best := -1
	for _, root := range roots {
		rs := strings.Split(strings.TrimPrefix(root, "/"), "/")
		if len(segs) <= len(rs) || len(rs) <= best {
			continue
		}
		ok := true
		for i, r := range rs {
			if r == "*" {
				ok = ok && segs[i] != "" && segs[i] != "." && segs[i] != ".."
				continue
			}
			ok = ok && r == segs[i]
		}
		if ok {
			best = len(rs)
		}
	}
	if best < 0 {
		return "", false
	}
	return "/" + strings.Join(segs[:best], "/"), true
}

// TestRootMatchesSplitModel: every clean absolute path built from a set of
// names, under default, extra and odd roots, gets the root the split model
// gives.
func TestRootMatchesSplitModel(t *testing.T) {
	rootSets := [][]string{
		nil,
		{"/etc", "/usr/local/etc", "/jails/*/etc", "/jails/*/usr/local/etc", "/usr/local/etc/rc.d", "/jails/web/etc"},
		{"/", "", "etc", "/etc/", "/*", "/jails/*"},
	}
	names := []string{"etc", "usr", "local", "jails", "web", "rc.d", "x", "..."}
	var targets []string
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		targets = append(targets, prefix)
		if depth == 0 {
			return
		}
		for _, n := range names {
			walk(path.Join(prefix, n), depth-1)
		}
	}
	walk("/", 5)
	for _, roots := range rootSets {
		p := Paths{Roots: roots}
		model := roots
		if len(model) == 0 {
			model = defaultRoots
		}
		for _, target := range targets {
			got, err := p.root(target)
			want, ok := splitRoot(target, model)
			if (err == nil) != ok || got != want {
				t.Fatalf("roots %q, target %s: root %q (err %v), the split model says %q (%v)", roots, target, got, err, want, ok)
			}
		}
	}
}
