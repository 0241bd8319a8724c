// Package publish commits built bundles to the bundles branch of a git
// remote with go-git: one commit per publish, on top of what is there, that
// replaces the folders of the hosts being published and keeps every other
// host's folder. A bundle whose serial is not above the published one for
// its host is refused, so a rebuilt or stale bundle never replaces a newer
// one. Git is only transport: agents trust signatures, not this commit.
package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/rigger-bsd/rigger/bundler/gitauth"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
)

// Options say what to publish where.
type Options struct {
	Dir    string // bundles folder: <host>/manifest.json and <host>/files.tar.zst
	URL    string // remote: a local path or an http(s)/ssh URL
	Branch string // default "bundles"
	// Auth for the remote; nil for local paths and anonymous HTTP.
	Auth transport.AuthMethod
	// Author of the commit; default "rigger bundler <bundler@rigger.invalid>".
	Author object.Signature
	Now    func() time.Time
}

// Host is one host's published bundle.
type Host struct {
	Name      string
	Serial    uint64
	Previous  uint64 // serial published before, 0 if none
	Commit    string // source commit of the bundle
	Unchanged bool   // the same manifest was already published
}

// Result is what a publish did.
type Result struct {
	Commit string // the bundles branch head after publishing
	Hosts  []Host
	// Pushed is false when every bundle was already published as is.
	Pushed bool
}

// ErrSerialNotAbove is returned (wrapped) when a bundle's serial is not
// above the one already published for its host.
var ErrSerialNotAbove = errors.New("serial not above the published one")

type local struct {
	host     string
	manifest []byte
	archive  []byte
	m        *verify.Manifest
}

// Publish pushes the bundles in o.Dir as one new commit on o.Branch.
func Publish(ctx context.Context, o Options) (*Result, error) {
	if o.Branch == "" {
		o.Branch = "bundles"
	}
	if o.URL == "" {
		return nil, errors.New("publish: no remote URL")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	bundles, err := readLocal(o.Dir)
	if err != nil {
		return nil, err
	}
	ref := plumbing.NewBranchReferenceName(o.Branch)
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("publish: branch %q: %w", o.Branch, err)
	}
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{o.URL}}); err != nil {
		return nil, err
	}
	tracking := plumbing.NewRemoteReferenceName("origin", o.Branch)
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec("+" + ref.String() + ":" + tracking.String())},
		Depth:      1,
		Tags:       git.NoTags,
		Auth:       o.Auth,
	})
	var noRef git.NoMatchingRefSpecError
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.As(err, &noRef):
		err = nil
	default:
		return nil, fmt.Errorf("publish: fetch %s from %s: %w", o.Branch, gitauth.Redact(o.URL), err)
	}

	var parent *object.Commit
	var oldRoot *object.Tree
	if r, err := repo.Reference(tracking, true); err == nil {
		if parent, err = repo.CommitObject(r.Hash()); err != nil {
			return nil, fmt.Errorf("publish: %s head: %w", o.Branch, err)
		}
		if oldRoot, err = parent.Tree(); err != nil {
			return nil, fmt.Errorf("publish: %s tree: %w", o.Branch, err)
		}
	}

	res := &Result{}
	var refused []string
	changed := map[string]plumbing.Hash{}
	for _, b := range bundles {
		h := Host{Name: b.host, Serial: b.m.Serial, Commit: b.m.Source.Commit}
		if oldRoot != nil {
			prev, prevBytes, err := published(oldRoot, b.host)
			if err != nil {
				return nil, err
			}
			if prev != nil {
				h.Previous = prev.Serial
				if bytes.Equal(prevBytes, b.manifest) {
					h.Unchanged = true
					res.Hosts = append(res.Hosts, h)
					continue
				}
				if b.m.Serial <= prev.Serial {
					refused = append(refused, fmt.Sprintf("%s: serial %d, published %d", b.host, b.m.Serial, prev.Serial))
					continue
				}
			}
		}
		sub, err := writeHostTree(repo, b)
		if err != nil {
			return nil, err
		}
		changed[b.host] = sub
		res.Hosts = append(res.Hosts, h)
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("publish: %w: %s", ErrSerialNotAbove, strings.Join(refused, "; "))
	}
	if len(changed) == 0 {
		if parent != nil {
			res.Commit = parent.Hash.String()
		}
		return res, nil
	}

	root, err := writeRootTree(repo, oldRoot, changed)
	if err != nil {
		return nil, err
	}
	author := o.Author
	if author.Name == "" {
		author = object.Signature{Name: "rigger bundler", Email: "bundler@rigger.invalid"}
	}
	author.When = o.Now()
	c := &object.Commit{Author: author, Committer: author, Message: message(res.Hosts), TreeHash: root}
	if parent != nil {
		c.ParentHashes = []plumbing.Hash{parent.Hash}
	}
	commit, err := storeObject(repo, c)
	if err != nil {
		return nil, err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref, commit)); err != nil {
		return nil, err
	}
	err = repo.PushContext(ctx, &git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(ref.String() + ":" + ref.String())},
		Auth:       o.Auth,
	})
	if err != nil {
		return nil, fmt.Errorf("publish: push %s to %s: %w", o.Branch, gitauth.Redact(o.URL), err)
	}
	res.Commit, res.Pushed = commit.String(), true
	return res, nil
}

