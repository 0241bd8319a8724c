package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newPublishCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "publish",
		RunE: func(*cobra.Command, []string) error { return errors.New("publish: not implemented yet") },
	}
}
