package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newDiffCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "diff",
		RunE: func(*cobra.Command, []string) error { return errors.New("diff: not implemented yet") },
	}
}
