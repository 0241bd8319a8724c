package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newPfcheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "pfcheck",
		RunE: func(*cobra.Command, []string) error { return errors.New("pfcheck: not implemented yet") },
	}
}
