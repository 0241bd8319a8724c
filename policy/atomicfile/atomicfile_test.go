package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	for _, d := range []Durability{Durable, Ordered, Volatile} {
		dir := t.TempDir()
		name := filepath.Join(dir, "status.json")
		if err := os.WriteFile(name, []byte("old content, longer than the new\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(name, []byte("new\n"), 0o640, d); err != nil {
			t.Fatalf("durability %d: %v", d, err)
		}
		b, err := os.ReadFile(name)
		if err != nil || string(b) != "new\n" {
			t.Fatalf("durability %d: content %q, %v", d, b, err)
		}
		fi, _ := os.Stat(name)
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("durability %d: mode %v, want 0640 (set on the fd, whatever the umask)", d, fi.Mode())
		}
		// Group and other write bits, which a usual umask takes away.
		if err := WriteFile(name, []byte("x"), 0o666, d); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o666 {
			t.Errorf("durability %d: mode %v, want 0666 whatever the umask", d, fi.Mode())
		}
		assertNoTemps(t, dir)
	}
}

// A symlink planted at the target is replaced, never followed.
func TestWriteFileInReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "pf.conf")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteFileIn(r, "pf.conf", []byte("pass\n"), 0o600, Durable); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the write followed the symlink: victim now %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "pf.conf"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("target is %v, %v; want a regular file", fi.Mode(), err)
	}
}

// A batch: every temp file is written before any rename; Discard leaves
// nothing behind; Dirs syncs each directory once and skips one removed
// since.
func TestStageCommitDiscard(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "gone"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ps []*Pending
	for _, rel := range []string{"a/x", "b/y", "a/z"} {
		p, err := Stage(r, rel, []byte(rel), Options{Perm: 0o644, Sync: true})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := os.Stat(filepath.Join(dir, "a/x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a/x visible before its commit: %v", err)
	}
	var dirs Dirs
	for _, p := range ps[:2] {
		if err := p.Commit(&dirs); err != nil {
			t.Fatal(err)
		}
		p.Discard() // committed: nothing to do
	}
	ps[2].Discard()
	dirs.Add(r, "gone")
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	if len(dirs.m) != 3 {
		t.Errorf("queued dirs %v, want a, b and gone once each", dirs.m)
	}
	if err := dirs.Sync(); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"a/x": "a/x", "b/y": "b/y"} {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", rel, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a/z")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("discarded a/z exists: %v", err)
	}
	assertNoTemps(t, filepath.Join(dir, "a"))
	assertNoTemps(t, filepath.Join(dir, "b"))
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := Stage(r, "journal.json", []byte("{}"), Options{Perm: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	_ = p // a killed writer: never committed nor discarded
	other := filepath.Join(dir, TempPrefix("other")+"1")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	RemoveTemps(r, "journal.json")
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != filepath.Base(other) {
		t.Errorf("left %v; want only the other target's temp file", ents)
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing dir: %v", err)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", filepath.Join(dir, e.Name()))
		}
	}
}
