package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newBuildCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "build",
		RunE: func(*cobra.Command, []string) error { return errors.New("build: not implemented yet") },
	}
}
