package apply_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
)

// A jail's root user controls /jails/NAME. A symlink planted at a managed
// file, or at a directory on its path, must never lead a write to the
// host: the apply is refused at pre-check, or rolled back when the link
// appears during the install, and the host file stays untouched.
func TestPlantedSymlink(t *testing.T) {
	const hostData = "root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"
	for _, tc := range []struct {
		name    string
		at      string // where the link is planted, under the root
		target  func(root string) string
		late    bool // planted after the pre-check, during the install
		refused bool // want *PrecheckError (else *RolledBackError or success)
	}{
		{"file link, absolute", "jails/pg_j/etc/rc.conf", func(r string) string { return filepath.Join(r, "etc/master.passwd") }, false, true},
		{"file link, relative", "jails/pg_j/etc/rc.conf", func(string) string { return "../../../etc/master.passwd" }, false, true},
		{"dir link, absolute", "jails/pg_j/etc", func(r string) string { return filepath.Join(r, "etc") }, false, true},
		{"dir link, relative", "jails/pg_j/etc", func(string) string { return "../../etc" }, false, true},
		{"dir link, absolute to /", "jails/pg_j/etc", func(string) string { return "/" }, false, true},
		{"dir link planted mid-install", "jails/pg_j/etc", func(r string) string { return filepath.Join(r, "etc") }, true, false},
		{"file link planted mid-install", "jails/pg_j/etc/rc.conf", func(r string) string { return filepath.Join(r, "etc/master.passwd") }, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			apply1(t, e)
			host := filepath.Join(e.root, "etc/master.passwd")
			if err := os.WriteFile(host, []byte(hostData), 0o600); err != nil {
				t.Fatal(err)
			}
			// The same content also placed where a relative link from the
			// jail's etc would land if it were followed.
			plant := func() {
				p := filepath.Join(e.root, tc.at)
				if err := os.RemoveAll(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(tc.target(e.root), p); err != nil {
					t.Fatal(err)
				}
			}
			if tc.late {
				apply.SetHook(e.eng, func(step string, i int) error {
					if step == apply.HookJournaled {
						plant()
					}
					return nil
				})
			} else {
				plant()
			}
			hostBefore := snapshot(t, filepath.Join(e.root, "etc"))
			b := mkBundle(2, with(uirig("v1"), "/jails/pg_j/etc/rc.conf", "pwned=\"yes\"\n"))
			_, err := e.eng.Apply(ctx, b)
			if d := diffSnap(hostBefore, snapshot(t, filepath.Join(e.root, "etc"))); d != "" {
				t.Errorf("host /etc changed:\n%s", d)
			}
			if got := readFile(host); got != hostData {
				t.Errorf("host file overwritten: %q", got)
			}
			var pe *apply.PrecheckError
			var rb *apply.RolledBackError
			switch {
			case tc.refused:
				if !errors.As(err, &pe) || pe.Path != "/jails/pg_j/etc/rc.conf" {
					t.Fatalf("err %v, want *PrecheckError for the jail rc.conf", err)
				}
				if len(e.drv.Activations()) != 0 {
					t.Errorf("activations %v", e.drv.Activations())
				}
			case tc.at == "jails/pg_j/etc":
				if !errors.As(err, &rb) || !strings.Contains(err.Error(), "escapes") {
					t.Fatalf("err %v, want *RolledBackError: path escapes", err)
				}
			default:
				// The rename replaced the link itself: the jail got its
				// file, the host kept its own.
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(filepath.Join(e.root, tc.at))
				if err != nil || !fi.Mode().IsRegular() || readRoot(e, "/"+tc.at) != "pwned=\"yes\"\n" {
					t.Errorf("jail rc.conf: %v %v", fi, err)
				}
			}
			assertClean(t, e.state)
		})
	}
}
