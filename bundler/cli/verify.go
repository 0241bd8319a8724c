package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/verify"
)

type verifyOptions struct {
	Pub       []string
	Threshold int
	Host      string
	MinSerial uint64
}

func (o *verifyOptions) AddFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.Pub, "pub", nil, "trusted PEM public key (repeat for k-of-n)")
	f.IntVar(&o.Threshold, "threshold", 1, "distinct trusted keys that must have signed")
	f.StringVar(&o.Host, "host", "", "expected host (default: the folder name)")
	f.Uint64Var(&o.MinSerial, "min-serial", 0, "refuse a serial below N")
}

func newVerifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --pub KEY [--pub KEY...] [--threshold K] [--host H] [--min-serial N] DIR/HOST",
		Short: "Verify a bundle as the agent would",
		Long: `verify runs every check the agent runs on DIR/HOST (signatures by K of the
trusted keys, payload type, manifest, host, serial, expiry, archive digest,
bounded decompression, every tar entry against the manifest) and prints the
host, serial, source commit, times, signers and files.

EXIT STATUS
  0  the bundle verifies
  1  it does not; the reason is printed
  2  bad flags or arguments`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runVerify(o, args[0], cmd.OutOrStdout()) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runVerify(o verifyOptions, dir string, stdout io.Writer) error {
	if len(o.Pub) == 0 {
		return usageError{errors.New("verify: at least one --pub KEY is required")}
	}
	keys, names, err := loadPubKeys(o.Pub)
	if err != nil {
		return err
	}
	host := o.Host
	if host == "" {
		host = filepath.Base(filepath.Clean(dir))
	}
	opts := verify.Options{Keys: keys, Threshold: o.Threshold, Host: host}
	if o.MinSerial > 0 {
		opts.LastSerial = o.MinSerial - 1
	}
	b, err := verify.VerifyDir(dir, opts)
	if err != nil {
		return fmt.Errorf("verify %s: %w", dir, err)
	}
	printBundle(stdout, b, names)
	return nil
}

// loadPubKeys reads PEM public key files; names maps key id to file.
func loadPubKeys(files []string) ([]verify.PublicKey, map[string]string, error) {
	var keys []verify.PublicKey
	names := map[string]string{}
	for _, f := range files {
		k, err := verify.LoadPublicKeyFile(f)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		names[k.ID] = f
	}
	return keys, names, nil
}

func printBundle(w io.Writer, b *verify.Bundle, keyNames map[string]string) {
	m := b.Manifest
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	commit := m.Source.Commit
	if commit == "" {
		commit = "unknown"
	}
	if m.Source.Dirty {
		commit += " (dirty)"
	}
	if m.Source.Repo != "" {
		commit += " " + m.Source.Repo
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(tw, "host\t%s\n", m.Host)
	fmt.Fprintf(tw, "serial\t%d\n", m.Serial)
	fmt.Fprintf(tw, "commit\t%s\n", commit)
	fmt.Fprintf(tw, "created\t%s\n", ts(m.Created))
	fmt.Fprintf(tw, "not_before\t%s\n", ts(m.NotBefore))
	fmt.Fprintf(tw, "expires\t%s\n", ts(m.Expires))
	fmt.Fprintf(tw, "archive\t%d bytes sha256:%s\n", m.Archive.Size, m.Archive.SHA256)
	var signers []string
	for _, id := range b.Signers {
		s := id
		if n := keyNames[id]; n != "" {
			s += " (" + n + ")"
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		signers = []string{"none checked"}
	}
	fmt.Fprintf(tw, "signers\t%s\n", strings.Join(signers, ", "))
	fmt.Fprintf(tw, "files\t%d\n", len(m.Files))
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range m.Files {
		fmt.Fprintf(tw, "  %04o\t%s:%s\t%7d\t%s\t%s\n", uint32(f.Mode), f.Owner, f.Group, f.Size, f.Path, f.Unit)
	}
	tw.Flush()
	for _, c := range m.Health {
		fmt.Fprintf(w, "health  %s (%s)\n", c.Name, c.Kind)
	}
}
