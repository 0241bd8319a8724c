package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

// These tests drive keygen, sign and verify through Main with bundles made
// by package bundle from hand-built renders, so they do not depend on the
// topology compiler.

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func testRender(host string) *topology.HostRender {
	return &topology.HostRender{
		Host: host,
		Files: []topology.RenderedFile{
			{Path: "/etc/pf.conf", Mode: 0o600, Unit: "pf", Content: []byte("pass all\n")},
			{Path: "/etc/rc.conf", Content: []byte("hostname=\"" + host + "\"\n")},
		},
		Health: []verify.Check{{Kind: verify.CheckPF, Name: "pf"}},
	}
}

func keygen(t *testing.T, dir, name, typ string) string {
	t.Helper()
	prefix := filepath.Join(dir, name)
	code, out, errs := runMain(t, "keygen", "--out", prefix, "--type", typ)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errs)
	}
	if !strings.Contains(out, "key id ") {
		t.Errorf("keygen output %q", out)
	}
	return prefix
}

func TestKeygenSignVerify(t *testing.T) {
	t.Setenv(envKeyPassword, "correct horse")
	dir := t.TempDir()
	a := keygen(t, dir, "a", "ecdsa")
	b := keygen(t, dir, "b", "ed25519")
	c := keygen(t, dir, "c", "ecdsa")
	if fi, err := os.Stat(a + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi.Mode(), err)
	}
	if code, _, errs := runMain(t, "keygen", "--out", a); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("keygen over an existing key: %d %s", code, errs)
	}

	s, err := loadSigningKey(a + ".key")
	if err != nil {
		t.Fatal(err)
	}
	bb, err := bundle.Build(testRender("serverA"), bundle.Meta{Serial: 7, Created: time.Now(), Source: verify.Source{Commit: "deadbeef"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bb.Sign(s); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	hostDir, err := bb.Write(out)
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, errs := runMain(t, "verify", "--pub", a+".pub", hostDir)
	if code != 0 {
		t.Fatalf("verify: %d %s", code, errs)
	}
	for _, want := range []string{"serverA", "serial      7", "deadbeef", "/etc/pf.conf", "root:wheel", s.KeyID()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}

	three := []string{"verify", "--pub", a + ".pub", "--pub", b + ".pub", "--pub", c + ".pub", "--threshold", "2", hostDir}
	if code, _, errs := runMain(t, three...); code != ExitRejected || !strings.Contains(errs, "not enough trusted signatures") {
		t.Errorf("1-of-3 with threshold 2: %d %s", code, errs)
	}
	if code, _, errs := runMain(t, "sign", "--key", a+".key", hostDir); code != 1 || !strings.Contains(errs, "already signed") {
		t.Errorf("re-sign by the same key: %d %s", code, errs)
	}
	if code, _, errs := runMain(t, "sign", "--key", b+".key", hostDir); code != 0 {
		t.Fatalf("sign: %d %s", code, errs)
	}
	if code, stdout, errs := runMain(t, three...); code != 0 || strings.Count(stdout, ".pub)") != 2 {
		t.Errorf("2-of-3: %d %s %s", code, stdout, errs)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"verify", "--pub", a + ".pub", "--host", "serverB", hostDir}, ExitRejected, "another host"},
		{[]string{"verify", "--pub", a + ".pub", "--min-serial", "8", hostDir}, ExitRejected, "serial not above"},
		{[]string{"verify", "--pub", c + ".pub", hostDir}, ExitRejected, "bad signature"},
		{[]string{"verify", hostDir}, 2, "--pub"},
		{[]string{"verify", "--pub", a + ".pub"}, 2, "argument"},
		{[]string{"verify", "--pub", filepath.Join(dir, "nope.pub"), hostDir}, 1, "nope.pub"},
	} {
		code, _, errs := runMain(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args[1:], code, errs, tc.code, tc.want)
		}
	}

	// serverA's bundle placed in serverB's folder: refused by host.
	other := filepath.Join(out, "serverB")
	if err := os.CopyFS(other, os.DirFS(hostDir)); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runMain(t, "verify", "--pub", a+".pub", other); code != ExitRejected || !strings.Contains(errs, `for host "serverA", this is "serverB"`) {
		t.Errorf("cross-host replay: %d %s", code, errs)
	}
}

func TestKeygenNeedsPassword(t *testing.T) {
	t.Setenv(envKeyPassword, "")
	prefix := filepath.Join(t.TempDir(), "k")
	code, _, errs := runMain(t, "keygen", "--out", prefix)
	if code != 1 || !strings.Contains(errs, envKeyPassword) {
		t.Errorf("exit %d %s", code, errs)
	}
	if _, err := os.Stat(prefix + ".key"); !os.IsNotExist(err) {
		t.Errorf("a key was written without a password")
	}
	t.Setenv(envKeyPassword, "x")
	if code, _, _ := runMain(t, "keygen", "--out", prefix, "--type", "rsa"); code != 2 {
		t.Errorf("--type rsa: exit %d, want 2", code)
	}
}

// Command-line mistakes exit 2, failures 1.
func TestBundleCommandsExitCodes(t *testing.T) {
	t.Setenv(envKeyPassword, "pw")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"build", "--repo", "r", "--key", "k", "--out", "o"}, 2},
		{[]string{"build", "--repo", "r", "--all", "--host", "a", "--key", "k", "--out", "o", "--serial", "1"}, 2},
		{[]string{"build", "--repo", "r", "--all", "--key", "k", "--out", "o", "--serial", "1", "--previous", "p"}, 2},
		{[]string{"build", "--repo", "r", "--all", "--key", "k", "--out", "o", "--serial", "1", "--expires", "-1h"}, 2},
		{[]string{"build", "--repo", t.TempDir(), "--all", "--key", "k", "--out", "o", "--serial", "1"}, 1},
		{[]string{"sign", "--key", "k"}, 2},
		{[]string{"sign", "dir"}, 2},
		{[]string{"publish", "--out", "o"}, 2},
		{[]string{"publish", "--out", t.TempDir(), "--url", t.TempDir()}, 1},
		{[]string{"diff", "--repo", "r"}, 2},
		{[]string{"keygen", "--out", "x", "extra"}, 2},
	} {
		if code, _, errs := runMain(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d (%s), want %d", tc.args, code, strings.TrimSpace(errs), tc.code)
		}
	}
}
