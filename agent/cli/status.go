package cli

import (
	"encoding/json"
	"time"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
)

type statusOptions struct{ json bool }

func newStatusCommand(g *globals) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what state this host is in and why",
		Long: `status reads the state dir without taking the lock, so it works while
"agent run" is active. --json prints the stable form documented on
agent.Status (schema 1).`,
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
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return st.WriteText(g.stdout, now)
}
