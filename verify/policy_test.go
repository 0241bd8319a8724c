package verify

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/policy"
)

// TestPathPolicyAttacks (issue 14, item 6): signed bundles that the old
// path policy let through, each refused by Verify now.
func TestPathPolicyAttacks(t *testing.T) {
	ec, _ := testKeys(t)
	k := ec[0]
	for _, tc := range []struct {
		name   string
		bend   func(f *fixture)
		reason error
		want   string
	}{
		{"passwordless root", func(f *fixture) {
			f.m.Files[1].Path, f.m.Files[1].Mode = "/etc/master.passwd", 0o644
		}, ErrPathNotAllowed, "denied by"},
		{"rc.d script", func(f *fixture) {
			f.m.Files[1].Path, f.m.Files[1].Mode = "/etc/rc.d/evil", 0o755
		}, ErrPathNotAllowed, "denied by"},
		{"rc.d script in a jail", func(f *fixture) {
			f.m.Files[2].Path = "/jails/pg_j/etc/rc.d/evil"
		}, ErrPathNotAllowed, "denied by"},
		{"host key", func(f *fixture) { f.m.Files[1].Path = "/etc/ssh/ssh_host_ed25519_key" }, ErrPathNotAllowed, "denied by"},
		{"sudoers.d", func(f *fixture) { f.m.Files[1].Path = "/usr/local/etc/sudoers.d/ops" }, ErrPathNotAllowed, "denied by"},
		{"upper case beside lower case", func(f *fixture) {
			f.m.Files[1].Path = "/etc/PF.conf"
		}, ErrPathNotAllowed, "letter case"},
		{"newline forging a status line", func(f *fixture) {
			f.m.Files[1].Path = "/etc/rc.conf\nstate:       idle"
		}, ErrPathNotAllowed, "control"},
		{"executable config", func(f *fixture) { f.m.Files[1].Mode = 0o755 }, ErrPathNotAllowed, "executable"},
		{"secret probing a host path", func(f *fixture) { f.m.Secrets = []string{"/root/.ssh/id_ed25519"} }, ErrPathNotAllowed, "outside the allowed roots"},
		{"secret with a newline", func(f *fixture) { f.m.Secrets = []string{"/etc/x\ny"} }, ErrPathNotAllowed, "control"},
		{"thousands of empty files", func(f *fixture) {
			for i := range 1500 {
				f.m.Files = append(f.m.Files, File{Path: fmt.Sprintf("/etc/e/%04d", i), Mode: 0o644, Owner: "root", Group: "wheel", SHA256: hexSum(nil), Unit: "none"})
			}
		}, ErrTooLarge, "files over the limit 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.bend(f)
			_, err := Verify(f.sign(t, k), bytes.NewReader(f.archive), f.opts(k))
			if !errors.Is(err, tc.reason) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.reason, tc.want)
			}
		})
	}

	// The configured file count, and a deny-list entry the agent lifts.
	f := newFixture(t)
	o := f.opts(k)
	o.Limits = DefaultLimits()
	o.Limits.MaxFiles = 2
	if _, err := Verify(f.sign(t, k), bytes.NewReader(f.archive), o); !errors.Is(err, ErrTooLarge) {
		t.Errorf("3 files with max_files 2: %v", err)
	}
	f = newFixture(t)
	f.m.Files[1].Path, f.m.Files[1].Unit = "/etc/rc.d/rigger_local", "service:rigger_local"
	f.m.Files[1].Mode = 0o755
	f.entries[1].name, f.entries[1].mode = EntryName("/etc/rc.d/rigger_local"), 0o755
	f.setTar(t, makeTar(t, f.entries))
	o = f.opts(k)
	if _, err := Verify(f.sign(t, k), bytes.NewReader(f.archive), o); !errors.Is(err, ErrPathNotAllowed) {
		t.Errorf("rc.d script under the default policy: %v", err)
	}
	o.Paths = policy.Paths{Roots: append(policy.DefaultRoots(), "/etc/rc.d")}
	if _, err := Verify(f.sign(t, k), bytes.NewReader(f.archive), o); err != nil {
		t.Errorf("rc.d script with /etc/rc.d an agent root: %v", err)
	}
}

// TestFileUnderFile: a bundle cannot send a path as a file and as a
// directory of another entry (issue 14, item 7: it failed at staging and
// was retried every poll).
func TestFileUnderFile(t *testing.T) {
	ec, _ := testKeys(t)
	f := newFixture(t)
	f.m.Files = append(f.m.Files, File{Path: "/etc/rc.conf/evil", Mode: 0o644, Owner: "root", Group: "wheel", SHA256: hexSum(nil), Unit: "none"})
	_, err := Verify(f.sign(t, ec[0]), bytes.NewReader(f.archive), f.opts(ec[0]))
	if !errors.Is(err, ErrPathNotAllowed) || !strings.Contains(err.Error(), "sends as a file") {
		t.Fatalf("got %v", err)
	}
}
