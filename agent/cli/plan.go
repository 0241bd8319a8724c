package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/verify"
)

type planOptions struct{ json bool }

func newPlanCommand(g *globals) *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Fetch and verify the published bundle and show what applying it would change",
		Long: `plan fetches the branch head into memory, verifies this host's bundle against
the pinned keys and the last accepted serial, and prints the file diff and the
units that would be activated, in order. It changes nothing on the host and
works while "agent run" is active. --json prints the same as one object
(planJSON in agent/cli/plan.go).

` + exitStatus("planned, or up to date", exitLineError, "  3  the bundle would be rejected (signature, host, serial, expiry)"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd.Context(), g, o) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// planJSON is the --json form of a plan; fields are only ever added.
type planJSON struct {
	UpToDate      bool          `json:"up_to_date"`
	Commit        string        `json:"commit"` // bundles branch head
	Serial        uint64        `json:"serial,omitempty"`
	Source        verify.Source `json:"source,omitzero"`
	Signers       []string      `json:"signers"`
	NotBefore     time.Time     `json:"not_before,omitzero"`
	Changes       []planChange  `json:"changes"`
	Live          []string      `json:"live"`  // live host steps (no reboot), in order
	Units         []string      `json:"units"` // in activation order
	Reboot        bool          `json:"reboot_required"`
	RebootReasons []string      `json:"reboot_reasons"`
}

type planChange struct {
	Op   string `json:"op"` // add, modify, remove, meta
	Path string `json:"path"`
	Diff string `json:"diff,omitempty"` // unified diff, current → bundle
}

func runPlan(ctx context.Context, g *globals, o planOptions) error {
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
	p := toPlanJSON(res)
	if o.json {
		return clicontract.JSON(g.stdout, p)
	}
	writePlan(g.stdout, p)
	return nil
}

func toPlanJSON(res *agent.PlanResult) planJSON {
	p := planJSON{UpToDate: res.UpToDate, Commit: res.Commit, Signers: []string{}, Changes: []planChange{}, Live: []string{}, Units: []string{}, RebootReasons: []string{}}
	if res.UpToDate {
		return p
	}
	m := res.Bundle.Manifest
	p.Serial, p.Source, p.NotBefore = m.Serial, m.Source, m.NotBefore
	p.Signers = append(p.Signers, res.Bundle.Signers...)
	for _, c := range res.Plan.Changes {
		pc := planChange{Op: c.Op, Path: c.Path}
		if c.Op != "meta" {
			pc.Diff, _ = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: lines(c.Old), B: lines(c.New),
				FromFile: "current" + c.Path, ToFile: "bundle" + c.Path, Context: 3,
			})
		}
		p.Changes = append(p.Changes, pc)
	}
	if lp := res.Plan.Live; lp != nil && (len(lp.Steps) > 0 || len(lp.Reboot) > 0) {
		p.Live = append(p.Live, lp.Lines()...)
	}
	for _, u := range res.Plan.Units {
		p.Units = append(p.Units, u.String())
	}
	p.Reboot = res.Plan.Reboot
	p.RebootReasons = append(p.RebootReasons, res.Plan.RebootReasons...)
	return p
}

func writePlan(w io.Writer, p planJSON) {
	if p.UpToDate {
		fmt.Fprintf(w, "up to date: commit %s carries the applied bundle\n", p.Commit)
		return
	}
	fmt.Fprintf(w, "serial %d, %s, signed by %d key(s)\n", p.Serial, sourceText(p.Source, p.Commit), len(p.Signers))
	if !p.NotBefore.IsZero() {
		fmt.Fprintf(w, "not before %s\n", p.NotBefore.UTC().Format(time.RFC3339))
	}
	if len(p.Changes) == 0 {
		fmt.Fprintln(w, "no file changes")
	}
	for _, c := range p.Changes {
		fmt.Fprintf(w, "%s %s\n", c.Op, c.Path)
		fmt.Fprint(w, c.Diff)
	}
	if len(p.Live) > 0 {
		fmt.Fprintln(w, "live host steps, in order:")
		for _, l := range p.Live {
			fmt.Fprintln(w, l)
		}
	}
	if len(p.Units) == 0 {
		fmt.Fprintln(w, "units: none")
	}
	for i, u := range p.Units {
		fmt.Fprintf(w, "unit %d: %s\n", i+1, u)
	}
	for _, r := range p.RebootReasons {
		fmt.Fprintf(w, "reboot required: %s\n", r)
	}
	if p.Reboot && len(p.RebootReasons) == 0 {
		fmt.Fprintln(w, "reboot required")
	}
}

// lines splits b after each newline; an empty file has no lines (not one
// empty line, which the diff would print as context).
func lines(b []byte) []string {
	l := strings.SplitAfter(string(b), "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// sourceText says where a bundle comes from without empty fields: the
// infra repo commit and URL when the manifest has them, else the bundles
// branch commit.
func sourceText(s verify.Source, bundlesCommit string) string {
	var parts []string
	if s.Commit != "" {
		c := "infra commit " + s.Commit
		if s.Dirty {
			c += " (dirty)"
		}
		parts = append(parts, c)
	}
	if s.Repo != "" {
		parts = append(parts, "from "+s.Repo)
	}
	if len(parts) == 0 {
		parts = append(parts, "no source recorded")
	}
	return strings.Join(parts, " ") + ", bundles commit " + bundlesCommit
}

// planOutcome classifies a plan failure like a poll outcome, so plan
// exits 3 for a bundle that would be rejected.
func planOutcome(err error) agent.Outcome {
	if isReject(err) {
		return agent.OutcomeRejected
	}
	return agent.OutcomeError
}
