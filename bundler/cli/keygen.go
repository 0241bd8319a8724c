package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/verify"
)

// envKeyPassword holds the password of bundle signing keys (keygen, build,
// sign). Keys are never written or read unencrypted.
const envKeyPassword = "RIGGER_KEY_PASSWORD"

type keygenOptions struct {
	Out  string
	Type string
}

func (o *keygenOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Out, "out", "", "write PREFIX.key (encrypted private key) and PREFIX.pub")
	f.StringVar(&o.Type, "type", string(bundle.ECDSA), "key type: ecdsa (P-256) or ed25519")
}

func newKeygenCommand() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX [--type ecdsa|ed25519]",
		Short: "Generate a bundle signing key pair",
		Long: `keygen writes PREFIX.key, the private key encrypted with the password in
$RIGGER_KEY_PASSWORD (sigstore format: scrypt + secretbox), and PREFIX.pub,
the PEM public key to pin in the agents' trust.keys. Existing files are never
overwritten. It prints the key id (hex SHA-256 of the public key).

` + exitStatus("written", "a key file exists already, or could not be written"),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runKeygen(o, cmd.OutOrStdout()) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runKeygen(o keygenOptions, stdout io.Writer) error {
	if o.Out == "" {
		return usageError{errors.New("keygen: --out PREFIX is required")}
	}
	kt := bundle.KeyType(o.Type)
	if kt != bundle.ECDSA && kt != bundle.Ed25519 {
		return usageError{fmt.Errorf("keygen: --type %q: want ecdsa or ed25519", o.Type)}
	}
	pw, err := keyPassword()
	if err != nil {
		return err
	}
	priv, pub, err := bundle.GenerateKey(kt, pw)
	if err != nil {
		return err
	}
	k, err := verify.LoadPublicKey(pub)
	if err != nil {
		return err
	}
	if err := createFile(o.Out+".key", priv, 0o600); err != nil {
		return err
	}
	if err := createFile(o.Out+".pub", pub, 0o644); err != nil {
		os.Remove(o.Out + ".key")
		return err
	}
	fmt.Fprintf(stdout, "%s.key (%s, encrypted)\n%s.pub\nkey id %s\n", o.Out, kt, o.Out, k.ID)
	return nil
}

// keyPassword reads the signing key password; an empty one is refused so a
// fleet's signing key is never stored in the clear.
func keyPassword() ([]byte, error) {
	pw := os.Getenv(envKeyPassword)
	if pw == "" {
		return nil, fmt.Errorf("$%s is empty: signing keys are always encrypted", envKeyPassword)
	}
	return []byte(pw), nil
}

// createFile writes a new file and refuses to replace an existing one.
func createFile(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// noArgs and exactArgs report wrong positional arguments as usage errors
// (exit 2).
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s: want %d argument(s), got %d (usage: %s)", cmd.Name(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}
