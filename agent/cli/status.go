package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/bundler/clicontract"
)

type statusOptions struct{ json bool }

func newStatusCommand(g *globals) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what state this host is in and why",
		Long: `status reads the state dir without taking the lock, so it works while
"agent run" is active. --json prints the stable form documented on
agent.Status (schema 1).

` + exitStatus("printed", "  1  bad config, or the state dir cannot be read"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(g, o) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func runStatus(g *globals, o statusOptions) error {
	cfg, _, err := g.load()
	if err != nil {
		return err
	}
	now := time.Now()
	st, err := agent.ReadStatus(agent.Store{Dir: cfg.StateDir}, cfg.Host, now)
	if err != nil {
		return err
	}
	if o.json {
		return clicontract.JSON(g.stdout, st)
	}
	return st.WriteText(g.stdout, now)
}
