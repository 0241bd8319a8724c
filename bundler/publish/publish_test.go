package publish

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/gitauth"
	"github.com/rigger-bsd/rigger/bundler/topology"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// build writes a signed bundle for host into out.
func build(t *testing.T, s *bundle.Signer, out, host string, serial uint64, content string) {
	t.Helper()
	r := &topology.HostRender{Host: host, Files: []topology.RenderedFile{{Path: "/etc/rc.conf", Content: []byte(content)}}}
	b, err := bundle.Build(r, bundle.Meta{Serial: serial, Created: now})
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Source.Commit = "c0ffee" + host
	if err := b.Sign(s); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(out); err != nil {
		t.Fatal(err)
	}
}

// gitOut runs git against a bare repository and returns its output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"--git-dir", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func testPublishFlow(t *testing.T, url, bare string) {
	s, err := bundle.GenerateSigner(bundle.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	all := t.TempDir()
	build(t, s, all, "serverA", 1, "a=1\n")
	build(t, s, all, "serverB", 1, "b=1\n")
	res, err := Publish(ctx, Options{Dir: all, URL: url, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed || len(res.Hosts) != 2 {
		t.Fatalf("result %+v", res)
	}
	if got := gitOut(t, bare, "rev-parse", "bundles"); got != res.Commit {
		t.Fatalf("remote head %s, publish said %s", got, res.Commit)
	}
	if got := gitOut(t, bare, "ls-tree", "-r", "--name-only", "bundles"); got != "serverA/files.tar.zst\nserverA/manifest.json\nserverB/files.tar.zst\nserverB/manifest.json" {
		t.Fatalf("tree:\n%s", got)
	}
	msg := gitOut(t, bare, "log", "-1", "--format=%B", "bundles")
	for _, want := range []string{"c0ffeeserverA", "serverA serial 1", "serverB serial 1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(all, "serverA", "manifest.json")); gitOut(t, bare, "show", "bundles:serverA/manifest.json") != strings.TrimSpace(string(got)) {
		t.Error("published manifest differs from the built one")
	}

	// Republishing the same bundles changes nothing.
	res, err = Publish(ctx, Options{Dir: all, URL: url})
	if err != nil || res.Pushed {
		t.Fatalf("republish: %+v %v", res, err)
	}

	// A subset: serverA serial 2 only. serverB's folder stays.
	sub := t.TempDir()
	build(t, s, sub, "serverA", 2, "a=2\n")
	res, err = Publish(ctx, Options{Dir: sub, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hosts[0].Previous != 1 || res.Hosts[0].Serial != 2 {
		t.Errorf("hosts %+v", res.Hosts)
	}
	if got := gitOut(t, bare, "rev-list", "--count", "bundles"); got != "2" {
		t.Errorf("%s commits, want 2", got)
	}
	if got := gitOut(t, bare, "show", "bundles:serverB/manifest.json"); got == "" {
		t.Error("serverB's folder was dropped")
	}

	// Same serial, other content: refused, remote unchanged.
	head := gitOut(t, bare, "rev-parse", "bundles")
	again := t.TempDir()
	build(t, s, again, "serverA", 2, "a=other\n")
	build(t, s, again, "serverB", 1, "b=other\n")
	_, err = Publish(ctx, Options{Dir: again, URL: url})
	if !errors.Is(err, ErrSerialNotAbove) || !strings.Contains(err.Error(), "serverA: serial 2, published 2") || !strings.Contains(err.Error(), "serverB: serial 1, published 1") {
		t.Fatalf("got %v, want ErrSerialNotAbove naming both hosts", err)
	}
	if gitOut(t, bare, "rev-parse", "bundles") != head {
		t.Error("a refused publish moved the branch")
	}
}

func TestPublishLocalBare(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "bundles.git")
	if err := gittest.InitBare(bare); err != nil {
		t.Fatal(err)
	}
	testPublishFlow(t, bare, bare)
}

func TestPublishSmartHTTP(t *testing.T) {
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	bare, err := srv.Init("bundles.git")
	if err != nil {
		t.Fatal(err)
	}
	testPublishFlow(t, srv.URL("bundles.git"), bare)
}

// TestPublishToken: a server that wants a token refuses the push without
// it, takes it from a token file, and no message shows it.
func TestPublishToken(t *testing.T) {
	srv, err := gittest.Serve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	bare, err := srv.Init("bundles.git")
	if err != nil {
		t.Fatal(err)
	}
	srv.RequireAuth("ci-bot", "glpat-s3cret")
	s, err := bundle.GenerateSigner(bundle.ECDSA)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	build(t, s, out, "serverA", 1, "a=1\n")
	ctx := context.Background()

	if _, err := Publish(ctx, Options{Dir: out, URL: srv.URL("bundles.git")}); err == nil || !strings.Contains(err.Error(), "authentication required") {
		t.Fatalf("without a token: %v", err)
	}
	wrong := "http://ci-bot:wrong-s3cret@" + strings.TrimPrefix(srv.URL("bundles.git"), "http://")
	if _, err := Publish(ctx, Options{Dir: out, URL: wrong}); err == nil || strings.Contains(err.Error(), "wrong-s3cret") {
		t.Fatalf("wrong token in the URL: %v (must fail without showing it)", err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("ci-bot:glpat-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := gitauth.Auth(gitauth.Config{URL: srv.URL("bundles.git"), TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Publish(ctx, Options{Dir: out, URL: srv.URL("bundles.git"), Auth: auth})
	if err != nil || !res.Pushed {
		t.Fatalf("with the token: %+v, %v", res, err)
	}
	if got := gitOut(t, bare, "rev-parse", "bundles"); got != res.Commit {
		t.Fatalf("bundles at %s, pushed %s", got, res.Commit)
	}
}

func TestPublishRefusesBrokenBundles(t *testing.T) {
	s, _ := bundle.GenerateSigner(bundle.Ed25519)
	bare := filepath.Join(t.TempDir(), "b.git")
	if err := gittest.InitBare(bare); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build(t, s, dir, "serverA", 1, "a=1\n")
	if err := os.WriteFile(filepath.Join(dir, "serverA", "files.tar.zst"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), Options{Dir: dir, URL: bare}); err == nil || !strings.Contains(err.Error(), "archive digest") {
		t.Fatalf("broken archive: %v", err)
	}
	// A host folder renamed: the manifest names another host.
	dir = t.TempDir()
	build(t, s, dir, "serverA", 1, "a=1\n")
	os.Rename(filepath.Join(dir, "serverA"), filepath.Join(dir, "serverB"))
	if _, err := Publish(context.Background(), Options{Dir: dir, URL: bare}); err == nil || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("renamed folder: %v", err)
	}
	if _, err := Publish(context.Background(), Options{Dir: t.TempDir(), URL: bare}); err == nil {
		t.Fatal("empty folder published")
	}
}
