package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/policy/pf"
)

// PfcheckOptions are the flags of bundler pfcheck.
type PfcheckOptions struct {
	Verbose bool
	Root    string // read absolute include and table paths under this directory
}

func newPfcheckCommand() *cobra.Command {
	var o PfcheckOptions
	cmd := &cobra.Command{
		Use:   "pfcheck [-v] FILE...",
		Short: "Check pf.conf files offline, like pfctl -nf",
		Long: `pfcheck parses each pf.conf as FreeBSD's pfctl -nf would, without a kernel
or root. Errors go to stderr as FILE:LINE: message (included files by their
own name and line). Include and table files are read as named, relative to
the current directory, as pfctl does; with --root DIR, absolute names are
read under DIR instead (check a tree from bundler render: --root OUT
OUT/etc/pf.conf). With -v the parsed rules are printed to stdout in
pfctl -nvf's normalized form.

EXIT STATUS
  0  every file is valid
  1  an error was found in a file, or a file could not be read
  2  bad flags or arguments`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("pfcheck: at least one FILE is required")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPfcheck(o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&o.Verbose, "verbose", "v", false, "print the normalized rules (pfctl -nvf)")
	cmd.Flags().StringVar(&o.Root, "root", "", "directory that absolute include and table file names are read under")
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
		rs, err := pf.Parse(f, src, pf.Options{ReadFile: o.readFile})
		if o.Verbose && rs != nil {
			fmt.Fprint(stdout, rs.Normalized())
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
