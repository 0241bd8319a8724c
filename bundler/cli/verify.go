package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "verify",
		RunE: func(*cobra.Command, []string) error { return errors.New("verify: not implemented yet") },
	}
}
