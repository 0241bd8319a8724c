package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/publish"
)

type publishOptions struct {
	Out    string
	URL    string
	Branch string
}

func (o *publishOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Out, "out", "", "bundles folder written by build (HOST/manifest.json, HOST/files.tar.zst)")
	f.StringVar(&o.URL, "url", "", "git remote: a local path or an http(s) URL")
	f.StringVar(&o.Branch, "branch", "bundles", "branch the agents poll")
}

func newPublishCommand() *cobra.Command {
	var o publishOptions
	cmd := &cobra.Command{
		Use:   "publish --out DIR --url URL [--branch bundles]",
		Short: "Commit built bundles to the bundles branch and push",
		Long: `publish adds one commit to the bundles branch of URL with every bundle in
DIR (the message names the source commit and the serials) and pushes it.
Hosts not in DIR keep their published folders. A bundle whose serial is not
above the published one for its host is refused; bundles already published
byte for byte are skipped.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Out == "" || o.URL == "" {
				return usageError{errors.New("publish: --out and --url are required")}
			}
			res, err := publish.Publish(cmd.Context(), publish.Options{Dir: o.Out, URL: o.URL, Branch: o.Branch})
			if err != nil {
				return err
			}
			printPublish(cmd.OutOrStdout(), o.Branch, res)
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func printPublish(w io.Writer, branch string, res *publish.Result) {
	for _, h := range res.Hosts {
		if h.Unchanged {
			fmt.Fprintf(w, "%s: serial %d already published\n", h.Name, h.Serial)
			continue
		}
		fmt.Fprintf(w, "%s: serial %d (was %d)\n", h.Name, h.Serial, h.Previous)
	}
	if res.Pushed {
		fmt.Fprintf(w, "pushed %s %s\n", branch, res.Commit)
	} else {
		fmt.Fprintf(w, "nothing to publish; %s is at %s\n", branch, res.Commit)
	}
}
