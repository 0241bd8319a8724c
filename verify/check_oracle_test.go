package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
)

// cloneManifest copies what the oracle cases edit.
func cloneManifest(m *Manifest) *Manifest {
	c := *m
	c.Files = slices.Clone(m.Files)
	c.Health = slices.Clone(m.Health)
	c.Secrets = slices.Clone(m.Secrets)
	if m.HostDesc != nil {
		d := *m.HostDesc
		d.Interfaces = slices.Clone(d.Interfaces)
		c.HostDesc = &d
	}
	if m.Gate != nil {
		g := *m.Gate
		g.Hosts = slices.Clone(g.Hosts)
		c.Gate = &g
	}
	return &c
}

// sameVerdict: both pass, or both reject with the same reason and words.
func sameVerdict(got, want error) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	var g, w *RejectError
	if errors.As(got, &g) != errors.As(want, &w) {
		return false
	}
	return got.Error() == want.Error() && (g == nil || g.Reason == w.Reason)
}

func agreesWithOldManifest(t *testing.T, m *Manifest, paths policy.Paths) error {
	t.Helper()
	got, want := CheckManifest(m, paths), oldCheckManifest(m, paths)
	if !sameVerdict(got, want) {
		t.Fatalf("CheckManifest = %v, the old check says %v", got, want)
	}
	if got, want := checkHostDesc(m.HostDesc), oldCheckHostDesc(m.HostDesc); !sameVerdict(got, want) {
		t.Fatalf("checkHostDesc = %v, the old check says %v", got, want)
	}
	return got
}

// manyNames are n names, the last repeating the one at dup (dup < 0: none).
func manyNames(n, dup int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("n%02d", i))
	}
	if dup >= 0 {
		names[n-1] = names[dup]
	}
	return names
}

