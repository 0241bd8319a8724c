package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/policy/pf"
)

// PfcheckOptions are the flags of bundler pfcheck.
type PfcheckOptions struct {
	Verbose bool
	Root    string // read absolute include and table paths under this directory
	Release string // FreeBSD release whose pfctl is emulated: 14 or 15
}

func newPfcheckCommand() *cobra.Command {
	var o PfcheckOptions
	cmd := &cobra.Command{
		Use:   "pfcheck [-v] FILE...",
		Short: "Check pf.conf files offline, like pfctl -nf",
		Long: `pfcheck parses each pf.conf as FreeBSD's pfctl -nf would, without a kernel
or root. Errors go to stderr as FILE:LINE: message (included files by their
own name and line). Names pfctl resolves when it loads the file (host
names, interfaces in addresses, users, groups) are reported as
FILE:LINE: warning: message and do not fail the check. Include and table files are read as named, relative to
the current directory, as pfctl does; with --root DIR, absolute names are
read under DIR instead (check a tree from bundler render: --root OUT
OUT/etc/pf.conf). With -v the parsed rules are printed to stdout in
pfctl -nvf's normalized form. --release 14|15 checks against that
release's pfctl (default: the newest supported, 15); syntax of the other
release is an error naming it ("af-to needs FreeBSD 15").

EXIT STATUS
  0  every file is valid
  1  an error was found in a file, or a file could not be read
  2  bad flags or arguments`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("pfcheck: at least one FILE is required")}
			}
			if o.Release != "" {
				if _, err := policy.ParseRelease(o.Release); err != nil {
					return usageError{fmt.Errorf("pfcheck: --release: %w", err)}
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPfcheck(o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&o.Verbose, "verbose", "v", false, "print the normalized rules (pfctl -nvf)")
	cmd.Flags().StringVar(&o.Root, "root", "", "directory that absolute include and table file names are read under")
	cmd.Flags().StringVar(&o.Release, "release", policy.DefaultRelease.String(), "FreeBSD release whose pfctl to emulate: 14 or 15")
	return cmd
}

// readFile reads include and table files, under Root when it is set.
func (o PfcheckOptions) readFile(name string) ([]byte, error) {
	if o.Root != "" && filepath.IsAbs(name) {
		return os.ReadFile(filepath.Join(o.Root, name))
	}
	return os.ReadFile(name)
}

func runPfcheck(o PfcheckOptions, files []string, stdout, stderr io.Writer) error {
	var rel policy.Release
	if o.Release != "" {
		var err error
		if rel, err = policy.ParseRelease(o.Release); err != nil {
			return usageError{fmt.Errorf("pfcheck: --release: %w", err)}
		}
	}
	failed := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			var pe *os.PathError
			msg := err.Error()
			if errors.As(err, &pe) {
				msg = pe.Err.Error()
			}
			fmt.Fprintf(stderr, "pfcheck: %s: %s\n", f, msg)
			failed++
			continue
		}
		rs, err := pf.Parse(f, src, pf.Options{ReadFile: o.readFile, Release: rel})
		if o.Verbose && rs != nil {
			fmt.Fprint(stdout, rs.Normalized())
		}
		if rs != nil {
			// names pfctl resolves on the host: they cannot fail offline
			for _, w := range rs.Warnings {
				fmt.Fprintf(stderr, "%s:%d: warning: %s\n", w.File, w.Line, w.Msg)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err.Error())
			failed++
		}
	}
	if failed > 0 {
		return silentError{fmt.Errorf("pfcheck: %d of %d file(s) failed", failed, len(files))}
	}
	return nil
}
