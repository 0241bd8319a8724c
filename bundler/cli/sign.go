package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newSignCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "sign",
		RunE: func(*cobra.Command, []string) error { return errors.New("sign: not implemented yet") },
	}
}