// TestCheckManifestAgreesWithOld: the uirig manifest and edits of it that
// break each check the fast paths touch, in sorted and unsorted order,
// with few and many names, under the host's, the default and Any paths.
func TestCheckManifestAgreesWithOld(t *testing.T) {
	base, own := uirigManifest(t)
	_, pub := newHostKey(t)
	file := func(p string) File { f := base.Files[1]; f.Path = p; return f }
	insertSorted := func(m *Manifest, fs ...File) {
		m.Files = append(m.Files, fs...)
		slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	}
	withHealth := func(names []string) func(*Manifest) {
		return func(m *Manifest) {
			m.Health = nil
			for _, n := range names {
				m.Health = append(m.Health, Check{Kind: CheckPF, Name: n})
			}
		}
	}
	withIfaces := func(names []string) func(*Manifest) {
		return func(m *Manifest) {
			m.HostDesc.Interfaces = nil
			for _, n := range names {
				m.HostDesc.Interfaces = append(m.HostDesc.Interfaces, hostdesc.Interface{Name: n, Kind: hostdesc.Physical})
			}
		}
	}
	withGate := func(names []string) func(*Manifest) {
		return func(m *Manifest) {
			m.Gate = &Gate{}
			for _, n := range names {
				m.Gate.Hosts = append(m.Gate.Hosts, GateHost{Host: n, Key: pub, Serial: 1})
			}
		}
	}
	shaCases := []string{
		"", "0", strings.Repeat("a", 63), strings.Repeat("a", 65), strings.Repeat("A", 64),
		strings.Repeat("0", 63) + "F", strings.Repeat("0", 63) + "g", strings.Repeat("0", 63) + "/",
		strings.Repeat("0", 63) + ":", strings.Repeat("0", 63) + "`", "\xff" + strings.Repeat("0", 63),
		strings.Repeat("0", 62) + "é", strings.Repeat("f", 64), strings.Repeat("9", 64),
	}
	cases := map[string]func(*Manifest){
		"as built":         func(*Manifest) {},
		"reversed":         func(m *Manifest) { slices.Reverse(m.Files) },
		"two swapped":      func(m *Manifest) { m.Files[3], m.Files[4] = m.Files[4], m.Files[3] },
		"upper case":       func(m *Manifest) { m.Files[6].Path = "/etc/PF.conf" },
		"case collision":   func(m *Manifest) { insertSorted(m, file("/etc/PF.conf")) },
		"case collision 2": func(m *Manifest) { m.Files = append(m.Files, file("/ETC/pf.conf")) },
		"duplicate":        func(m *Manifest) { insertSorted(m, file("/etc/pf.conf")) },
		"duplicate apart":  func(m *Manifest) { m.Files = append(m.Files, file("/etc/jail.conf")) },
		"below a file":     func(m *Manifest) { insertSorted(m, file("/etc/rc.conf/evil")) },
		"below, between":   func(m *Manifest) { insertSorted(m, file("/etc/rc.conf/evil"), file("/etc/rc.conf-x")) },
		"deep below":       func(m *Manifest) { insertSorted(m, file("/etc/pf/blocklist.table/a/b/c")) },
		"below, unsorted":  func(m *Manifest) { m.Files = append(m.Files, file("/etc/rc.conf/evil")) },
		"below, upper":     func(m *Manifest) { insertSorted(m, file("/etc/RC.conf/evil")) },
		"below, upper 2":   func(m *Manifest) { insertSorted(m, file("/etc/rc.conf/EVIL")) },
		"below, both":      func(m *Manifest) { insertSorted(m, file("/etc/x"), file("/etc/x/y"), file("/etc/x/y/z")) },
		"below a root":     func(m *Manifest) { insertSorted(m, file("/etc"), file("/a"), file("/a/b")) },
		"case A, a":        func(m *Manifest) { insertSorted(m, file("/etc/A"), file("/etc/a")) },
		"case Z, z":        func(m *Manifest) { insertSorted(m, file("/etc/Z"), file("/etc/z")) },
		"non-ASCII":        func(m *Manifest) { insertSorted(m, file("/etc/é.conf")) },
		"non-ASCII below":  func(m *Manifest) { insertSorted(m, file("/etc/é"), file("/etc/é/x")) },
		"non-ASCII case":   func(m *Manifest) { insertSorted(m, file("/etc/é"), file("/etc/É")) },
		"kelvin":           func(m *Manifest) { insertSorted(m, file("/etc/k"), file("/etc/\u212a")) },
		"invalid UTF-8":    func(m *Manifest) { insertSorted(m, file("/etc/\xff")) },
		"control byte":     func(m *Manifest) { insertSorted(m, file("/etc/a\x01")) },
		"dot dot":          func(m *Manifest) { insertSorted(m, file("/etc/../etc/x")) },
		"double slash":     func(m *Manifest) { insertSorted(m, file("/etc//x")) },
		"trailing slash":   func(m *Manifest) { insertSorted(m, file("/etc/x/")) },
		"empty path":       func(m *Manifest) { insertSorted(m, file("")) },
		"denied":           func(m *Manifest) { insertSorted(m, file("/etc/master.passwd")) },
		"outside":          func(m *Manifest) { insertSorted(m, file("/root/x")) },
		"no files":         func(m *Manifest) { m.Files = nil },
		"mode and dup":     func(m *Manifest) { m.Files[2].Mode = 0o4644; insertSorted(m, file("/etc/jail.conf")) },
		"exec":             func(m *Manifest) { m.Files[0].Mode = 0o755 },
		"health dup":       withHealth([]string{"a", "b", "a"}),
		"health empty":     withHealth([]string{"a", ""}),
		"health 32":        withHealth(manyNames(32, 0)),
		"health 33 dup":    withHealth(manyNames(33, 0)),
		"health 33 dup 32": withHealth(manyNames(34, 32)),
		"health 40":        withHealth(manyNames(40, -1)),
		"health 40 dup":    withHealth(manyNames(40, 35)),
		"health 34 dup 0":  withHealth(manyNames(34, 0)),
		"health 34 dup 31": withHealth(manyNames(34, 31)),
		"iface dup":        withIfaces([]string{"a", "b", "a"}),
		"iface 33 dup":     withIfaces(manyNames(33, 0)),
		"iface 40 dup":     withIfaces(manyNames(40, 38)),
		"iface 40":         withIfaces(manyNames(40, -1)),
		"iface bad dup":    withIfaces([]string{"a", "a b", "a"}),
		"gate":             withGate([]string{"g1", "g2"}),
		"gate dup":         withGate([]string{"g1", "g2", "g1"}),
		"gate self":        withGate([]string{"g1", "h0000"}),
		"gate 40 dup":      withGate(manyNames(40, 33)),
		"gate 64":          withGate(manyNames(64, -1)),
		"gate 65":          withGate(manyNames(65, -1)),
		"secret outside":   func(m *Manifest) { m.Secrets = append(m.Secrets, "/root/key") },
		"secret denied":    func(m *Manifest) { m.Secrets = append(m.Secrets, "/etc/master.passwd") },
		"secret unclean":   func(m *Manifest) { m.Secrets = append(m.Secrets, "/etc/./k") },
	}
	for i, sha := range shaCases {
		cases[fmt.Sprintf("archive sha %d", i)] = func(m *Manifest) { m.Archive.SHA256 = sha }
		cases[fmt.Sprintf("file sha %d", i)] = func(m *Manifest) { m.Files[5].SHA256 = sha }
	}
	rejected := 0
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			m := cloneManifest(base)
			edit(m)
			for _, paths := range []policy.Paths{own, policy.DefaultPaths(), {Any: true}} {
				if agreesWithOldManifest(t, m, paths) != nil {
					rejected++
				}
			}
		})
	}
	// The cases reach the checks they are named for (most are refused
	// under some policy), not only the first check a manifest meets.
	if rejected < len(cases) {
		t.Errorf("only %d of %d verdicts are refusals", rejected, 3*len(cases))
	}
}

