package gitauth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://ci:s3cret@git.example.org/infra.git": "https://ci:xxxxx@git.example.org/infra.git",
		"https://ci@git.example.org/infra.git":        "https://ci@git.example.org/infra.git",
		"/srv/git/bundles.git":                        "/srv/git/bundles.git",
		"git@git.example.org:infra.git":               "git@git.example.org:infra.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAuth(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("ci-bot:glpat-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := Auth(Config{URL: "https://git.example.org/infra.git", TokenFile: tok})
	if ba, ok := auth.(*githttp.BasicAuth); err != nil || !ok || ba.Username != "ci-bot" || ba.Password != "glpat-123" {
		t.Fatalf("token file: %#v, %v", auth, err)
	}
	if auth, err := Auth(Config{URL: "/srv/git/bundles.git", TokenFile: tok}); auth != nil || err != nil {
		t.Fatalf("local path: %#v, %v", auth, err)
	}
	for _, tc := range []struct {
		c     Config
		field string
	}{
		{Config{URL: "https://x/y.git", TokenFile: filepath.Join(t.TempDir(), "missing")}, "token_file"},
		{Config{URL: "ssh://git@x/y.git"}, "ssh_key"},
		{Config{URL: "ssh://git@x/y.git", SSHKey: filepath.Join(t.TempDir(), "missing")}, "ssh_key"},
	} {
		_, err := Auth(tc.c)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Errorf("%+v: %v, want a %s error", tc.c, err, tc.field)
		}
	}
}
