package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/bundle"
)

type signOptions struct {
	Key string
}

func (o *signOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Key, "key", "", "encrypted private key file (password in $RIGGER_KEY_PASSWORD)")
}

func newSignCommand() *cobra.Command {
	var o signOptions
	cmd := &cobra.Command{
		Use:   "sign --key KEY DIR/HOST...",
		Short: "Add a signature to built bundles",
		Long: `sign adds one signature by KEY to each bundle folder's manifest.json, for
k-of-n trust (a two-person rule for break-glass bundles signed outside CI).
The manifest itself is not changed; a key that already signed is refused.

` + exitStatus("every bundle signed", "a bundle could not be read or signed, or KEY already signed it"),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("sign: want at least one DIR/HOST")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runSign(o, args, cmd.OutOrStdout()) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSign(o signOptions, dirs []string, stdout io.Writer) error {
	if o.Key == "" {
		return usageError{errors.New("sign: --key is required")}
	}
	s, err := loadSigningKey(o.Key)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := bundle.SignDir(d, s); err != nil {
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