func TestIsSHA256AgreesWithOld(t *testing.T) {
	for c := range 256 {
		for _, at := range []int{0, 1, 31, 62, 63} {
			s := []byte(strings.Repeat("0a", 32))
			s[at] = byte(c)
			if got, want := isSHA256(string(s)), oldIsSHA256(string(s)); got != want {
				t.Fatalf("isSHA256(%q) = %v", s, got)
			}
		}
	}
	for n := range 130 {
		s := strings.Repeat("f", n)
		if got, want := isSHA256(s), oldIsSHA256(s); got != want {
			t.Fatalf("isSHA256 of %d f's = %v", n, got)
		}
	}
}

// FuzzCheckManifestAgreesWithOld: the uirig manifest with fuzzed file
// paths (one a line, fields from the uirig files), names (comma
// separated: health checks, interfaces, gating hosts) and digests,
// judged as the oracle judges it (run it with -fuzz; CI runs the seeds).
func FuzzCheckManifestAgreesWithOld(f *testing.F) {
	base, own := uirigManifest(f)
	_, pub := newHostKey(f)
	var paths []string
	for _, fl := range base.Files {
		paths = append(paths, fl.Path)
	}
	all := strings.Join(paths, "\n")
	f.Add(all, "a,b,c", base.Files[0].SHA256, uint8(0))
	f.Add(all+"\n/etc/rc.conf/x", "a,b,a", strings.ToUpper(base.Files[0].SHA256), uint8(3))
	f.Add(strings.Replace(all, "/etc/pf.conf", "/etc/PF.conf", 1), strings.Join(manyNames(40, 35), ","), "", uint8(4))
	f.Add("/etc/a\n/etc/A\n/etc/a/b", strings.Join(manyNames(33, 0), ","), base.Files[0].SHA256[1:], uint8(8))
	f.Add("/etc/é\n/etc/É/x\n/etc/\xff", "g1,h0000", "x", uint8(32))
	f.Add("/etc/x/\n/etc//y\n/etc/./z\n/etc/../w", "", "", uint8(16+32))
	f.Fuzz(func(t *testing.T, files, names, sha string, flags uint8) {
		m := cloneManifest(base)
		if files != "" {
			m.Files = m.Files[:0]
			for i, p := range strings.SplitN(files, "\n", 100) {
				fl := base.Files[i%len(base.Files)]
				fl.Path = p
				m.Files = append(m.Files, fl)
			}
		}
		if names != "" {
			ns := strings.SplitN(names, ",", 100)
			m.Health = m.Health[:0]
			m.HostDesc.Interfaces = m.HostDesc.Interfaces[:0]
			for _, n := range ns {
				m.Health = append(m.Health, Check{Kind: CheckPF, Name: n})
				m.HostDesc.Interfaces = append(m.HostDesc.Interfaces, hostdesc.Interface{Name: n, Kind: hostdesc.Physical})
			}
			if flags&32 != 0 {
				m.Gate = &Gate{}
				for _, n := range ns {
					m.Gate.Hosts = append(m.Gate.Hosts, GateHost{Host: n, Key: pub, Serial: 1})
				}
			}
		}
		if flags&1 != 0 {
			m.Archive.SHA256 = sha
		}
		if flags&2 != 0 && len(m.Files) > 0 {
			m.Files[len(m.Files)-1].SHA256 = sha
		}
		if flags&16 != 0 {
			m.Secrets = strings.Split(files, "\n")
		}
		paths := own
		switch {
		case flags&4 != 0:
			paths = policy.Paths{Any: true}
		case flags&8 != 0:
			paths = policy.DefaultPaths()
		}
		agreesWithOldManifest(t, m, paths)
		if got, want := isSHA256(sha), oldIsSHA256(sha); got != want {
			t.Fatalf("isSHA256(%q) = %v", sha, got)
		}
	})
}
