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
	"github.com/rigger-bsd/rigger/bundler/clicontract"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/policy"
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
	JSON      bool
}

func (o *diffOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "repo", "", "infra repo directory")
	f.StringVar(&o.Against, "against", "", "published bundles folder (a checkout of the bundles branch)")
	f.StringArrayVar(&o.Hosts, "host", nil, "only this host (repeatable)")
	f.StringArrayVar(&o.Pub, "pub", nil, "trusted public key: verify the published bundles' signatures")
	f.IntVar(&o.Threshold, "threshold", 1, "with --pub: distinct keys that must have signed")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
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
so). A host with no published bundle is shown as all new. --json prints
the same as one object.

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
	rep := diffJSON{Hosts: []diffHostJSON{}, Unlisted: []string{}}
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = repo.Hosts()
		// Hosts still published but gone from the topology.
		ents, _ := os.ReadDir(o.Against)
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(o.Against, e.Name(), verify.ManifestFile)); err == nil && !slices.Contains(hosts, e.Name()) {
				rep.Unlisted = append(rep.Unlisted, e.Name())
			}
		}
	}
	for _, host := range hosts {
		r, err := repo.Render(host)
		if err != nil {
			return fmt.Errorf("diff %s: %w", host, err)
		}
		// The published bundle is judged by this host's agent's roots, as
		// the topology states them (agent_roots), like the new build.
		pub, err := publishedBundle(filepath.Join(o.Against, host), host, keys, o.Threshold, r.Paths)
		if err != nil {
			return err
		}
		h, err := diffHost(host, pub, r)
		if err != nil {
			return err
		}
		if len(h.Files) > 0 {
			rep.Changed++
		}
		rep.Hosts = append(rep.Hosts, h)
	}
	if o.JSON {
		return clicontract.JSON(stdout, rep)
	}
	writeDiff(stdout, rep)
	return nil
}

// diffJSON is the --json form of diff; fields are only ever added.
type diffJSON struct {
	Hosts    []diffHostJSON `json:"hosts"`
	Changed  int            `json:"changed"`  // hosts with changes
	Unlisted []string       `json:"unlisted"` // published, but no longer in the topology
}

type diffHostJSON struct {
	Host            string         `json:"host"`
	Published       bool           `json:"published"`
	PublishedSerial uint64         `json:"published_serial,omitempty"`
	PublishedCommit string         `json:"published_commit,omitempty"`
	Files           []diffFileJSON `json:"files"`          // changed files only
	Live            []string       `json:"live,omitempty"` // live host steps a new bundle would run
}

type diffFileJSON struct {
	Path  string   `json:"path"`
	Notes []string `json:"notes,omitempty"` // new file, removed, mode, owner, unit changes
	Diff  string   `json:"diff,omitempty"`  // unified diff of the contents
}

func writeDiff(w io.Writer, rep diffJSON) {
	for _, h := range rep.Unlisted {
		fmt.Fprintf(w, "=== %s: published, but no longer in the topology\n", h)
	}
	for _, h := range rep.Hosts {
		if h.Published {
			fmt.Fprintf(w, "=== %s: published serial %d (commit %s)\n", h.Host, h.PublishedSerial, h.PublishedCommit)
		} else {
			fmt.Fprintf(w, "=== %s: not published yet\n", h.Host)
		}
		for _, f := range h.Files {
			for _, n := range f.Notes {
				fmt.Fprintf(w, "%s%s: %s\n", h.Host, f.Path, n)
			}
			fmt.Fprint(w, f.Diff)
		}
		if len(h.Files) == 0 {
			fmt.Fprintf(w, "%s: no changes\n", h.Host)
		}
		for _, l := range h.Live {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintf(w, "%d host(s), %d with changes\n", len(rep.Hosts), rep.Changed)
}

// publishedBundle checks and reads host's published bundle; nil if there
// is none.
func publishedBundle(dir, host string, keys []verify.PublicKey, threshold int, paths policy.Paths) (*verify.Bundle, error) {
	if _, err := os.Stat(filepath.Join(dir, verify.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	opts := verify.Options{Keys: keys, Threshold: threshold, Host: host, Paths: paths}
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

// diffHost lists the changes from the published bundle (nil: none) to
// the render.
func diffHost(host string, pub *verify.Bundle, r *topology.HostRender) (diffHostJSON, error) {
	h := diffHostJSON{Host: host, Files: []diffFileJSON{}}
	// Build (unsigned) to get exactly the metadata a new bundle would carry.
	nb, err := bundle.Build(r, bundle.Meta{Serial: 1, Created: time.Unix(1, 0)})
	if err != nil {
		return h, fmt.Errorf("diff: %w", err)
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
		h.Published, h.PublishedSerial, h.PublishedCommit = true, pub.Manifest.Serial, pub.Manifest.Source.Commit
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
		f := diffFileJSON{Path: p, Notes: notes}
		if sameContent {
			h.Files = append(h.Files, f)
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
			return h, err
		}
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		f.Diff = text
		h.Files = append(h.Files, f)
	}
	if pub != nil {
		h.Live = livePlanLines(host, pub.Manifest.HostDesc, r.Desc)
	}
	return h, nil
}

// livePlanLines lists the host steps the agent will take live, in order,
// when both bundles describe the host. Which of them touch the path to
// the git source only the host knows, so none is marked here.
func livePlanLines(host string, old, new *hostdesc.Host) []string {
	if old == nil || new == nil {
		return nil
	}
	p, err := hostplan.Compute(old, new, nil)
	if err != nil {
		return []string{fmt.Sprintf("%s: live host steps: %v", host, err)}
	}
	if len(p.Steps) == 0 && len(p.Reboot) == 0 {
		return nil
	}
	return append([]string{host + ": live host steps, in order:"}, p.Lines()...)
}
