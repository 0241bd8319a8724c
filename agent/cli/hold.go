package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
)

type holdOptions struct {
	dur    time.Duration
	durSet bool // --for given: 0 would otherwise read as "until resume"
	reason string
}

func newHoldCommand(g *globals) *cobra.Command {
	var o holdOptions
	cmd := &cobra.Command{
		Use:   "hold",
		Short: "Stop applying new bundles (polls and status go on)",
		Long: `hold stops applies until "agent resume", or for --for D. A running agent
sees it on its next poll; an install in progress finishes.

` + exitStatus("held", "  1  bad config, or the state dir cannot be written"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.durSet = cmd.Flags().Changed("for")
			return runHold(g, o)
		},
	}
	cmd.Flags().DurationVar(&o.dur, "for", 0, "hold for this long (default: until resume)")
	cmd.Flags().StringVar(&o.reason, "reason", "operator hold", "why, shown in status")
	return cmd
}

func runHold(g *globals, o holdOptions) error {
	if o.dur < 0 || o.durSet && o.dur == 0 {
		return usageError("hold: --for %s: must be positive", o.dur)
	}
	cfg, _, err := g.load()
	if err != nil {
		return err
	}
	store := agent.Store{Dir: cfg.StateDir}
	if err := store.Init(); err != nil {
		return err
	}
	now := time.Now().UTC()
	h := agent.Hold{Since: now, Reason: o.reason}
	if o.dur > 0 {
		h.Until = now.Add(o.dur)
	}
	if err := store.SetHold(h); err != nil {
		return err
	}
	if h.Until.IsZero() {
		fmt.Fprintln(g.stdout, "held until agent resume")
	} else {
		fmt.Fprintf(g.stdout, "held until %s\n", h.Until.Format(time.RFC3339))
	}
	return nil
}

func newResumeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume",
		Short: "Lift a hold (also the one a degraded agent sets)",
		Long: `resume lifts a hold set by "agent hold" or by a degraded agent; the next
poll applies again.

` + exitStatus("resumed, or was not held", "  1  bad config, or the state dir cannot be written"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := g.load()
			if err != nil {
				return err
			}
			store := agent.Store{Dir: cfg.StateDir}
			h, err := store.Hold()
			if err != nil {
				return err
			}
			if err := store.ClearHold(); err != nil {
				return err
			}
			if h == nil {
				fmt.Fprintln(g.stdout, "not held")
			} else {
				fmt.Fprintf(g.stdout, "resumed (was: %s)\n", h.Reason)
			}
			return nil
		},
	}
}
