package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "keygen",
		RunE: func(*cobra.Command, []string) error { return errors.New("keygen: not implemented yet") },
	}
}
