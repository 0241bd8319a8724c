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

	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/verify"
)

type verifyOptions struct {
	Pub       []string
	Threshold int
	Host      string
	MinSerial uint64
	JSON      bool
	Roots     rootsOptions
}

func (o *verifyOptions) AddFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.Pub, "pub", nil, "trusted PEM public key (repeat for k-of-n)")
	f.IntVar(&o.Threshold, "threshold", 1, "distinct trusted keys that must have signed")
	f.StringVar(&o.Host, "host", "", "expected host (default: the folder name)")
	f.Uint64Var(&o.MinSerial, "min-serial", 0, "refuse a serial below N")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	o.Roots.AddFlags(f)
}

func newVerifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --pub KEY [--pub KEY...] [--threshold K] [--host H] [--min-serial N] [--repo DIR | --root ROOT...] DIR/HOST",
		Short: "Verify a bundle as the agent would",
		Long: `verify runs every check the agent runs on DIR/HOST (signatures by K of the
trusted keys, payload type, manifest, host, serial, expiry, archive digest,
bounded decompression, every tar entry against the manifest) and prints the
host, serial, source commit, times, signers and files. --json prints the
same as one object, or {"ok": false, "rejected": …, "error": …} on failure.
Paths are judged by the host agent's roots: the defaults, plus the
agent_roots the topology at --repo states for the host, or the extra roots
given with --root (the agent's policy.roots). A bundle never widens them.

` + exitStatus("the bundle verifies", "the bundle or a key could not be read (missing file, I/O)",
			"  3  the bundle was read and is rejected; the reason is printed"),
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runVerify(o verifyOptions, dir string, stdout, stderr io.Writer) error {
	if len(o.Pub) == 0 {
		return usageError{errors.New("verify: at least one --pub KEY is required")}
	}
	if err := o.Roots.validate("verify"); err != nil {
		return err
	}
	b, names, err := verifyBundle(o, dir, stderr)
	if o.JSON {
		if jerr := clicontract.JSON(stdout, verifyJSONOf(b, err)); jerr != nil {
			return jerr
		}
	} else if err == nil {
		printBundle(stdout, b, names)
	}
	return err
}

// verifyBundle checks dir; a rejection exits 3, anything that kept it
// from reading the bundle or a key exits 1.
func verifyBundle(o verifyOptions, dir string, stderr io.Writer) (*verify.Bundle, map[string]string, error) {
	keys, names, err := loadPubKeys(o.Pub)
	if err != nil {
		return nil, nil, err
	}
	host := o.Host
	if host == "" {
		host = filepath.Base(filepath.Clean(dir))
	}
	pathsOf, err := o.Roots.pathsOf(stderr)
	if err != nil {
		return nil, nil, err
	}
	paths, err := pathsOf(host)
	if err != nil {
		return nil, nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	opts := verify.Options{Keys: keys, Threshold: o.Threshold, Host: host, Paths: paths}
	if o.MinSerial > 0 {
		opts.LastSerial = o.MinSerial - 1
	}
	b, err := verify.VerifyDir(dir, opts)
	if _, ok := errors.AsType[*verify.RejectError](err); ok {
		return nil, nil, clicontract.Exit(ExitRejected, fmt.Errorf("verify %s: rejected: %w", dir, err))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("verify %s: could not read the bundle: %w", dir, err)
	}
	return b, names, nil
}

// verifyJSON is the --json form of verify; fields are only ever added.
type verifyJSON struct {
	OK       bool             `json:"ok"`
	Rejected bool             `json:"rejected,omitempty"` // read and refused (exit 3), not an I/O failure
	Error    string           `json:"error,omitempty"`
	Signers  []string         `json:"signers,omitempty"` // key ids that signed
	Manifest *verify.Manifest `json:"manifest,omitempty"`
}

func verifyJSONOf(b *verify.Bundle, err error) verifyJSON {
	if err != nil {
		_, rej := errors.AsType[*verify.RejectError](err)
		return verifyJSON{Rejected: rej, Error: err.Error()}
	}
	return verifyJSON{OK: true, Signers: b.Signers, Manifest: &b.Manifest}
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
