package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/bundler/topology"
)

// RenderOptions are the flags of bundler render.
type RenderOptions struct {
	Repo string
	Host string
	Out  string
	List bool
}

func newRenderCommand() *cobra.Command {
	var o RenderOptions
	cmd := &cobra.Command{
		Use:   "render --repo DIR --host H (--out DIR | --list)",
		Short: "Render one host's files into a directory, target paths kept",
		Long: `render writes the files of one host under --out with their target paths
kept (OUT/etc/rc.conf, OUT/jails/pg_j/etc/rc.conf, ...). --list prints each
file with its mode, owner, group and activation unit instead (or as well).

EXIT STATUS
  0  rendered
  1  the repo has problems (as bundler check lists them) or writing failed
  2  bad flags or arguments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Repo == "" || o.Host == "" || (o.Out == "" && !o.List) {
				return usageError{errors.New("render: --repo, --host and --out or --list are required")}
			}
			return runRender(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Repo, "repo", "", "infra repo directory")
	f.StringVar(&o.Host, "host", "", "host to render")
	f.StringVar(&o.Out, "out", "", "directory to write the host's tree into")
	f.BoolVar(&o.List, "list", false, "list files with mode, owner, group and unit")
	return cmd
}

func runRender(_ context.Context, o RenderOptions, stdout, stderr io.Writer) error {
	repo, err := topology.Load(o.Repo)
	if err != nil {
		var ps topology.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stderr, p.String())
			}
			return fmt.Errorf("render: %d problem(s) in %s", len(ps), o.Repo)
		}
		return fmt.Errorf("render: %w", err)
	}
	hr, err := repo.Render(o.Host)
	if err != nil {
		return err
	}
	if o.List {
		tw := tabwriter.NewWriter(stdout, 0, 8, 1, ' ', 0)
		for _, f := range hr.Files {
			fmt.Fprintf(tw, "%04o\t%s:%s\t%s\t%s\n", uint32(f.Mode), f.Owner, f.Group, f.Unit, f.Path)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if o.Out == "" {
		return nil
	}
	for _, f := range hr.Files {
		dst := filepath.Join(o.Out, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		if err := os.WriteFile(dst, f.Content, fs.FileMode(f.Mode)&0o777); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		if err := os.Chmod(dst, fs.FileMode(f.Mode)&0o777); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	return nil
}
