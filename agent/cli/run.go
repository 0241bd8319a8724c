package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
)

func newRunCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Poll and apply until stopped",
		Long: `run polls the bundles branch every interval (with jitter; exponential backoff
after errors), applies new bundles when their not_before has come, and checks
drift on every poll. SIGHUP reloads the config; SIGTERM or SIGINT stops between
steps and never inside an install. One agent runs per state dir.

` + exitStatus("stopped by SIGTERM or SIGINT", "  1  could not start (bad config, state dir locked, I/O)"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRun(cmd.Context(), g) },
	}
}

// openStoppable opens the agent with a context that SIGTERM and SIGINT
// cancel; done releases both.
func openStoppable(ctx context.Context, g *globals) (a *agent.Agent, _ context.Context, done func(), err error) {
	a, closeFn, err := g.open()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	return a, ctx, func() { stop(); closeFn() }, nil
}

func runRun(ctx context.Context, g *globals) error {
	a, ctx, done, err := openStoppable(ctx, g)
	if err != nil {
		return err
	}
	defer done()
	reload := notify(ctx, syscall.SIGHUP)
	wake := notify(ctx, syscall.SIGUSR1)
	return a.Run(ctx, agent.RunOptions{
		Reload: reload,
		Wake:   wake,
		ReloadConfig: func() (*agent.Config, error) {
			return agent.LoadConfig(g.config, g.flags, os.Environ())
		},
	})
}

// notify turns a signal into a channel that holds at most one pending
// wake-up, until ctx ends.
func notify(ctx context.Context, sig os.Signal) <-chan struct{} {
	in := make(chan os.Signal, 1)
	signal.Notify(in, sig)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(in)
		for {
			select {
			case <-ctx.Done():
				return
			case <-in:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

func newOnceCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "once",
		Short: "Poll once, apply if there is something new, and exit",
		Long: `once does exactly one poll of run: recover an interrupted install, ask for the
branch head, fetch, verify, apply, check drift, write the status, exit.

` + onceExitStatus,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOnce(cmd.Context(), g) },
	}
}

func runOnce(ctx context.Context, g *globals) error {
	a, ctx, done, err := openStoppable(ctx, g)
	if err != nil {
		return err
	}
	defer done()
	if err := a.Recover(ctx); err != nil {
		return err
	}
	out, err := a.Poll(ctx)
	st := a.Status()
	line := string(out)
	if st.Current != nil {
		line += fmt.Sprintf(" (serial %d)", st.Current.Serial)
	}
	if st.Pending != nil && st.Pending.Reason == "not_before" {
		line += fmt.Sprintf("; serial %d waits until %s", st.Pending.Serial, st.Pending.NotBefore.Format("2006-01-02T15:04:05Z07:00"))
	}
	fmt.Fprintln(g.stdout, line)
	return exitFor(out, err)
}
