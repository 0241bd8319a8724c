// Package statusref carries signed status reports over the git server the
// fleet already uses: one ref per host, refs/rigger/status/<host>, pointing
// at a commit whose tree holds report.json (a DSSE envelope, see
// verify.Report). Hosts never write each other's refs, so concurrent
// pushes never conflict. The agent pushes its own report and reads its
// gating hosts'; `bundler status` reads them all.
//
// This package is transport only: what Read returns is raw and untrusted
// until verify.VerifyReport (or verify.CheckGate) accepted it.
package statusref

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/rigger-bsd/rigger/verify"
)

// RefPrefix is where status refs live (contract: server-side rules that
// limit what host credentials may write name it).
const RefPrefix = "refs/rigger/status/"

// FileName is the report's file in a status commit.
const FileName = "report.json"

// MaxHosts bounds how many status refs one Read looks at.
const MaxHosts = 4096

var hostRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Ref is the status ref of host.
func Ref(host string) plumbing.ReferenceName { return plumbing.ReferenceName(RefPrefix + host) }

// Remote is a git server holding status refs.
type Remote struct {
	URL     string
	Auth    transport.AuthMethod
	Timeout time.Duration // per Push or Read; 0 = 60s
}

// Error is a failure to reach or use the server.
type Error struct {
	Op  string // "push", "list", "fetch"
	URL string // as given; callers pass a redacted one in logs
	Err error
}

func (e *Error) Error() string { return "status " + e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func (r Remote) timeout() time.Duration {
	if r.Timeout <= 0 {
		return 60 * time.Second
	}
	return r.Timeout
}

// Push publishes envelope as host's current report: a parentless commit
// (the ref keeps no history, so the repository does not grow with every
// report) force-pushed to the host's own ref.
func (r Remote) Push(ctx context.Context, host string, envelope []byte, at time.Time) error {
	if !hostRe.MatchString(host) {
		return fmt.Errorf("status push: %q is not a host name", host)
	}
	if len(envelope) > verify.MaxReportSize {
		return fmt.Errorf("status push: report is %d bytes, limit %d", len(envelope), verify.MaxReportSize)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return err
	}
	commit, err := writeCommit(repo, host, envelope, at)
	if err != nil {
		return fmt.Errorf("status push: %w", err)
	}
	ref := Ref(host)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref, commit)); err != nil {
		return err
	}
	remote, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{r.URL}})
	if err != nil {
		return err
	}
	err = remote.PushContext(ctx, &git.PushOptions{
		RefSpecs: []gitconfig.RefSpec{gitconfig.RefSpec("+" + ref + ":" + ref)},
		Auth:     r.Auth,
		Force:    true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return &Error{Op: "push", URL: r.URL, Err: ctxErr(ctx, err)}
	}
	return nil
}

func writeCommit(repo *git.Repository, host string, envelope []byte, at time.Time) (plumbing.Hash, error) {
	st := repo.Storer
	blob := st.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	w, err := blob.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(envelope); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	blobHash, err := st.SetEncodedObject(blob)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree := &object.Tree{Entries: []object.TreeEntry{{Name: FileName, Mode: filemode.Regular, Hash: blobHash}}}
	to := st.NewEncodedObject()
	if err := tree.Encode(to); err != nil {
		return plumbing.ZeroHash, err
	}
	treeHash, err := st.SetEncodedObject(to)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sig := object.Signature{Name: "rigger agent " + host, Email: "rigger@" + host, When: at.UTC()}
	c := &object.Commit{Author: sig, Committer: sig, Message: "status of " + host + "\n", TreeHash: treeHash}
	co := st.NewEncodedObject()
	if err := c.Encode(co); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(co)
}

// Fetched is what could be read of one host's status ref.
type Fetched struct {
	Envelope []byte // raw, untrusted
	Commit   string
	Err      error // the ref exists but its report is unreadable
}

