// Package clicontract is the command-line contract that agent and bundler
// share (README, "Command-line contract"): exit 2 for every usage error,
// "PROG: error: …" then "PROG: hint: …" lines on stderr, a "version"
// command, and --json output through one encoder.
//
// It lives under bundler/ only because the layering of DESIGN.md lets the
// agent import bundler packages and not the reverse; like bundler/gitauth
// it imports nothing of ours (cmd/layering_test.go holds that).
package clicontract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes both binaries share; each binary adds its own from 3 up.
const (
	ExitOK    = 0
	ExitFail  = 1 // the command failed; the error says why
	ExitUsage = 2 // bad flags or arguments, unknown command
)

// UsageLine is the EXIT STATUS line for ExitUsage, word for word in every
// command's help.
const UsageLine = "  2  bad flags or arguments"

// UsageError marks a mistake in the command line itself (exit 2). Cmd,
// when set, is the command path whose --help the hint points to.
type UsageError struct {
	Err error
	Cmd string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
func (e *UsageError) ExitCode() int { return ExitUsage }

// Usagef returns a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// ExitError carries the exit code a command chose.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }
func (e *ExitError) ExitCode() int { return e.Code }

// Coder is what Run asks an error for its exit code; UsageError and
// ExitError implement it, and so may a command's own error types.
type Coder interface{ ExitCode() int }

// Silencer marks an error whose message was already printed (SilentError
// implements it).
type Silencer interface{ Silent() bool }

// Exit returns err with exit code code (nil stays nil).
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{code, err}
}

// SilentError is returned by a command that already printed its findings
// and only needs the exit code to say so.
type SilentError struct{ Err error }

func (e *SilentError) Error() string { return e.Err.Error() }
func (e *SilentError) Unwrap() error { return e.Err }
func (e *SilentError) Silent() bool  { return true }

// hintError adds next steps to an error.
type hintError struct {
	err   error
	hints []string
}

func (e *hintError) Error() string   { return e.err.Error() }
func (e *hintError) Unwrap() error   { return e.err }
func (e *hintError) Hints() []string { return e.hints }

// WithHint attaches next steps to err, printed as "PROG: hint: …" lines
// after the error (nil stays nil).
func WithHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &hintError{err, hints}
}

// Hints collects the hints along err's chain, outermost first.
func Hints(err error) []string {
	var out []string
	for err != nil {
		if h, ok := err.(interface{ Hints() []string }); ok {
			out = append(out, h.Hints()...)
		}
		err = errors.Unwrap(err)
	}
	return out
}

// Run executes root with args and returns the exit code, after printing
// the error and its hints to stderr with prog's prefix. It enforces the
// contract on the whole command tree: silenced cobra messages, usage
// errors for bad flags, arguments and unknown commands, and a "version"
// command. code maps errors the contract does not know (nil: ExitFail).
func Run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, code func(error) int) int {
	prog := root.Name()
	Prepare(root)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	c := ExitFail
	var ue *UsageError
	errors.As(err, &ue)
	var coder Coder
	switch {
	case errors.As(err, &coder):
		c = coder.ExitCode()
	case code != nil:
		c = code(err)
	}
	var si Silencer
	if !errors.As(err, &si) || !si.Silent() {
		fmt.Fprintf(stderr, "%s: error: %v\n", prog, err)
	}
	for _, h := range Hints(err) {
		fmt.Fprintf(stderr, "%s: hint: %s\n", prog, h)
	}
	if c == ExitUsage && len(Hints(err)) == 0 {
		path := prog
		if ue != nil && ue.Cmd != "" {
			path = ue.Cmd
		}
		fmt.Fprintf(stderr, "%s: hint: %q lists the arguments and flags\n", prog, path+" --help")
	}
	return c
}

// Prepare applies the contract to root and every command below it; Run
// calls it, tests that inspect the tree call it too.
func Prepare(root *cobra.Command) {
	if root.Annotations["clicontract"] == "prepared" {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations["clicontract"] = "prepared"
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &UsageError{err, cmd.CommandPath()} })
	root.AddCommand(newVersionCommand(root.Name()))
	// A root without a command prints its help and exits 2; an unknown
	// command is a usage error naming the commands that exist.
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return &UsageError{fmt.Errorf("unknown command %q; commands: %s", args[0], strings.Join(names, ", ")), ""}
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Help()
		return &SilentError{&UsageError{errors.New("no command given"), ""}}
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root && c.Args != nil {
			check := c.Args
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					if c := Coder(nil); errors.As(err, &c) {
						return err // the command classified it already
					}
					if cmd.Args != nil && len(args) > 0 && strings.HasPrefix(err.Error(), "unknown command") {
						// cobra.NoArgs' wording reads like a typo in a command name.
						err = fmt.Errorf("takes no arguments, got %q", args[0])
					}
					return &UsageError{fmt.Errorf("%s: %w", cmd.Name(), err), cmd.CommandPath()}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// Version is "PROG MODULE-VERSION (commit REV[, modified])" from the build
// info the Go toolchain stamps into every binary.
func Version(prog string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return prog + " (no build info)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s%s, %s)", prog, v, rev, modified, bi.GoVersion)
}

func newVersionCommand(prog string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version and commit this binary was built from",
		Long: `version prints the module version and the commit this binary was built from
(from the Go build info), and the Go version.

EXIT STATUS
  0  printed
` + UsageLine,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), Version(prog))
			return err
		},
	}
}

// JSON writes v as indented JSON: the one encoder behind every --json.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
