// Package gitauth turns git transport settings into go-git credentials,
// the same way for the agent's source and for `bundler publish`: a token
// file for http(s), a deploy key checked against known_hosts for ssh,
// nothing for local paths.
//
// It lives under bundler/ because the layering of DESIGN.md lets the agent
// import the bundler's packages but not the other way round: the bundler
// (publish) and the agent (source) both need it, and here both may import
// it. It imports nothing of ours and must stay that way, so that the agent
// binary links no other bundler code (cmd/layering_test.go holds both).
package gitauth

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Config are the settings; the field names are the agent's source.* keys.
type Config struct {
	URL        string
	TokenFile  string // http(s): a file holding "TOKEN" or "USER:TOKEN"
	SSHKey     string // ssh: the private key file (required)
	KnownHosts string // ssh: known_hosts; empty means the ssh defaults
}

// FieldError says which setting is wrong: "url", "token_file", "ssh_key"
// or "known_hosts".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Auth builds the transport credentials. Secrets are read here and kept
// in memory only; nothing logs them. Credentials in an http(s) URL are
// left to go-git, which uses them when Auth returns nil.
func Auth(c Config) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(c.URL)
	if err != nil {
		return nil, &FieldError{"url", fmt.Errorf("%s: %w", Redact(c.URL), err)}
	}
	switch ep.Protocol {
	case "http", "https":
		if c.TokenFile == "" {
			return nil, nil
		}
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, &FieldError{"token_file", err}
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, &FieldError{"token_file", fmt.Errorf("%s is empty", c.TokenFile)}
		}
		user, pass, ok := strings.Cut(tok, ":")
		if !ok {
			user, pass = "rigger", tok
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case "ssh":
		if c.SSHKey == "" {
			return nil, &FieldError{"ssh_key", errors.New("required for an ssh remote")}
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, c.SSHKey, "")
		if err != nil {
			return nil, &FieldError{"ssh_key", err}
		}
		var files []string
		if c.KnownHosts != "" {
			files = []string{c.KnownHosts}
		}
		// Host keys are always checked against known_hosts: a deploy key
		// would otherwise be offered to whoever answers.
		cb, err := gitssh.NewKnownHostsCallback(files...)
		if err != nil {
			return nil, &FieldError{"known_hosts", err}
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	return nil, nil // file: local paths need no credentials
}

// Redact hides the password or token of a URL, for logs, errors and status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
