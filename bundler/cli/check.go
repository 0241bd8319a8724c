package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy/lint"
)

// CheckOptions are the flags of bundler check.
type CheckOptions struct {
	Repo string
	JSON bool
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
--json prints the same as one object.

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
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// checkJSON is the --json form of check; fields are only ever added.
type checkJSON struct {
	OK       bool        `json:"ok"`
	Problems []string    `json:"problems"` // FILE:LINE: message; the repo did not load
	Warnings []string    `json:"warnings"`
	Hosts    []checkHost `json:"hosts"`
}

type checkHost struct {
	Host     string         `json:"host"`
	Files    int            `json:"files"`
	Health   int            `json:"health_checks"`
	Wave     string         `json:"wave"`
	Needs    []string       `json:"needs"` // secrets the host must already have
	Findings []checkFinding `json:"findings"`
}

type checkFinding struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

func runCheck(_ context.Context, o CheckOptions, stdout, stderr io.Writer) error {
	rep, err := checkRepo(o)
	if o.JSON {
		if jerr := clicontract.JSON(stdout, rep); jerr != nil {
			return jerr
		}
	} else {
		writeCheck(stdout, rep)
	}
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(stderr, "bundler: check: %d problem(s) in %s\n", len(rep.Problems), o.Repo)
		return silentError{fmt.Errorf("%d problems", len(rep.Problems))}
	}
	failed := 0
	for _, h := range rep.Hosts {
		for _, f := range h.Findings {
			if f.Severity == string(lint.Error) {
				failed++
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "bundler: check: %d lint error(s) in %s\n", failed, o.Repo)
		return silentError{fmt.Errorf("%d lint errors", failed)}
	}
	return nil
}

// checkRepo loads, renders and lints; problems that stop the load are in
// the report, other failures are the error.
func checkRepo(o CheckOptions) (checkJSON, error) {
	rep := checkJSON{Problems: []string{}, Warnings: []string{}, Hosts: []checkHost{}}
	repo, err := topology.Load(o.Repo)
	if err != nil {
		var ps topology.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				rep.Problems = append(rep.Problems, p.String())
			}
			return rep, nil
		}
		return rep, fmt.Errorf("check: %w", err)
	}
	for _, w := range repo.Warnings() {
		rep.Warnings = append(rep.Warnings, w.String())
	}
	for _, h := range repo.Hosts() {
		hr, err := repo.Render(h)
		if err != nil {
			return rep, fmt.Errorf("check: %w", err)
		}
		ch := checkHost{Host: h, Files: len(hr.Files), Health: len(hr.Health), Wave: hr.Wave.String(),
			Needs: append([]string{}, hr.Secrets...), Findings: []checkFinding{}}
		for _, f := range lint.Host(hr.Contents(), lint.Options{TunnelPorts: hr.TunnelPorts, FleetTunnelPorts: hr.FleetTunnelPorts, Release: hr.Release}) {
			ch.Findings = append(ch.Findings, checkFinding{File: f.File, Line: f.Line, Severity: string(f.Severity), Message: f.Msg})
		}
		rep.Hosts = append(rep.Hosts, ch)
	}
	rep.OK = true
	for _, h := range rep.Hosts {
		for _, f := range h.Findings {
			rep.OK = rep.OK && f.Severity != string(lint.Error)
		}
	}
	return rep, nil
}

func writeCheck(w io.Writer, rep checkJSON) {
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p)
	}
	for _, p := range rep.Warnings {
		fmt.Fprintln(w, p)
	}
	for _, h := range rep.Hosts {
		for _, f := range h.Findings {
			fmt.Fprintf(w, "%s: %s:%d: %s: %s\n", h.Host, f.File, f.Line, f.Severity, f.Message)
		}
		secrets := "none"
		if len(h.Needs) > 0 {
			secrets = strings.Join(h.Needs, " ")
		}
		fmt.Fprintf(w, "%s: %d files, %d health checks, wave %s, needs: %s\n", h.Host, h.Files, h.Health, h.Wave, secrets)
	}
}
