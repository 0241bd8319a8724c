package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rigger-bsd/rigger/verify"
)

// DefaultHostKey is where `agent keygen` writes the host key by default.
const DefaultHostKey = "/usr/local/etc/rigger/host"

func newKeygenCommand(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen [--out PREFIX]",
		Short: "Make this host's status report key (PREFIX.key, PREFIX.pub)",
		Long: `keygen makes the key this host signs its status reports with: PREFIX.key
(Ed25519, unencrypted PKCS#8 PEM, mode 0600: the agent signs unattended) and
PREFIX.pub. The private key never leaves the host. Put PREFIX.pub into the
infra repo and name it as the host's status_key in topology.yaml; set
status.key: PREFIX.key and status.push: true in the agent config.
An existing key is never overwritten.

` + exitStatus("written", "  1  a key file exists already, or could not be written"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, pub, err := verify.GenerateHostKey()
			if err != nil {
				return err
			}
			if err := writeNew(out+".key", priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pub, 0o644); err != nil {
				os.Remove(out + ".key")
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s.key (keep it on this host) and %s.pub (put it in the infra repo as this host's status_key)\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", DefaultHostKey, "path prefix of the key files")
	return cmd
}

// writeNew creates name with data, refusing to replace an existing file.
func writeNew(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting a key", name)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
