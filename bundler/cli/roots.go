package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy"
)

// rootsOptions say which path policy a command that judges a bundle's
// paths (verify, sign) applies: the host agent's. The agent judges with
// its own config, so the roots come from the topology that states it
// (--repo) or from the operator (--root), never from the bundle.
type rootsOptions struct {
	Repo  string
	Roots []string
}

func (o *rootsOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "repo", "", "infra repo: judge paths by the host's agent_roots in its topology")
	f.StringArrayVar(&o.Roots, "root", nil, "an extra root the host's agent allows (its policy.roots; repeatable)")
}

func (o *rootsOptions) validate(cmd string) error {
	if o.Repo != "" && len(o.Roots) > 0 {
		return usageError{fmt.Errorf("%s: --repo and --root exclude each other (the topology states the host's roots)", cmd)}
	}
	for _, r := range o.Roots {
		if err := policy.CheckRoot(r); err != nil {
			return usageError{fmt.Errorf("%s: --root: %w", cmd, err)}
		}
	}
	return nil
}

// pathsOf returns a function giving the path policy of a host: the
// defaults plus --root, or what the topology at --repo says the host's
// agent allows (an unknown host is an error). The repo is loaded once.
func (o *rootsOptions) pathsOf(stderr io.Writer) (func(host string) (policy.Paths, error), error) {
	if o.Repo == "" {
		p, err := policy.WithRoots(o.Roots)
		return func(string) (policy.Paths, error) { return p, err }, nil
	}
	repo, err := loadTopology(o.Repo, stderr)
	if err != nil {
		return nil, err
	}
	return func(host string) (policy.Paths, error) { return hostPaths(repo, host) }, nil
}

// hostPaths is the path policy the topology states for host's agent.
func hostPaths(repo *topology.Repo, host string) (policy.Paths, error) {
	r, err := repo.Render(host)
	if err != nil {
		return policy.Paths{}, errors.New("host " + host + " is not in the topology at " + repo.Dir)
	}
	return r.Paths, nil
}
