package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rigger-bsd/rigger/bundler/bundle"
	"github.com/rigger-bsd/rigger/bundler/topology"
	"github.com/rigger-bsd/rigger/verify"
)

type buildOptions struct {
	Repo       string
	Hosts      []string
	All        bool
	Key        string
	Out        string
	Serial     uint64
	Previous   string
	Expires    time.Duration
	AllowDirty bool
}

func (o *buildOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "repo", "", "infra repo directory (a git work tree)")
	f.StringArrayVar(&o.Hosts, "host", nil, "host to build (repeatable)")
	f.BoolVar(&o.All, "all", false, "build every host")
	f.StringVar(&o.Key, "key", "", "encrypted signing key (password in $RIGGER_KEY_PASSWORD)")
	f.StringVar(&o.Out, "out", "", "bundles folder to write HOST/manifest.json and HOST/files.tar.zst into")
	f.Uint64Var(&o.Serial, "serial", 0, "serial of the new bundles")
	f.StringVar(&o.Previous, "previous", "", "published bundles folder: serial = the host's serial there + 1")
	f.DurationVar(&o.Expires, "expires", bundle.DefaultExpiry, "validity of the bundles from their creation")
	f.BoolVar(&o.AllowDirty, "allow-dirty", false, "build from a work tree with uncommitted changes (marks source.dirty)")
}

func newBuildCommand() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build --repo DIR (--host H | --all) --key KEY --out DIR [--serial N | --previous DIR] [--expires 720h]",
		Short: "Render, pack and sign per-host bundles",
		Long: `build renders each host of the infra repo, packs its files into a
deterministic tar + zstd archive, writes a manifest (host, serial, source
commit, created, not_before from the host's rollout wave, expires, archive
and file digests, health checks) and signs it with KEY.

The serial is --serial N, or one more than the host's serial in --previous
DIR (the published bundles; 1 for a new host). A serial is never reused: a
bundle already in --out with the same or a higher serial is refused.
created is the clock, or $SOURCE_DATE_EPOCH for reproducible builds. The
source commit is read from the repo; a dirty work tree is refused unless
--allow-dirty, which marks the bundles source.dirty.

EXIT STATUS
  0  all bundles written
  1  the repo has problems, or a bundle could not be built
  2  bad flags or arguments`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBuild(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runBuild(o buildOptions, stdout, stderr io.Writer) error {
	switch {
	case o.Repo == "" || o.Key == "" || o.Out == "":
		return usageError{errors.New("build: --repo, --key and --out are required")}
	case o.All == (len(o.Hosts) > 0):
		return usageError{errors.New("build: give either --host H or --all")}
	case (o.Serial > 0) == (o.Previous != ""):
		return usageError{errors.New("build: give either --serial N or --previous DIR")}
	case o.Expires <= 0:
		return usageError{fmt.Errorf("build: --expires %s: must be positive", o.Expires)}
	}
	defer bundle.BatchGC()()
	// The git status and the key's decryption (scrypt) do not depend on
	// the topology: they run while it loads, on the core its serial part
	// leaves idle. Errors are still reported in this order.
	waitSource := async(func() (verify.Source, error) { return sourceOf(o.Repo, o.AllowDirty) })
	waitSigner := async(func() (*bundle.Signer, error) { return loadSigningKey(o.Key) })
	// Each host is packed as soon as it renders (bundle.Packer); its
	// bundle is made once the whole repo loaded without problems.
	packer := bundle.NewPacker(o.Hosts...)
	repo, err := loadTopologyWith(o.Repo, stderr, topology.Options{Rendered: packer.Rendered})
	if err != nil {
		return err
	}
	hosts := o.Hosts
	if o.All {
		hosts = repo.Hosts()
	}
	source, err := waitSource()
	if err != nil {
		return err
	}
	created, err := buildTime()
	if err != nil {
		return err
	}
	signer, err := waitSigner()
	if err != nil {
		return err
	}
	gates, err := gateSerials(repo, hosts, o)
	if err != nil {
		return err
	}
	// Hosts are independent: build them on every core, report in order.
	lines := make([]string, len(hosts))
	errs := bundle.ForEach(len(hosts), func(i int) (err error) {
		lines[i], err = buildHost(repo, packer, hosts[i], o, created, source, signer, gates)
		return err
	})
	for i, err := range errs {
		if err == nil {
			fmt.Fprintln(stdout, lines[i])
		}
	}
	return errors.Join(errs...)
}

// async starts f and returns a function that waits for its result.
func async[T any](f func() (T, error)) func() (T, error) {
	var v T
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err = f()
	}()
	return func() (T, error) {
		<-done
		return v, err
	}
}

