package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/rigger-bsd/rigger/bundler/gitauth"
)

// Source is the git side of the agent: a bare repository in the state dir
// that holds at most the tips fetched so far, and the remote it follows.
// It never checks out a worktree; the host's two files are read from the
// object store.
type Source struct {
	cfg  SourceConfig
	dir  string
	repo *git.Repository
	auth transport.AuthMethod
}

// SourceError is a failure to reach or read the git source: transient, the
// loop retries with backoff.
type SourceError struct {
	Op  string // "list", "fetch", "read"
	URL string // redacted
	Err error
}

func (e *SourceError) Error() string { return e.Op + " " + e.URL + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// BundleFileError says a host's bundle file in the commit is missing, not a
// regular file, or too large: the commit is unusable as published.
type BundleFileError struct {
	Commit string
	Path   string
	Err    error
}

func (e *BundleFileError) Error() string {
	return "commit " + short(e.Commit) + ": " + e.Path + ": " + e.Err.Error()
}
func (e *BundleFileError) Unwrap() error { return e.Err }

// ErrBranchMissing: the remote has no such branch (nothing published yet).
var ErrBranchMissing = errors.New("branch not found on the remote")

// OpenSource opens (or creates) the bare repository dir and points its
// remote "origin" at cfg.URL. An empty dir keeps the repository in memory
// (agent plan, which must not touch the running agent's clone).
func OpenSource(dir string, cfg SourceConfig) (*Source, error) {
	var (
		repo *git.Repository
		err  error
	)
	if dir == "" {
		repo, err = git.Init(memory.NewStorage(), nil)
	} else {
		repo, err = git.PlainOpen(dir)
		if errors.Is(err, git.ErrRepositoryNotExists) {
			repo, err = git.PlainInit(dir, true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("git repository %s: %w", dir, err)
	}
	s := &Source{cfg: cfg, dir: dir, repo: repo}
	if err := s.setRemote(); err != nil {
		return nil, err
	}
	if s.auth, err = authFor(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Source) setRemote() error {
	c, err := s.repo.Config()
	if err != nil {
		return fmt.Errorf("git config %s: %w", s.dir, err)
	}
	want := &gitconfig.RemoteConfig{
		Name:  "origin",
		URLs:  []string{s.cfg.URL},
		Fetch: []gitconfig.RefSpec{s.refSpec()},
	}
	if old, ok := c.Remotes["origin"]; ok && len(old.URLs) == 1 && old.URLs[0] == want.URLs[0] &&
		len(old.Fetch) == 1 && old.Fetch[0] == want.Fetch[0] {
		return nil
	}
	c.Remotes["origin"] = want
	if err := s.repo.SetConfig(c); err != nil {
		return fmt.Errorf("git config %s: %w", s.dir, err)
	}
	return nil
}

// refSpec is forced ("+") so a force-pushed branch is followed; whether
// its bundle may be applied is for the serial check to decide.
func (s *Source) refSpec() gitconfig.RefSpec {
	return gitconfig.RefSpec("+refs/heads/" + s.cfg.Branch + ":refs/remotes/origin/" + s.cfg.Branch)
}

// authFor builds the transport credentials (see gitauth), naming the
// source.* key at fault.
func authFor(cfg SourceConfig) (transport.AuthMethod, error) {
	auth, err := gitauth.Auth(gitauth.Config{URL: cfg.URL, TokenFile: cfg.TokenFile, SSHKey: cfg.SSHKey, KnownHosts: cfg.KnownHosts})
	if fe, ok := errors.AsType[*gitauth.FieldError](err); ok {
		return nil, &ConfigError{Key: "source." + fe.Field, Err: fe.Err}
	}
	return auth, err
}

// RedactURL removes credentials from a URL for logs and status.
func RedactURL(raw string) string { return gitauth.Redact(raw) }

func (s *Source) url() string { return RedactURL(s.cfg.URL) }

// Head asks the remote for the branch head: one ref advertisement, nothing
// else. It is the whole cost of a poll when nothing changed.
func (s *Source) Head(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(s.budget(ctx), s.cfg.Timeout)
	defer cancel()
	remote, err := s.repo.Remote("origin")
	if err != nil {
		return "", &SourceError{Op: "list", URL: s.url(), Err: err}
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: s.auth, PeelingOption: git.IgnorePeeled})
	if err != nil {
		return "", &SourceError{Op: "list", URL: s.url(), Err: ctxErr(ctx, err)}
	}
	want := plumbing.NewBranchReferenceName(s.cfg.Branch)
	for _, r := range refs {
		if r.Name() == want {
			return r.Hash().String(), nil
		}
	}
	return "", &SourceError{Op: "list", URL: s.url(), Err: fmt.Errorf("%s: %w", s.cfg.Branch, ErrBranchMissing)}
}

// budget puts the configured response budget (or the default) on ctx for
// the HTTP transport (bundler/gitauth/budget.go).
func (s *Source) budget(ctx context.Context) context.Context {
	b := s.cfg.Budget
	if b.Refs <= 0 || b.Pack <= 0 || b.MaxObject <= 0 {
		b = DefaultBudget
	}
	return gitauth.WithBudget(ctx, b)
}

// ctxErr prefers the deadline over whatever the transport made of it.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// Has reports whether commit is already in the local object store.
func (s *Source) Has(commit string) bool {
	_, err := s.repo.CommitObject(plumbing.NewHash(commit))
	return err == nil
}

// Fetch brings the branch tip into the local store: depth 1, that branch
// only, no tags, forced, under the source deadline. It returns the commit
// the branch points at afterwards.
func (s *Source) Fetch(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(s.budget(ctx), s.cfg.Timeout)
	defer cancel()
	err := s.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{s.refSpec()},
		Depth:      1,
		Tags:       git.NoTags,
		Force:      true,
		Auth:       s.auth,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", &SourceError{Op: "fetch", URL: s.url(), Err: ctxErr(ctx, err)}
	}
	ref, err := s.repo.Reference(plumbing.NewRemoteReferenceName("origin", s.cfg.Branch), true)
	if err != nil {
		return "", &SourceError{Op: "fetch", URL: s.url(), Err: err}
	}
	s.compact()
	return ref.Hash().String(), nil
}

// maxPacks bounds the packfiles that depth-1 fetches pile up (one each)
// before the store is repacked down to what the branch tip needs.
const maxPacks = 16

// compact repacks the local store when fetches have left many packs, so
// an agent running for years keeps a store the size of one tip. Failure
// only costs disk space, so it is logged by the caller's next error, not
// returned.
func (s *Source) compact() {
	if s.dir == "" {
		return
	}
	packs, _ := filepath.Glob(filepath.Join(s.dir, "objects", "pack", "*.pack"))
	if len(packs) <= maxPacks {
		return
	}
	if err := s.repo.RepackObjects(&git.RepackConfig{}); err != nil {
		return
	}
	// The storage caches the pack index list; open it afresh.
	if repo, err := git.PlainOpen(s.dir); err == nil {
		s.repo = repo
	}
}

// Packs returns the number of packfiles in the local store.
func (s *Source) Packs() int {
	packs, _ := filepath.Glob(filepath.Join(s.dir, "objects", "pack", "*.pack"))
	return len(packs)
}

// Check is a cheap reachability probe (the "git" health check): the
// apply engine uses it to roll back a change that cuts the agent off.
func (s *Source) Check(ctx context.Context) error {
	_, err := s.Head(ctx)
	return err
}

// BundleFiles are a host's two files as found in one commit, plus their
// blob ids (which identify the bundle without trusting it).
type BundleFiles struct {
	Commit       string
	Manifest     []byte
	Archive      []byte
	ManifestBlob string
	ArchiveBlob  string
}

// Read takes <host>/manifest.json and <host>/files.tar.zst out of commit's
// tree. Each must be a regular file no larger than its cap; the sizes are
// checked before a blob is read.
func (s *Source) Read(commit, host string, manifestCap, archiveCap int64) (*BundleFiles, error) {
	c, err := s.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, &SourceError{Op: "read", URL: s.url(), Err: fmt.Errorf("commit %s: %w", short(commit), err)}
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, &SourceError{Op: "read", URL: s.url(), Err: fmt.Errorf("commit %s: %w", short(commit), err)}
	}
	bf := &BundleFiles{Commit: commit}
	if bf.Manifest, bf.ManifestBlob, err = s.readBlob(tree, commit, host+"/manifest.json", manifestCap); err != nil {
		return nil, err
	}
	if bf.Archive, bf.ArchiveBlob, err = s.readBlob(tree, commit, host+"/files.tar.zst", archiveCap); err != nil {
		return nil, err
	}
	return bf, nil
}

// BlobIDs returns the blob ids of the host's two files without reading
// them (for the quarantine check before verification).
func (s *Source) BlobIDs(commit, host string) (manifest, archive string, err error) {
	c, err := s.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return "", "", err
	}
	tree, err := c.Tree()
	if err != nil {
		return "", "", err
	}
	m, err1 := tree.FindEntry(host + "/manifest.json")
	a, err2 := tree.FindEntry(host + "/files.tar.zst")
	if err1 != nil || err2 != nil {
		return "", "", errors.Join(err1, err2)
	}
	return m.Hash.String(), a.Hash.String(), nil
}

func (s *Source) readBlob(tree *object.Tree, commit, path string, limit int64) ([]byte, string, error) {
	fail := func(err error) ([]byte, string, error) {
		return nil, "", &BundleFileError{Commit: commit, Path: path, Err: err}
	}
	e, err := tree.FindEntry(path)
	if err != nil {
		return fail(fmt.Errorf("not in the published tree: %w", err))
	}
	if e.Mode != filemode.Regular {
		return fail(fmt.Errorf("not a regular file (git mode %s)", e.Mode))
	}
	blob, err := s.repo.BlobObject(e.Hash)
	if err != nil {
		return fail(err)
	}
	if blob.Size > limit {
		return fail(fmt.Errorf("%d bytes, over the %d-byte limit", blob.Size, limit))
	}
	r, err := blob.Reader()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return fail(err)
	}
	if int64(len(b)) != blob.Size {
		return fail(fmt.Errorf("read %d bytes, blob says %d", len(b), blob.Size))
	}
	return b, e.Hash.String(), nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// since is time.Since rounded for humans and logs.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
