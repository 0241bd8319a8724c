package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

type signOptions struct {
	Key   string
	Roots rootsOptions
}

func (o *signOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Key, "key", "", "encrypted private key file (password in $RIGGER_KEY_PASSWORD)")
	o.Roots.AddFlags(f)
}

func newSignCommand() *cobra.Command {
	var o signOptions
	cmd := &cobra.Command{
		Use:   "sign --key KEY [--repo DIR | --root ROOT...] DIR/HOST...",
		Short: "Add a signature to built bundles",
		Long: `sign adds one signature by KEY to each bundle folder's manifest.json, for
k-of-n trust (a two-person rule for break-glass bundles signed outside CI).
The manifest itself is not changed; a key that already signed is refused,
and so is a manifest the host's agent would refuse. Its paths are judged
by the roots of the host's agent: the defaults, plus the agent_roots the
topology at --repo states for the host the manifest names, or the extra
roots given with --root (the agent's policy.roots). A bundle never widens
them.

` + exitStatus("every bundle signed", "a bundle could not be read or signed, or KEY already signed it"),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("sign: want at least one DIR/HOST")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSign(o signOptions, dirs []string, stdout, stderr io.Writer) error {
	if o.Key == "" {
		return usageError{errors.New("sign: --key is required")}
	}
	if err := o.Roots.validate("sign"); err != nil {
		return err
	}
	pathsOf, err := o.Roots.pathsOf(stderr)
	if err != nil {
		return err
	}
	s, err := loadSigningKey(o.Key)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		paths, err := manifestHostPaths(d, pathsOf)
		if err != nil {
			return fmt.Errorf("sign %s: %w", d, err)
		}
		if err := bundle.SignDir(d, s, paths); err != nil {
			return fmt.Errorf("sign %s: %w", d, err)
		}
		fmt.Fprintf(stdout, "%s: signed by %s\n", d, s.KeyID())
	}
	return nil
}

func loadSigningKey(path string) (*bundle.Signer, error) {
	pw, err := keyPassword()
	if err != nil {
		return nil, err
	}
	return bundle.LoadSigner(path, pw)
}

// manifestHostPaths is the path policy of the host dir's manifest names.
// The manifest is read unverified only to learn that name: signing
// checks it in full against the policy returned.
func manifestHostPaths(dir string, pathsOf func(string) (policy.Paths, error)) (policy.Paths, error) {
	b, err := verify.ReadFileLimited(filepath.Join(dir, verify.ManifestFile), verify.DefaultLimits().ManifestSize)
	if err != nil {
		return policy.Paths{}, err
	}
	m, err := verify.ReadManifestUnverified(b)
	if err != nil {
		return policy.Paths{}, err
	}
	return pathsOf(m.Host)
}
