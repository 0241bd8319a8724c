package gittest

import (
	"os/exec"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestServeCountsAndDowntime(t *testing.T) {
	s, err := Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir, err := s.Init("infra.git")
	if err != nil {
		t.Fatal(err)
	}
	c1, err := Commit(dir, "bundles", map[string][]byte{"serverA/manifest.json": []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}

	out, err := run(t, t.TempDir(), "ls-remote", s.URL("infra.git"), "refs/heads/bundles")
	if err != nil {
		t.Fatalf("ls-remote: %v: %s", err, out)
	}
	if !strings.HasPrefix(out, c1) {
		t.Fatalf("ls-remote = %q, want head %s", out, c1)
	}
	if got := s.Counts(); got.InfoRefs != 1 || got.LsRefs > 1 || got.UploadPack != 0 {
		t.Fatalf("after ls-remote counts = %+v, want 1 ref advertisement and no upload-pack", got)
	}

	work := t.TempDir()
	if out, err := run(t, work, "clone", "--quiet", "--branch", "bundles", s.URL("infra.git"), "w"); err != nil {
		t.Fatalf("clone: %v: %s", err, out)
	}
	if got := s.Counts(); got.UploadPack != 1 {
		t.Fatalf("after clone counts = %+v, want one upload-pack", got)
	}

	// A push goes through receive-pack.
	wd := work + "/w"
	if out, err := run(t, wd, "commit", "--quiet", "--allow-empty", "-m", "next"); err != nil {
		t.Fatalf("commit: %v: %s", err, out)
	}
	if out, err := run(t, wd, "push", "--quiet", "origin", "bundles"); err != nil {
		t.Fatalf("push: %v: %s", err, out)
	}
	if got := s.Counts(); got.ReceivePack != 1 {
		t.Fatalf("after push counts = %+v, want one receive-pack", got)
	}
	c2, err := Head(dir, "bundles")
	if err != nil || c2 == c1 {
		t.Fatalf("head after push = %q, %v; want a new commit", c2, err)
	}

	// Force the branch back, like a force-push.
	if err := SetBranch(dir, "bundles", c1); err != nil {
		t.Fatal(err)
	}
	if h, _ := Head(dir, "bundles"); h != c1 {
		t.Fatalf("head after SetBranch = %s, want %s", h, c1)
	}

	// Down: connection refused; up again on the same URL.
	url := s.URL("infra.git")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, t.TempDir(), "ls-remote", url); err == nil {
		t.Fatalf("ls-remote against a stopped server succeeded: %s", out)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.URL("infra.git") != url {
		t.Fatalf("URL changed across restart: %s vs %s", s.URL("infra.git"), url)
	}
	if out, err := run(t, t.TempDir(), "ls-remote", url); err != nil {
		t.Fatalf("ls-remote after restart: %v: %s", err, out)
	}
	s.ResetCounts()
	if got := s.Counts(); got != (Counts{}) {
		t.Fatalf("counts after reset = %+v", got)
	}
}

func TestCommitEntriesSymlink(t *testing.T) {
	dir := t.TempDir() + "/r.git"
	if err := InitBare(dir); err != nil {
		t.Fatal(err)
	}
	c, err := CommitEntries(dir, "main", []Entry{{Path: "h/files.tar.zst", Data: []byte("/etc/shadow"), Mode: "120000"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, dir, "--git-dir", dir, "ls-tree", "-r", c)
	if err != nil {
		t.Fatalf("ls-tree: %v: %s", err, out)
	}
	if !strings.HasPrefix(out, "120000 blob") || !strings.HasSuffix(out, "h/files.tar.zst") {
		t.Fatalf("ls-tree = %q, want a symlink entry", out)
	}
}
