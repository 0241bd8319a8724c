// Package topology loads an infra repo, validates it and renders each
// host's files. Rendering is a pure function of the repo content.
package topology

import (
	"errors"
	"time"

	"github.com/rigger-bsd/rigger/verify"
)

// CONTRACT (shared with the bundle builder and the CLI): the names and
// signatures in this file are used by other packages. The bodies are stubs
// until the topology compiler lands.

// Repo is a loaded and validated infra repo.
type Repo struct {
	Dir string
}

// HostRender is everything the bundler needs to pack one host's bundle.
type HostRender struct {
	Host  string
	Files []RenderedFile // sorted by Path
	// Health checks the agent runs after applying.
	Health []verify.Check
	// Wave is the rollout delay of this host: not_before = created + Wave.
	Wave time.Duration
	// Secrets are host files the rendered config relies on (key paths).
	Secrets []string
	// NetifRestart lists interfaces the agent may restart one by one.
	NetifRestart []string
}

// RenderedFile is one target file with its metadata and contents.
type RenderedFile struct {
	Path    string // absolute target path
	Mode    verify.Mode
	Owner   string
	Group   string
	Unit    string // verify.ParseUnit syntax
	Content []byte
}

// Load reads, strictly decodes and validates the infra repo in dir. The
// error, if any, lists every problem found (see Problems).
func Load(dir string) (*Repo, error) {
	return nil, errors.New("topology: not implemented yet")
}

// Hosts returns the host names in sorted order.
func (r *Repo) Hosts() []string { return nil }

// Render renders one host.
func (r *Repo) Render(host string) (*HostRender, error) {
	return nil, errors.New("topology: not implemented yet")
}
