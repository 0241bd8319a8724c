package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(stub): replaced by the owner of this command.
func newRenderCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "render",
		RunE: func(*cobra.Command, []string) error { return errors.New("render: not implemented yet") },
	}
}