// readLocal reads every <host>/ folder of dir that holds a manifest, checks
// its form and archive digest (signatures are the agents' business, but a
// broken or unsigned bundle is never published) and sorts them by host.
func readLocal(dir string) ([]local, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	var out []local
	lim := verify.DefaultLimits()
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		hostDir := filepath.Join(dir, e.Name())
		man, err := verify.ReadFileLimited(filepath.Join(hostDir, verify.ManifestFile), lim.ManifestSize)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		arch, err := verify.ReadFileLimited(filepath.Join(hostDir, verify.ArchiveFile), lim.ArchiveSize)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		b, err := verify.Inspect(man, bytes.NewReader(arch), verify.Options{Host: e.Name(), Paths: policy.Paths{Any: true}})
		if err != nil {
			return nil, fmt.Errorf("publish: %s: %w", hostDir, err)
		}
		env, _, err := verify.ParseEnvelope(man)
		if err != nil {
			return nil, fmt.Errorf("publish: %s: %w", hostDir, err)
		}
		if len(env.Signatures) == 0 {
			return nil, fmt.Errorf("publish: %s: bundle is not signed", hostDir)
		}
		out = append(out, local{host: e.Name(), manifest: man, archive: arch, m: &b.Manifest})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("publish: no bundles (HOST/%s) in %s", verify.ManifestFile, dir)
	}
	return out, nil
}

// published reads host's manifest from the branch tree, unverified: only
// its serial and bytes matter here.
func published(root *object.Tree, host string) (*verify.Manifest, []byte, error) {
	f, err := root.File(host + "/" + verify.ManifestFile)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("publish: published %s: %w", host, err)
	}
	if f.Size > verify.DefaultLimits().ManifestSize {
		return nil, nil, fmt.Errorf("publish: published manifest of %s is %d bytes", host, f.Size)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	m, err := verify.ReadManifestUnverified(b)
	if err != nil {
		return nil, nil, fmt.Errorf("publish: published manifest of %s: %w", host, err)
	}
	return m, b, nil
}

func writeHostTree(repo *git.Repository, b local) (plumbing.Hash, error) {
	arch, err := storeBlob(repo, b.archive)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	man, err := storeBlob(repo, b.manifest)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return storeObject(repo, &object.Tree{Entries: []object.TreeEntry{
		{Name: verify.ArchiveFile, Mode: filemode.Regular, Hash: arch},
		{Name: verify.ManifestFile, Mode: filemode.Regular, Hash: man},
	}})
}

// writeRootTree keeps every entry of the old root and replaces the changed
// hosts' folders.
func writeRootTree(repo *git.Repository, old *object.Tree, changed map[string]plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if old != nil {
		for _, e := range old.Entries {
			if _, ok := changed[e.Name]; !ok {
				entries = append(entries, e)
			}
		}
	}
	for name, h := range changed {
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// Git orders tree entries by name, folders as if they ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	return storeObject(repo, &object.Tree{Entries: entries})
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(repo *git.Repository, o encoder) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

func storeBlob(repo *git.Repository, data []byte) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// message names the source commit(s) and every published serial.
func message(hosts []Host) string {
	commits := map[string]bool{}
	var lines []string
	for _, h := range hosts {
		if h.Unchanged {
			continue
		}
		commits[h.Commit] = true
		lines = append(lines, fmt.Sprintf("%s serial %d (was %d) from %s", h.Name, h.Serial, h.Previous, orNone(h.Commit)))
	}
	var cs []string
	for c := range commits {
		cs = append(cs, orNone(c))
	}
	slices.Sort(cs)
	return fmt.Sprintf("Publish %d bundle(s) from %s\n\n%s\n", len(lines), strings.Join(cs, ", "), strings.Join(lines, "\n"))
}

// redact drops a password or token from a remote URL before it is printed.
func orNone(s string) string {
	if s == "" {
		return "unknown commit"
	}
	return s
}
