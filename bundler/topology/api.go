// Package topology loads an infra repo, validates it and renders each
// host's files. Rendering is a pure function of the repo content.
package topology

import (
	"fmt"
	"io/fs"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/verify"
)

// CONTRACT (shared with the bundle builder and the CLI): the names and
// signatures in this file are used by other packages. The bodies are stubs
// until the topology compiler lands.

// Repo is a loaded and validated infra repo.
type Repo struct {
	Dir string

	fsys  fs.FS
	file  *File
	pos   *positions
	hosts map[string]*host
	names []string
	tmpls map[string]*repoTemplate
	// sources caches repo files read verbatim; sourcesMu guards it (hosts
	// render concurrently).
	sources   map[string][]byte
	sourcesMu sync.Mutex
	renders   map[string]*HostRender
	warns     Problems
	// dangling: some pipe did not resolve or targets no listener; that
	// problem is reported, and "no client" reports would only echo it.
	dangling atomic.Bool
	// fleetPorts are every host's tunnel ports (HostRender.FleetTunnelPorts).
	fleetPorts []int
	// defaultPathsOK holds the targets policy.DefaultPaths accepts, and
	// agentRootsOK a set of accepted targets per list of agent roots
	// (checkPath, pathsOK).
	defaultPathsOK sync.Map
	agentRootsOK   sync.Map
	opts           Options
	// sizes are the sizes of the files each render wrote last.
	sizes struct{ hostRC, jailConf, jailRC, wgConf, jailList, sysctl, loader sizeHint }
}

// Warnings are the problems found that do not stop the repo from loading
// (a gateway no host or network of the topology holds, ...).
func (r *Repo) Warnings() Problems { return append(Problems(nil), r.warns...) }

// HostRender is everything the bundler needs to pack one host's bundle.
type HostRender struct {
	Host  string
	Files []RenderedFile // sorted by Path
	// Health checks the agent runs after applying.
	Health []verify.Check
	// Release is the host's FreeBSD release (host, role, fleet default,
	// else policy.DefaultRelease): the checkers accept what it accepts.
	Release policy.Release
	// Wave is the rollout delay of this host: not_before = created + Wave.
	Wave time.Duration
	// Gate names the hosts (earlier waves) that must report this host's
	// commit healthy for Bake before it applies; ReportKeys has their
	// status keys (PEM) by host name.
	Gate       []string
	Bake       time.Duration
	ReportKeys map[string]string
	// ReportKey is this host's own status key (PEM), "" without one.
	ReportKey string
	// Secrets are host files the rendered config relies on (key paths).
	Secrets []string
	// NetifRestart lists interfaces the agent may restart one by one.
	NetifRestart []string
	// Desc is the host's kernel-level configuration as rc.conf sets it at
	// boot, for the agent's live plan (manifest host_desc). Read-only.
	Desc *hostdesc.Host
	// TunnelPorts are the ports of spiped tunnels crossing hosts that pf
	// must pass (for lint.Options).
	TunnelPorts []int
	// Paths is the path policy of the host's agent (policy.DefaultPaths
	// plus the host's agent_roots): every file is inside it, and the
	// bundle builder checks the manifest against it.
	Paths policy.Paths
	// FleetTunnelPorts are the tunnel ports of every host: a pf.conf that
	// passes one of them but not in TunnelPorts is stale (lint warns).
	FleetTunnelPorts []int
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

// Hosts returns the host names in sorted order.
func (r *Repo) Hosts() []string { return append([]string(nil), r.names...) }

// Render renders one host. The result is a pure function of the repo
// content; callers may modify it.
func (r *Repo) Render(host string) (*HostRender, error) {
	hr := r.renders[host]
	if hr == nil {
		return nil, fmt.Errorf("render: unknown host %q", host)
	}
	out := *hr
	out.Files = make([]RenderedFile, len(hr.Files))
	for i, f := range hr.Files {
		f.Content = append([]byte(nil), f.Content...)
		out.Files[i] = f
	}
	out.Health = append([]verify.Check(nil), hr.Health...)
	out.Secrets = append([]string(nil), hr.Secrets...)
	out.NetifRestart = append([]string(nil), hr.NetifRestart...)
	out.TunnelPorts = append([]int(nil), hr.TunnelPorts...)
	out.Gate = append([]string(nil), hr.Gate...)
	out.ReportKeys = maps.Clone(hr.ReportKeys)
	out.Paths.Roots = append([]string(nil), hr.Paths.Roots...)
	out.FleetTunnelPorts = append([]int(nil), hr.FleetTunnelPorts...)
	return &out, nil
}

// Rendered is host's render as Load made it, shared rather than copied:
// callers must not modify it (Render returns a copy they may modify). For
// readers of many hosts, such as the bundle builder, that would otherwise
// copy every file of the fleet once more.
func (r *Repo) Rendered(host string) (*HostRender, error) {
	hr := r.renders[host]
	if hr == nil {
		return nil, fmt.Errorf("render: unknown host %q", host)
	}
	return hr, nil
}

// Contents maps each target path to its content (the form the linters
// take: lint.Host).
func (h *HostRender) Contents() map[string][]byte {
	m := make(map[string][]byte, len(h.Files))
	for _, f := range h.Files {
		m[f.Path] = f.Content
	}
	return m
}

// File returns the rendered file at target path p, or nil.
func (h *HostRender) File(p string) *RenderedFile {
	for i := range h.Files {
		if h.Files[i].Path == p {
			return &h.Files[i]
		}
	}
	return nil
}
