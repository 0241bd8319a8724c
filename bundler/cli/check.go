package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "check",
		RunE: func(*cobra.Command, []string) error { return errors.New("check: not implemented yet") },
	}
}
