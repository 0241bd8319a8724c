// Package cli is the bundler command line: one file per command, each a
// constructor returning a cobra command whose RunE forwards to a plain
// function that tests can call.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes of the bundler (documented in the root command's help).
const (
	ExitOK    = 0
	ExitFail  = 1 // a check found problems, verification failed, a command failed
	ExitUsage = 2 // bad flags or arguments
)

// usageError marks errors in the command line itself.
type usageError struct{ error }

// Main runs the bundler with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "bundler: %v\n", err)
		return ExitUsage
	}
	var se silentError
	if !errors.As(err, &se) {
		fmt.Fprintf(stderr, "bundler: %v\n", err)
	}
	return ExitFail
}

// silentError is returned by commands that already printed their findings
// and only need the exit code to say so.
type silentError struct{ error }

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "bundler",
		Short: "Compile an infra repo into signed per-host bundles",
		Long: `bundler compiles an infra repo (hosts, jails, links, tunnels, pf) into one
signed, zstd-compressed bundle per host, and publishes the bundles to git.

EXIT STATUS
  0  success
  1  problems found, verification failed, or the command failed
  2  bad flags or arguments`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCheckCommand(),
		newRenderCommand(),
		newBuildCommand(),
		newSignCommand(),
		newVerifyCommand(),
		newKeygenCommand(),
		newPublishCommand(),
		newDiffCommand(),
		newPfcheckCommand(),
		newStatusCommand(),
		newWaitCommand(),
	)
	return root
}