// buildHost makes, signs and writes one host's bundle from its pack and
// returns the line to print.
func buildHost(repo *topology.Repo, packer *bundle.Packer, host string, o buildOptions, created time.Time, source verify.Source, signer *bundle.Signer, gates map[string]uint64) (string, error) {
	packed, err := packer.Packed(repo, host)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", host, err)
	}
	serial, err := newSerial(host, o)
	if err != nil {
		return "", err
	}
	// Never reuse a serial: a second, different bundle with the same
	// serial would be an equivocation the agents must refuse.
	if have, err := bundle.PreviousSerial(o.Out, host); err != nil {
		return "", fmt.Errorf("build %s: %w", host, err)
	} else if have >= serial {
		return "", fmt.Errorf("build %s: serial %d is not above the bundle already in %s (serial %d); serials are never reused", host, serial, o.Out, have)
	}
	b, err := packed.Build(bundle.Meta{Serial: serial, Created: created, Expires: created.Add(o.Expires), Source: source, GateSerials: gates})
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	if err := b.Sign(signer); err != nil {
		return "", err
	}
	dir, err := b.Write(o.Out)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: serial %d, %d files, %d bytes, not before %s -> %s",
		host, serial, len(b.Manifest.Files), len(b.Archive), b.Manifest.NotBefore.Format(time.RFC3339), dir), nil
}

// loadTopology loads the infra repo and prints every problem it has.
func loadTopology(dir string, stderr io.Writer) (*topology.Repo, error) {
	return loadTopologyWith(dir, stderr, topology.Options{})
}

// loadTopologyWith is loadTopology with options.
func loadTopologyWith(dir string, stderr io.Writer, opts topology.Options) (*topology.Repo, error) {
	repo, err := topology.LoadWith(dir, opts)
	if err == nil {
		return repo, nil
	}
	var ps topology.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(stderr, p.String())
		}
		return nil, fmt.Errorf("%d problem(s) in %s", len(ps), dir)
	}
	return nil, err
}

// sourceOf reads the commit the repo's work tree is at, with go-git.
func sourceOf(dir string, allowDirty bool) (verify.Source, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if allowDirty {
			return verify.Source{Dirty: true}, nil
		}
		return verify.Source{}, fmt.Errorf("%s is not in a git repository (--allow-dirty builds it anyway, marked dirty)", dir)
	}
	if err != nil {
		return verify.Source{}, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return verify.Source{}, fmt.Errorf("%s: git HEAD: %w", dir, err)
	}
	src := verify.Source{Commit: head.Hash().String()}
	if rem, err := repo.Remote("origin"); err == nil && len(rem.Config().URLs) > 0 {
		src.Repo = redactURL(rem.Config().URLs[0])
	}
	wt, err := repo.Worktree()
	if err != nil {
		return verify.Source{}, fmt.Errorf("%s: %w", dir, err)
	}
	st, err := wt.Status()
	if err != nil {
		return verify.Source{}, fmt.Errorf("%s: git status: %w", dir, err)
	}
	if !st.IsClean() {
		if !allowDirty {
			return verify.Source{}, fmt.Errorf("%s has uncommitted changes; commit them or pass --allow-dirty", dir)
		}
		src.Dirty = true
	}
	return src, nil
}

// redactURL drops credentials from a remote URL before it is signed into
// every manifest.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// buildTime is $SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func buildTime() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("$SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

// newSerial is the serial host's bundle gets in this build.
func newSerial(host string, o buildOptions) (uint64, error) {
	if o.Previous == "" {
		return o.Serial, nil
	}
	prev, err := bundle.PreviousSerial(o.Previous, host)
	if err != nil {
		return 0, fmt.Errorf("build %s: previous: %w", host, err)
	}
	return prev + 1, nil
}

// gateSerials finds, for every host that gates one being built, the serial
// it must report healthy: its serial in this build when it is built too,
// else its published serial in --previous (it keeps running that bundle).
func gateSerials(repo *topology.Repo, hosts []string, o buildOptions) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, h := range hosts {
		r, err := repo.Rendered(h)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", h, err)
		}
		for _, g := range r.Gate {
			if _, ok := out[g]; ok {
				continue
			}
			if slices.Contains(hosts, g) {
				s, err := newSerial(g, o)
				if err != nil {
					return nil, err
				}
				out[g] = s
				continue
			}
			var prev uint64
			if o.Previous != "" {
				if prev, err = bundle.PreviousSerial(o.Previous, g); err != nil {
					return nil, fmt.Errorf("build %s: gating host %s: %w", h, g, err)
				}
			}
			if prev == 0 {
				return nil, fmt.Errorf("build %s: gating host %s is not built in this run and has no published bundle in --previous; build it too (--all or --host %s)", h, g, g)
			}
			out[g] = prev
		}
	}
	return out, nil
}
