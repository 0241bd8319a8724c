package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
)

func newGit(t *testing.T) (*gittest.Server, string) {
	t.Helper()
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir, err := srv.Init("infra.git")
	if err != nil {
		t.Fatal(err)
	}
	return srv, dir
}

func TestSourceFetchReadForcePush(t *testing.T) {
	srv, dir := newGit(t)
	c1, err := gittest.Commit(dir, "bundles", map[string][]byte{
		"serverA/manifest.json": []byte("m1"), "serverA/files.tar.zst": []byte("a1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(t.TempDir()+"/git", SourceConfig{URL: srv.URL("infra.git"), Branch: "bundles", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv.ResetCounts()
	head, err := src.Head(ctx)
	if err != nil || head != c1 {
		t.Fatalf("Head = %s, %v; want %s", head, err, c1)
	}
	if c := srv.Counts(); c.InfoRefs != 1 || c.UploadPack != 0 || c.LsRefs != 0 {
		t.Fatalf("Head cost %+v, want exactly one ref advertisement", c)
	}
	if src.Has(c1) {
		t.Fatal("Has before fetch")
	}
	got, err := src.Fetch(ctx)
	if err != nil || got != c1 {
		t.Fatalf("Fetch = %s, %v", got, err)
	}
	bf, err := src.Read(c1, "serverA", 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if string(bf.Manifest) != "m1" || string(bf.Archive) != "a1" {
		t.Fatalf("Read = %q %q", bf.Manifest, bf.Archive)
	}

	c2, err := gittest.Commit(dir, "bundles", map[string][]byte{
		"serverA/manifest.json": []byte("m2"), "serverA/files.tar.zst": []byte("a2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := src.Fetch(ctx); err != nil || got != c2 {
		t.Fatalf("second Fetch = %s, %v; want %s", got, err, c2)
	}
	// A force-push to a commit we never fetched (a new root commit).
	c3, err := gittest.CommitEntries(dir, "other", []gittest.Entry{{Path: "serverA/manifest.json", Data: []byte("m3")}, {Path: "serverA/files.tar.zst", Data: []byte("a3")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := gittest.SetBranch(dir, "bundles", c3); err != nil {
		t.Fatal(err)
	}
	if got, err := src.Fetch(ctx); err != nil || got != c3 {
		t.Fatalf("Fetch after force-push = %s, %v; want %s", got, err, c3)
	}
	if bf, err := src.Read(c3, "serverA", 10, 10); err != nil || string(bf.Manifest) != "m3" {
		t.Fatalf("Read after force-push: %v", err)
	}
	// And back to the first commit, which is already local.
	if err := gittest.SetBranch(dir, "bundles", c1); err != nil {
		t.Fatal(err)
	}
	if got, err := src.Fetch(ctx); err != nil || got != c1 {
		t.Fatalf("Fetch after force-push back = %s, %v; want %s", got, err, c1)
	}
}

func TestSourceReadRefusesOddBlobs(t *testing.T) {
	srv, dir := newGit(t)
	c, err := gittest.CommitEntries(dir, "bundles", []gittest.Entry{
		{Path: "serverA/manifest.json", Data: []byte("/etc/shadow"), Mode: "120000"},
		{Path: "serverA/files.tar.zst", Data: []byte(strings.Repeat("x", 100))},
		{Path: "serverB/manifest.json", Data: []byte("{}")},
		{Path: "serverB/files.tar.zst", Data: []byte(strings.Repeat("x", 100))},
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(t.TempDir()+"/git", SourceConfig{URL: srv.URL("infra.git"), Branch: "bundles", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, want string
	}{
		{"serverA", "not a regular file"},
		{"serverB", "over the 50-byte limit"},
		{"serverC", "not in the published tree"},
	} {
		_, err := src.Read(c, tc.host, 50, 50)
		var bfe *BundleFileError
		if !errors.As(err, &bfe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read %s: %v, want BundleFileError containing %q", tc.host, err, tc.want)
		}
	}
}

func TestSourceDownAndDeadline(t *testing.T) {
	srv, dir := newGit(t)
	if _, err := gittest.Commit(dir, "bundles", map[string][]byte{"x": []byte("y")}); err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(t.TempDir()+"/git", SourceConfig{URL: srv.URL("infra.git"), Branch: "bundles", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(2 * time.Second)
	start := time.Now()
	_, err = src.Head(context.Background())
	var se *SourceError
	if !errors.As(err, &se) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Head against a slow server: %v, want a deadline SourceError", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("deadline not honoured: took %s", d)
	}
	srv.SetDelay(0)
	srv.Stop()
	if _, err := src.Head(context.Background()); !errors.As(err, &se) {
		t.Fatalf("Head against a stopped server: %v, want SourceError", err)
	}
	srv.Start()
	// The 300ms deadline is tight for a CGI git on a busy machine: the
	// source must work again, within a few tries.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := src.Head(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Head after restart: %v", err)
		}
	}
	// Wrong branch.
	src2, _ := OpenSource(t.TempDir()+"/git", SourceConfig{URL: srv.URL("infra.git"), Branch: "nope", Timeout: time.Second})
	if _, err := src2.Head(context.Background()); !errors.Is(err, ErrBranchMissing) {
		t.Fatalf("Head of a missing branch: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	if got := RedactURL("https://bob:s3cret@git.example.org/x.git"); strings.Contains(got, "s3cret") {
		t.Fatalf("RedactURL kept the password: %s", got)
	}
	if got := RedactURL("/local/path"); got != "/local/path" {
		t.Fatalf("RedactURL(/local/path) = %s", got)
	}
}

// TestSourceStaysSmall fetches many successive tips and expects the
// local store to be repacked instead of growing a pack per fetch.
func TestSourceStaysSmall(t *testing.T) {
	srv, dir := newGit(t)
	src, err := OpenSource(t.TempDir()+"/git", SourceConfig{URL: srv.URL("infra.git"), Branch: "bundles", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Archives of successive serials are alike: the repack has deltas
	// to find, and (run with -race) any concurrency in it to show.
	base := make([]byte, 48<<10)
	rand.NewChaCha8([32]byte{1}).Read(base)
	for i := range 2*maxPacks + 3 {
		archive := fmt.Appendf(slices.Clone(base), "a%d", i)
		c, err := gittest.Commit(dir, "bundles", map[string][]byte{
			"serverA/manifest.json": fmt.Appendf(nil, "m%d", i), "serverA/files.tar.zst": archive,
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := src.Fetch(context.Background())
		if err != nil || got != c {
			t.Fatalf("fetch %d = %s, %v", i, got, err)
		}
		bf, err := src.Read(c, "serverA", 10, 64<<10)
		if err != nil || string(bf.Manifest) != fmt.Sprintf("m%d", i) || !bytes.Equal(bf.Archive, archive) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if n := src.Packs(); n > maxPacks+1 {
		t.Fatalf("%d packs after %d fetches, want at most %d", n, 2*maxPacks+3, maxPacks+1)
	}
}

// TestSourceOverSSH follows a branch over ssh (the budgeted transport of
// bundler/gitauth/ssh.go): head, fetch, a second commit fetched on top of
// the first, and a configured budget that the advertisement exceeds.
func TestSourceOverSSH(t *testing.T) {
	root := t.TempDir()
	dir := root + "/infra.git"
	if err := gittest.InitBare(dir); err != nil {
		t.Fatal(err)
	}
	srv, err := gittest.ServeSSH(t.TempDir(), root, "", "bundles")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	cfg := SourceConfig{URL: srv.URL("infra.git"), Branch: "bundles", Timeout: 10 * time.Second, SSHKey: srv.KeyFile, KnownHosts: srv.KnownHostsFile}
	src, err := OpenSource(t.TempDir()+"/git", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		c, err := gittest.Commit(dir, "bundles", map[string][]byte{
			"serverA/manifest.json": fmt.Appendf(nil, "m%d", i), "serverA/files.tar.zst": fmt.Appendf(nil, "a%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		head, err := src.Head(ctx)
		if err != nil || head != c {
			t.Fatalf("Head = %s, %v; want %s", head, err, c)
		}
		got, err := src.Fetch(ctx)
		if err != nil || got != c {
			t.Fatalf("Fetch = %s, %v; want %s", got, err, c)
		}
		bf, err := src.Read(c, "serverA", 10, 10)
		if err != nil {
			t.Fatal(err)
		}
		if string(bf.Manifest) != fmt.Sprintf("m%d", i) || string(bf.Archive) != fmt.Sprintf("a%d", i) {
			t.Fatalf("commit %d read %q %q", i, bf.Manifest, bf.Archive)
		}
	}

	// A host key other than the known one is refused.
	other, err := gittest.ServeSSH(t.TempDir(), root, "", "bundles")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	wrong := cfg
	wrong.URL = other.URL("infra.git")
	wrong.SSHKey = other.KeyFile
	if s, err := OpenSource("", wrong); err != nil {
		t.Fatal(err)
	} else if _, err := s.Head(ctx); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("Head against an unknown host key: %v", err)
	}

	// The configured budget holds over ssh too: a 1 KiB advertisement
	// limit is passed by a branch list of many refs.
	var refs strings.Builder
	for i := range 40 {
		fmt.Fprintf(&refs, "update refs/heads/long-branch-name-to-fill-the-advertisement-%03d refs/heads/bundles\n", i)
	}
	up := exec.Command("git", "--git-dir", dir, "update-ref", "--stdin")
	up.Stdin = strings.NewReader(refs.String())
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	small := cfg
	small.Budget = Budget{Refs: 1024, Pack: 1 << 20, MaxObject: 1 << 20}
	s, err := OpenSource("", small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "ref advertisement over 1024 bytes") {
		t.Fatalf("Head with a 1 KiB budget: %v, want the budget error", err)
	}
}
