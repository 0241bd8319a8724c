package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/apply"
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
accepted one is published. Needs the state dir lock: stop "agent run" first.

EXIT STATUS
  0  rolled back and healthy
  1  failed; the host is on the generation it was on before
  5  degraded: the restore failed too`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRollback(cmd.Context(), g, o) },
	}
	cmd.Flags().Uint64Var(&o.to, "to", 0, "serial of the generation to restore (default: the previous one)")
	return cmd
}

func runRollback(ctx context.Context, g *globals, o rollbackOptions) error {
	a, closeFn, err := g.open()
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
			return &exitError{ExitDegraded, err}
		}
		return err
	}
	fmt.Fprintf(g.stdout, "rolled back to serial %d; pinned until a newer serial arrives\n", res.Serial)
	return nil
}