// Read lists the status refs on the server and fetches those of hosts
// (every host when hosts is nil). A host without a ref is absent from the
// result; one whose report cannot be read has Err set. The error is for
// the server as a whole (unreachable, refused).
func (r Remote) Read(ctx context.Context, hosts []string) (map[string]Fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	for attempt := 1; ; attempt++ {
		out, err := r.read(ctx, hosts)
		// Over smart HTTP the ref advertisement and the pack request are
		// separate requests: an agent pushing its report in between makes
		// git's upload-pack refuse the old tip: a status ref keeps no history, so the
		// old tip is not reachable from any ref ("not our ref", git's
		// upload-pack.c, check_non_tip). The refs only moved; list again.
		if err != nil && attempt < readAttempts && ctx.Err() == nil && strings.Contains(err.Error(), "not our ref") {
			continue
		}
		return out, err
	}
}

// readAttempts bounds the re-reads after a ref moved under a fetch.
const readAttempts = 4

func (r Remote) read(ctx context.Context, hosts []string) (map[string]Fetched, error) {
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, err
	}
	remote, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{r.URL}})
	if err != nil {
		return nil, err
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: r.Auth, PeelingOption: git.IgnorePeeled})
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return map[string]Fetched{}, nil
		}
		return nil, &Error{Op: "list", URL: r.URL, Err: ctxErr(ctx, err)}
	}
	want := map[string]bool{}
	for _, h := range hosts {
		want[h] = true
	}
	found := map[string]plumbing.ReferenceName{}
	var specs []gitconfig.RefSpec
	for _, ref := range refs {
		name := ref.Name().String()
		host, ok := strings.CutPrefix(name, RefPrefix)
		if !ok || !hostRe.MatchString(host) || (hosts != nil && !want[host]) || ref.Type() != plumbing.HashReference {
			continue
		}
		if len(found) == MaxHosts {
			return nil, &Error{Op: "list", URL: r.URL, Err: fmt.Errorf("more than %d status refs", MaxHosts)}
		}
		found[host] = ref.Name()
		specs = append(specs, gitconfig.RefSpec("+"+name+":"+name))
	}
	out := map[string]Fetched{}
	if len(specs) == 0 {
		return out, nil
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs, Depth: 1, Tags: git.NoTags, Force: true, Auth: r.Auth})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, &Error{Op: "fetch", URL: r.URL, Err: ctxErr(ctx, err)}
	}
	// The fetch advertises the refs again: read the tips it fetched, not
	// the listed ones, which a push in between may have replaced.
	for host, name := range found {
		ref, err := repo.Reference(name, true)
		if err != nil {
			if errors.Is(err, plumbing.ErrReferenceNotFound) {
				continue // deleted between the list and the fetch
			}
			return nil, err
		}
		env, err := readReport(repo, ref.Hash())
		out[host] = Fetched{Envelope: env, Commit: ref.Hash().String(), Err: err}
	}
	return out, nil
}

// readReport reads report.json of a status commit from the object store:
// a regular file, at most verify.MaxReportSize bytes, checked before
// reading.
func readReport(repo *git.Repository, h plumbing.Hash) ([]byte, error) {
	c, err := repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("status commit %s: %w", h, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("status commit %s: %w", h, err)
	}
	ent, err := tree.FindEntry(FileName)
	if err != nil {
		return nil, fmt.Errorf("status commit %s: %s: %w", h, FileName, err)
	}
	if ent.Mode != filemode.Regular {
		return nil, fmt.Errorf("status commit %s: %s is not a regular file (mode %s)", h, FileName, ent.Mode)
	}
	blob, err := repo.BlobObject(ent.Hash)
	if err != nil {
		return nil, err
	}
	if blob.Size > verify.MaxReportSize {
		return nil, fmt.Errorf("status commit %s: %s is %d bytes, limit %d", h, FileName, blob.Size, verify.MaxReportSize)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, verify.MaxReportSize+1))
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
