package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/gitauth"
	"github.com/rigger-bsd/rigger/bundler/publish"
)

type publishOptions struct {
	Out    string
	URL    string
	Branch string
	gitauth.Config
}

func (o *publishOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Out, "out", "", "bundles folder written by build (HOST/manifest.json, HOST/files.tar.zst)")
	f.StringVar(&o.URL, "url", "", "git remote: a local path or an http(s) URL")
	f.StringVar(&o.Branch, "branch", "bundles", "branch the agents poll")
	f.StringVar(&o.TokenFile, "token-file", "", `https: file holding the push token ("TOKEN" or "USER:TOKEN")`)
	f.StringVar(&o.SSHKey, "ssh-key", "", "ssh: private key file allowed to push")
	f.StringVar(&o.KnownHosts, "known-hosts", "", "ssh: known_hosts to check the server's key against (default: ssh's)")
}

func newPublishCommand() *cobra.Command {
	var o publishOptions
	cmd := &cobra.Command{
		Use:   "publish --out DIR --url URL [--branch bundles] [--token-file F | --ssh-key F]",
		Short: "Commit built bundles to the bundles branch and push",
		Long: `publish adds one commit to the bundles branch of URL with every bundle in
DIR (the message names the source commit and the serials) and pushes it.
Hosts not in DIR keep their published folders. A bundle whose serial is not
above the published one for its host is refused; bundles already published
byte for byte are skipped.

Credentials: --token-file for https, --ssh-key (with the server's key in
known_hosts) for ssh, or none for a local path. They are never printed:
URLs in messages have their password replaced.

` + exitStatus("pushed, or nothing new to push", "a bundle was refused, or the push failed"),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Out == "" || o.URL == "" {
				return usageError{errors.New("publish: --out and --url are required")}
			}
			o.Config.URL = o.URL
			auth, err := gitauth.Auth(o.Config)
			if fe, ok := errors.AsType[*gitauth.FieldError](err); ok {
				return usageError{fmt.Errorf("publish: --%s: %w", strings.ReplaceAll(fe.Field, "_", "-"), fe.Err)}
			}
			if err != nil {
				return err
			}
			res, err := publish.Publish(cmd.Context(), publish.Options{Dir: o.Out, URL: o.URL, Branch: o.Branch, Auth: auth})
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
