package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy/lint"
)

// CheckOptions are the flags of bundler check.
type CheckOptions struct {
	Repo string
}

func newCheckCommand() *cobra.Command {
	var o CheckOptions
	cmd := &cobra.Command{
		Use:   "check --repo DIR",
		Short: "Validate an infra repo and lint every host's rendered files",
		Long: `check loads the infra repo strictly, validates the topology, renders every
host and runs the offline linters on the result. Every problem is listed
(FILE:LINE: message, or HOST: FILE:LINE: severity: message for lint
findings); warnings do not fail the check. On success each host is listed
with the secrets it must already have (key files never in the repo).

EXIT STATUS
  0  no problems
  1  problems found
  2  bad flags or arguments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Repo == "" {
				return usageError{errors.New("check: --repo is required")}
			}
			return runCheck(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.Repo, "repo", "", "infra repo directory")
	return cmd
}

func runCheck(_ context.Context, o CheckOptions, stdout, stderr io.Writer) error {
	repo, err := topology.Load(o.Repo)
	if err != nil {
		var ps topology.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stdout, p.String())
			}
			fmt.Fprintf(stderr, "bundler: check: %d problem(s) in %s\n", len(ps), o.Repo)
			return silentError{err}
		}
		return fmt.Errorf("check: %w", err)
	}
	for _, w := range repo.Warnings() {
		fmt.Fprintln(stdout, w.String())
	}
	failed := 0
	for _, h := range repo.Hosts() {
		hr, err := repo.Render(h)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		errs := 0
		for _, f := range lint.Host(hr.Contents(), lint.Options{TunnelPorts: hr.TunnelPorts, FleetTunnelPorts: hr.FleetTunnelPorts, Release: hr.Release}) {
			fmt.Fprintf(stdout, "%s: %s:%d: %s: %s\n", h, f.File, f.Line, f.Severity, f.Msg)
			if f.Severity == lint.Error {
				errs++
			}
		}
		failed += errs
		secrets := "none"
		if len(hr.Secrets) > 0 {
			secrets = strings.Join(hr.Secrets, " ")
		}
		fmt.Fprintf(stdout, "%s: %d files, %d health checks, wave %s, needs: %s\n", h, len(hr.Files), len(hr.Health), hr.Wave, secrets)
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "bundler: check: %d lint error(s) in %s\n", failed, o.Repo)
		return silentError{fmt.Errorf("%d lint errors", failed)}
	}
	return nil
}
