package cli

import (
	"context"
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
)

func newPlanCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "Fetch and verify the published bundle and show what applying it would change",
		Long: `plan fetches the branch head into memory, verifies this host's bundle against
the pinned keys and the last accepted serial, and prints the file diff and the
units that would be activated, in order. It changes nothing on the host and
works while "agent run" is active.

` + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd.Context(), g) },
	}
}

func runPlan(ctx context.Context, g *globals) error {
	cfg, log, err := g.load()
	if err != nil {
		return err
	}
	a, err := agent.Open(cfg, agent.Options{Logger: log})
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.Plan(ctx)
	if err != nil {
		return exitFor(planOutcome(err), err)
	}
	w := g.stdout
	if res.UpToDate {
		fmt.Fprintf(w, "up to date: commit %s carries the applied bundle\n", res.Commit)
		return nil
	}
	m := res.Bundle.Manifest
	fmt.Fprintf(w, "serial %d from %s (commit %s), signed by %d key(s)\n", m.Serial, m.Source.Repo, m.Source.Commit, len(res.Bundle.Signers))
	if !m.NotBefore.IsZero() {
		fmt.Fprintf(w, "not before %s\n", m.NotBefore.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if len(res.Plan.Changes) == 0 {
		fmt.Fprintln(w, "no file changes")
	}
	for _, c := range res.Plan.Changes {
		fmt.Fprintf(w, "%s %s\n", c.Op, c.Path)
		if c.Op == "meta" {
			continue
		}
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(c.Old)), B: difflib.SplitLines(string(c.New)),
			FromFile: "current" + c.Path, ToFile: "bundle" + c.Path, Context: 3,
		})
		fmt.Fprint(w, d)
	}
	if lp := res.Plan.Live; lp != nil && (len(lp.Steps) > 0 || len(lp.Reboot) > 0) {
		fmt.Fprintln(w, "live host steps, in order:")
		for _, l := range lp.Lines() {
			fmt.Fprintln(w, l)
		}
	}
	if len(res.Plan.Units) == 0 {
		fmt.Fprintln(w, "units: none")
	}
	for i, u := range res.Plan.Units {
		fmt.Fprintf(w, "unit %d: %s\n", i+1, u)
	}
	if res.Plan.Reboot {
		fmt.Fprintln(w, "reboot required: a loader file changes")
	}
	return nil
}

// planOutcome classifies a plan failure like a poll outcome, so plan
// exits 3 for a bundle that would be rejected.
func planOutcome(err error) agent.Outcome {
	if isReject(err) {
		return agent.OutcomeRejected
	}
	return agent.OutcomeError
}
