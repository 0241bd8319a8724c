package apply_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/verify"
)

// TestStagingFailureIsPrecheck (issue 14, item 7): a bundle that cannot
// even be staged (a path sent as a file and as a directory) fails like a
// pre-check: *PrecheckError, nothing installed, so the agent quarantines
// it instead of retrying it every poll.
func TestStagingFailureIsPrecheck(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	before := snapshot(t, e.root)
	files := append(uirig("v2"), tf{"/etc/rc.conf/evil", "none", "x=1\n", 0})
	_, err := e.eng.Apply(ctx, mkBundle(2, files))
	var pre *apply.PrecheckError
	if !errors.As(err, &pre) || pre.Path != "/etc/rc.conf/evil" && pre.Path != "/etc/rc.conf" {
		t.Fatalf("err %v, want *PrecheckError naming the file", err)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("host changed:\n%s", d)
	}
	if calls := e.drv.Calls(); len(calls) != 0 {
		t.Errorf("driver calls %v", calls)
	}
	assertClean(t, e.state)
}

// TestStagingFollowsTheManifest: the pre-check sees exactly the
// manifest's files, with their contents, and the directories they need,
// also when the tree is kept from an earlier transaction whose manifest
// had other files and directories, and after a restart.
func TestStagingFollowsTheManifest(t *testing.T) {
	e := newEnv(t)
	var seen []string
	var cur *verify.Bundle // the bundle being applied
	e.drv.OnPrecheck = func(stage string, files []verify.File) error {
		want := map[string]bool{".": true}
		for _, f := range files {
			for p := f.Path[1:]; p != "." && !want[p]; p = path.Dir(p) {
				want[p] = true
			}
		}
		got := map[string]bool{}
		err := filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(stage, p)
			got[filepath.ToSlash(rel)] = true
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		for p := range got {
			if !want[p] {
				t.Errorf("serial %d staged with %s, not in its manifest", cur.Manifest.Serial, p)
			}
		}
		for p := range want {
			if !got[p] {
				t.Errorf("serial %d: staged tree lacks %s", cur.Manifest.Serial, p)
			}
		}
		for _, f := range files {
			if b, err := os.ReadFile(filepath.Join(stage, f.Path)); err != nil || string(b) != string(cur.Files[f.Path]) {
				t.Errorf("serial %d: staged %s differs from its bundle (%v)", cur.Manifest.Serial, f.Path, err)
			}
		}
		seen = append(seen, fmt.Sprint(cur.Manifest.Serial))
		return nil
	}
	v1 := uirig("v1")
	// v2 drops nginx.conf (and its directories), has a shorter rc.conf
	// and adds a file deeper under a new directory.
	var v2 []tf
	for _, f := range uirig("v2") {
		if !strings.Contains(f.path, "nginx.conf") {
			v2 = append(v2, f)
		}
	}
	v2 = append(with(v2, "/etc/rc.conf", "shorter=1\n"), tf{"/usr/local/etc/new/sub/x.conf", "none", "x=1\n", 0})
	for i, files := range [][]tf{v1, v2, v1, v2} {
		if i == 3 {
			e.reopen(t) // a new Engine knows nothing of the kept tree
			e.eng.Recover(ctx)
		}
		cur = mkBundle(uint64(i+1), files)
		if _, err := e.eng.Apply(ctx, cur); err != nil {
			t.Fatal(err)
		}
		assertClean(t, e.state)
	}
	// A failed pre-check changes nothing on the host.
	e.drv.OnPrecheck = func(string, []verify.File) error { return errors.New("refused") }
	cur = mkBundle(5, uirig("v5"))
	if _, err := e.eng.Apply(ctx, cur); err == nil {
		t.Fatal("pre-check failure not reported")
	}
	assertClean(t, e.state)
	if len(seen) != 4 {
		t.Errorf("pre-checks %v", seen)
	}
}

// TestBackupCarriesWhatTheGenerationLacks: backup.tar holds only the
// bytes the current generation does not (drift, unmanaged files); a
// rollback restores both kinds (a recovery after a kill too:
// TestKill9EveryStep).
func TestBackupCarriesWhatTheGenerationLacks(t *testing.T) {
	e := newEnv(t)
	apply1(t, e)
	drifted := filepath.Join(e.root, "etc/sysctl.conf")
	if err := os.WriteFile(drifted, []byte("edited on the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e.root)
	var tarred []string
	apply.SetHook(e.eng, func(step string, i int) error {
		if step == apply.HookInstalled {
			return errors.New("injected failure after the install")
		}
		if step != apply.HookJournaled {
			return nil
		}
		f, err := os.Open(filepath.Join(e.state, "backup.tar"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			tarred = append(tarred, h.Name)
		}
		return nil
	})
	// Every file changes, then the transaction fails: rolled back.
	_, err := e.eng.Apply(ctx, mkBundle(2, uirig("v2")))
	var rb *apply.RolledBackError
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want a rollback", err)
	}
	if !slices.Equal(tarred, []string{"etc/sysctl.conf"}) {
		t.Errorf("backup.tar holds %q, want only the drifted etc/sysctl.conf", tarred)
	}
	if d := diffSnap(before, snapshot(t, e.root)); d != "" {
		t.Errorf("not restored:\n%s", d)
	}
	assertClean(t, e.state)
}
