// Package cli is the bundler command line: one file per command, each a
// constructor returning a cobra command whose RunE forwards to a plain
// function that tests can call.
package cli

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/bundler/clicontract"
)

// Exit codes of the bundler; each command's help lists the ones it uses.
const (
	ExitOK       = clicontract.ExitOK
	ExitFail     = clicontract.ExitFail  // a check found problems, a command failed, a file could not be read
	ExitUsage    = clicontract.ExitUsage // bad flags, arguments or command
	ExitRejected = 3                     // verify: the bundle was read and is rejected (as the agent's exit 3)
)

// usageError marks errors in the command line itself (exit 2).
type usageError struct{ error }

func (usageError) ExitCode() int   { return ExitUsage }
func (e usageError) Unwrap() error { return e.error }

// silentError is returned by commands that already printed their findings
// and only need the exit code to say so.
type silentError struct{ error }

func (silentError) Silent() bool    { return true }
func (e silentError) Unwrap() error { return e.error }

// Main runs the bundler with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return clicontract.Run(ctx, newRootCommand(stdout, stderr), args, stderr, nil)
}

// exitStatus is the EXIT STATUS section of a command's help: ok says what
// 0 means, fail what 1 means; 2 is always there, then the extra lines.
func exitStatus(ok, fail string, extra ...string) string {
	lines := []string{"EXIT STATUS", "  0  " + ok, "  1  " + fail, clicontract.UsageLine}
	return strings.Join(append(lines, extra...), "\n")
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "bundler",
		Short: "Compile an infra repo into signed per-host bundles",
		Long: `bundler compiles an infra repo (hosts, jails, links, tunnels, pf) into one
signed, zstd-compressed bundle per host, and publishes the bundles to git.

` + exitStatus("success", "problems found, or the command failed",
			"  3  verify: the bundle was read and is rejected"),
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
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
