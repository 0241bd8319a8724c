package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/rigger-bsd/rigger/agent/gittest"
	"github.com/rigger-bsd/rigger/bundler/bundle"
)

func TestAuthToken(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret-token\n"), 0o600)
	auth, err := authFor(SourceConfig{URL: "https://git.example.org/infra.git", TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	ba, ok := auth.(*githttp.BasicAuth)
	if !ok || ba.Password != "s3cret-token" || ba.Username != "rigger" {
		t.Fatalf("auth = %#v", auth)
	}
	if strings.Contains(ba.String(), "s3cret") {
		t.Fatalf("BasicAuth.String leaks the token: %s", ba.String())
	}
	os.WriteFile(tok, []byte("ci-bot:glpat-123\n"), 0o600)
	auth, _ = authFor(SourceConfig{URL: "https://git.example.org/infra.git", TokenFile: tok})
	if ba := auth.(*githttp.BasicAuth); ba.Username != "ci-bot" || ba.Password != "glpat-123" {
		t.Fatalf("USER:TOKEN form = %#v", ba)
	}
	os.WriteFile(tok, nil, 0o600)
	var ce *ConfigError
	if _, err := authFor(SourceConfig{URL: "https://x/y.git", TokenFile: tok}); !errors.As(err, &ce) || ce.Key != "source.token_file" {
		t.Fatalf("empty token file: %v", err)
	}
}

func TestAuthSSHNeedsKeyAndKnownHosts(t *testing.T) {
	dir := t.TempDir()
	var ce *ConfigError
	if _, err := authFor(SourceConfig{URL: "ssh://git@git.example.org/infra.git"}); !errors.As(err, &ce) || ce.Key != "source.ssh_key" {
		t.Fatalf("ssh without a key: %v", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "deploy")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	if _, err := authFor(SourceConfig{URL: "git@git.example.org:infra.git", SSHKey: key, KnownHosts: filepath.Join(dir, "missing")}); !errors.As(err, &ce) || ce.Key != "source.known_hosts" {
		t.Fatalf("missing known_hosts: %v", err)
	}
	kh := filepath.Join(dir, "known_hosts")
	hostPub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(hostPub)
	os.WriteFile(kh, []byte("git.example.org "+string(ssh.MarshalAuthorizedKey(sshPub))), 0o644)
	auth, err := authFor(SourceConfig{URL: "git@git.example.org:infra.git", SSHKey: key, KnownHosts: kh})
	if err != nil {
		t.Fatal(err)
	}
	pk, ok := auth.(*gitssh.PublicKeys)
	if !ok || pk.User != "git" || pk.HostKeyCallback == nil {
		t.Fatalf("auth = %#v", auth)
	}
	// The callback checks host keys: another key for the same host fails.
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewPublicKey(otherPub)
	if err := pk.HostKeyCallback("git.example.org:22", fakeAddr("192.0.2.1:22"), other); err == nil {
		t.Fatal("host key callback accepted an unknown key")
	}
	if err := pk.HostKeyCallback("git.example.org:22", fakeAddr("192.0.2.1:22"), sshPub); err != nil {
		t.Fatalf("host key callback refused the known key: %v", err)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// TestTokenNeverLogged polls with a token file at debug level and looks
// for the token in everything the agent logged and wrote.
func TestTokenNeverLogged(t *testing.T) {
	w := newWorld(t)
	tok := filepath.Join(w.dir, "token")
	os.WriteFile(tok, []byte("s3cret-token\n"), 0o600)
	w.cfg.Source.TokenFile = tok
	var logs bytes.Buffer
	a, err := Open(w.cfg, Options{Engine: w.engine, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	w.agent = a
	w.publish(map[string]*bundle.Built{"serverA": w.bundleFor("serverA", 1, time.Time{})})
	w.poll(OutcomeApplied)
	w.srv.Stop()
	w.poll(OutcomeError)
	status, _ := os.ReadFile(filepath.Join(w.cfg.StateDir, "status.json"))
	for name, b := range map[string][]byte{"log": logs.Bytes(), "status.json": status} {
		if bytes.Contains(b, []byte("s3cret")) {
			t.Errorf("%s contains the token:\n%s", name, b)
		}
	}
	if !strings.Contains(logs.String(), "outcome=error") {
		t.Fatalf("expected the failed poll in the log:\n%s", logs.String())
	}
}

// TestLocalPathSource follows a bare repository given as a plain path.
func TestLocalPathSource(t *testing.T) {
	dir := t.TempDir() + "/infra.git"
	if err := gittest.InitBare(dir); err != nil {
		t.Fatal(err)
	}
	c, err := gittest.Commit(dir, "bundles", map[string][]byte{"serverA/manifest.json": []byte("m"), "serverA/files.tar.zst": []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenSource(t.TempDir()+"/git", SourceConfig{URL: dir, Branch: "bundles", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := src.Head(context.Background()); err != nil || head != c {
		t.Fatalf("Head = %s, %v", head, err)
	}
	if got, err := src.Fetch(context.Background()); err != nil || got != c {
		t.Fatalf("Fetch = %s, %v", got, err)
	}
	if bf, err := src.Read(c, "serverA", 10, 10); err != nil || string(bf.Manifest) != "m" {
		t.Fatalf("Read = %v", err)
	}
}
