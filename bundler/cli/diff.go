package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy/hostdesc"
	"github.com/rigger-bsd/rigger/policy/hostplan"
	"github.com/rigger-bsd/rigger/verify"
)

type diffOptions struct {
	Repo      string
	Against   string
	Hosts     []string
	Pub       []string
	Threshold int
}

func (o *diffOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "repo", "", "infra repo directory")
	f.StringVar(&o.Against, "against", "", "published bundles folder (a checkout of the bundles branch)")
	f.StringArrayVar(&o.Hosts, "host", nil, "only this host (repeatable)")
	f.StringArrayVar(&o.Pub, "pub", nil, "trusted public key: verify the published bundles' signatures")
	f.IntVar(&o.Threshold, "threshold", 1, "with --pub: distinct keys that must have signed")
}

func newDiffCommand() *cobra.Command {
	var o diffOptions
	cmd := &cobra.Command{
		Use:   "diff --repo DIR --against BUNDLES_DIR [--host H] [--pub KEY...]",
		Short: "Show what a build would change against the published bundles",
		Long: `diff renders each host and prints a unified diff per file against the
host's published bundle, plus changes of mode, owner and activation unit:
the review view for a pull request. The published bundle is checked first:
with --pub, everything the agent checks except the serial (signatures,
host, expiry, digests); without, its digests and form only (a notice says
so). A host with no published bundle is shown as all new.

EXIT STATUS
  0  diff printed (changes or not)
  1  the repo has problems or a published bundle fails its checks
  2  bad flags or arguments`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runDiff(o diffOptions, stdout, stderr io.Writer) error {
	if o.Repo == "" || o.Against == "" {
		return usageError{errors.New("diff: --repo and --against are required")}
	}
	var keys []verify.PublicKey
	if len(o.Pub) > 0 {
		var err error
		if keys, _, err = loadPubKeys(o.Pub); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stderr, "bundler: notice: no --pub: published bundles are checked for form and digests only, not signatures")
	}
	repo, err := loadTopology(o.Repo, stderr)
	if err != nil {
		return err
	}
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = repo.Hosts()
		// Hosts still published but gone from the topology.
		ents, _ := os.ReadDir(o.Against)
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(o.Against, e.Name(), verify.ManifestFile)); err == nil && !slices.Contains(hosts, e.Name()) {
				fmt.Fprintf(stdout, "=== %s: published, but no longer in the topology\n", e.Name())
			}
		}
	}
	changed := 0
	for _, host := range hosts {
		r, err := repo.Render(host)
		if err != nil {
			return fmt.Errorf("diff %s: %w", host, err)
		}
		pub, err := publishedBundle(filepath.Join(o.Against, host), host, keys, o.Threshold)
		if err != nil {
			return err
		}
		n, err := diffHost(stdout, host, pub, r)
		if err != nil {
			return err
		}
		if n > 0 {
			changed++
		}
	}
	fmt.Fprintf(stdout, "%d host(s), %d with changes\n", len(hosts), changed)
	return nil
}

// publishedBundle checks and reads host's published bundle; nil if there
// is none.
func publishedBundle(dir, host string, keys []verify.PublicKey, threshold int) (*verify.Bundle, error) {
	if _, err := os.Stat(filepath.Join(dir, verify.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	opts := verify.Options{Keys: keys, Threshold: threshold, Host: host}
	var b *verify.Bundle
	var err error
	if len(keys) > 0 {
		b, err = verify.VerifyDir(dir, opts)
	} else {
		b, err = verify.InspectDir(dir, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("diff %s: published bundle %s: %w", host, dir, err)
	}
	return b, nil
}

// diffHost prints the changes from the published bundle (nil: none) to
// the render and returns how many files changed.
func diffHost(w io.Writer, host string, pub *verify.Bundle, r *topology.HostRender) (int, error) {
	// Build (unsigned) to get exactly the metadata a new bundle would carry.
	nb, err := bundle.Build(r, bundle.Meta{Serial: 1, Created: time.Unix(1, 0)})
	if err != nil {
		return 0, fmt.Errorf("diff: %w", err)
	}
	content := map[string][]byte{}
	for _, f := range r.Files {
		content[f.Path] = f.Content
	}
	old := map[string]verify.File{}
	if pub != nil {
		for _, f := range pub.Manifest.Files {
			old[f.Path] = f
		}
		fmt.Fprintf(w, "=== %s: published serial %d (commit %s)\n", host, pub.Manifest.Serial, pub.Manifest.Source.Commit)
	} else {
		fmt.Fprintf(w, "=== %s: not published yet\n", host)
	}
	var paths []string
	for _, f := range nb.Manifest.Files {
		paths = append(paths, f.Path)
	}
	for p := range old {
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	newMeta := map[string]verify.File{}
	for _, f := range nb.Manifest.Files {
		newMeta[f.Path] = f
	}
	changed := 0
	for _, p := range paths {
		of, inOld := old[p]
		nf, inNew := newMeta[p]
		var before, after []byte
		if inOld {
			before = pub.Files[p]
		}
		if inNew {
			after = content[p]
		}
		var notes []string
		switch {
		case !inOld:
			notes = append(notes, fmt.Sprintf("new file, %04o %s:%s, unit %s", uint32(nf.Mode), nf.Owner, nf.Group, nf.Unit))
		case !inNew:
			notes = append(notes, "removed")
		default:
			if of.Mode != nf.Mode {
				notes = append(notes, fmt.Sprintf("mode %04o -> %04o", uint32(of.Mode), uint32(nf.Mode)))
			}
			if of.Owner != nf.Owner || of.Group != nf.Group {
				notes = append(notes, fmt.Sprintf("owner %s:%s -> %s:%s", of.Owner, of.Group, nf.Owner, nf.Group))
			}
			if of.Unit != nf.Unit {
				notes = append(notes, fmt.Sprintf("unit %s -> %s", of.Unit, nf.Unit))
			}
		}
		sameContent := inOld && inNew && of.SHA256 == nf.SHA256
		if len(notes) == 0 && sameContent {
			continue
		}
		changed++
		for _, n := range notes {
			fmt.Fprintf(w, "%s%s: %s\n", host, p, n)
		}
		if sameContent {
			continue
		}
		from, to := "a/"+host+p, "b/"+host+p
		if !inOld {
			from = "/dev/null"
		}
		if !inNew {
			to = "/dev/null"
		}
		text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(before)), B: difflib.SplitLines(string(after)),
			FromFile: from, ToFile: to, Context: 3,
		})
		if err != nil {
			return 0, err
		}
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		fmt.Fprint(w, text)
	}
	if changed == 0 {
		fmt.Fprintf(w, "%s: no changes\n", host)
	}
	if pub != nil {
		printLivePlan(w, host, pub.Manifest.HostDesc, r.Desc)
	}
	return changed, nil
}

// printLivePlan shows the host steps the agent will take live, in order,
// when both bundles describe the host. Which of them touch the path to
// the git source only the host knows, so none is marked here.
func printLivePlan(w io.Writer, host string, old, new *hostdesc.Host) {
	if old == nil || new == nil {
		return
	}
	p, err := hostplan.Compute(old, new, nil)
	if err != nil {
		fmt.Fprintf(w, "%s: live host steps: %v\n", host, err)
		return
	}
	if len(p.Steps) == 0 && len(p.Reboot) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: live host steps, in order:\n", host)
	for _, l := range p.Lines() {
		fmt.Fprintln(w, l)
	}
}
