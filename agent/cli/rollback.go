package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/agent"
	"github.com/rigger-bsd/rigger/apply"
	"github.com/rigger-bsd/rigger/bundler/clicontract"
)

type rollbackOptions struct{ to uint64 }

func newRollbackCommand(g *globals) *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Reinstall a kept generation and pin it until a newer serial arrives",
		Long: `rollback puts a kept generation back through the same install, activate and
health path as an apply (default: the one before the current; --to SERIAL
picks one). The host stays on it until a bundle with a serial above the last
accepted one is published. When "agent run" holds the state dir, the
rollback is handed to it (request.json and SIGUSR1) and this command waits
for its answer.

` + exitStatus("rolled back and healthy", "  1  failed; the host is on the generation it was on before", exitLineDegraded),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRollback(cmd.Context(), g, o) },
	}
	cmd.Flags().Uint64Var(&o.to, "to", 0, "serial of the generation to restore (default: the previous one)")
	return cmd
}

func runRollback(ctx context.Context, g *globals, o rollbackOptions) error {
	a, closeFn, err := g.open()
	var le *agent.LockedError
	if errors.As(err, &le) && le.PID > 0 {
		return rollbackViaRunningAgent(ctx, g, o, le.PID)
	}
	if err != nil {
		return err
	}
	defer closeFn()
	if err := a.Recover(ctx); err != nil {
		return err
	}
	res, err := a.Rollback(ctx, o.to)
	if err != nil {
		var dg *apply.DegradedError
		if errors.As(err, &dg) {
			return clicontract.Exit(ExitDegraded, err)
		}
		return err
	}
	fmt.Fprintf(g.stdout, "rolled back to serial %d; pinned until a newer serial arrives\n", res.Serial)
	return nil
}

// rollbackViaRunningAgent hands the rollback to the agent that holds the
// lock (request.json + SIGUSR1) and waits for its answer.
func rollbackViaRunningAgent(ctx context.Context, g *globals, o rollbackOptions, pid int) error {
	cfg, _, err := g.load()
	if err != nil {
		return err
	}
	store := agent.Store{Dir: cfg.StateDir}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	if err := store.Submit(agent.Request{ID: id, Op: "rollback", To: o.to, At: time.Now().UTC()}); err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("wake the running agent (pid %d): %w", pid, err)
	}
	// The agent finishes a poll in progress first; then the rollback
	// itself runs activation and health checks.
	deadline := time.Now().Add(2*cfg.Source.Timeout + 2*cfg.Health.Timeout + time.Minute)
	for time.Now().Before(deadline) {
		resp, err := store.Response(id)
		if err != nil {
			return err
		}
		if resp != nil {
			if !resp.OK {
				return fmt.Errorf("running agent (pid %d): %s", pid, resp.Error)
			}
			fmt.Fprintf(g.stdout, "rolled back to serial %d by the running agent (pid %d); pinned until a newer serial arrives\n", resp.Serial, pid)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("running agent (pid %d) did not answer the rollback request in time; see agent status", pid)
}
