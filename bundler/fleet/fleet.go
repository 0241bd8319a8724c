// Package fleet reads what every host of a fleet runs, from the git server
// alone: the published bundles (what each host should run, with its gate
// and its status key) and the hosts' signed status reports (what it does
// run, and whether that is healthy). `bundler status` and `bundler wait`
// are built on it.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/rigger-bsd/rigger/bundler/gitauth"
	"github.com/rigger-bsd/rigger/policy"
	"github.com/rigger-bsd/rigger/verify"
	"github.com/rigger-bsd/rigger/verify/statusref"
)

// Options say where the fleet's git server is and how to judge it.
type Options struct {
	URL    string
	Branch string // bundles branch; default "bundles"
	// StatusURL is where the status refs are when not on URL (a separate
	// status repository, README "Credentials").
	StatusURL string
	Auth      transport.AuthMethod
	Timeout   time.Duration
	// Keys, when given, verify the published manifests (CI keys, with
	// Threshold); without them manifests, and so the hosts' status keys
	// and gates, are taken unverified and Fleet.Verified is false.
	Keys      []verify.PublicKey
	Threshold int
	// Stale is how old a host's last report may be (default 15m).
	Stale time.Duration
	Now   func() time.Time
}

// Fleet is the state of every host.
type Fleet struct {
	URL           string `json:"url"`
	Branch        string `json:"branch"`
	BundlesCommit string `json:"bundles_commit,omitempty"`
	// Verified: the published manifests were checked against --pub keys.
	Verified bool   `json:"manifests_verified"`
	Hosts    []Host `json:"hosts"`
	// OK: every host reports healthy, fresh, not degraded.
	OK bool `json:"ok"`
}

// Host is one host's line.
type Host struct {
	Host string `json:"host"`
	// Published is the host's bundle on the bundles branch.
	Published *Published `json:"published,omitempty"`
	// What the host's last accepted report says.
	Serial     uint64                `json:"serial,omitempty"` // running serial
	Commit     string                `json:"commit,omitempty"` // its source commit
	Outcome    string                `json:"outcome,omitempty"`
	Reason     string                `json:"reason,omitempty"`
	Healthy    bool                  `json:"healthy"`
	Health     []verify.ReportCheck  `json:"health,omitempty"`
	ReportTime time.Time             `json:"report_time,omitzero"`
	AgeSeconds int64                 `json:"age_seconds,omitempty"`
	Hold       string                `json:"hold,omitempty"`
	Pending    *verify.ReportPending `json:"pending,omitempty"`
	Failed     []verify.ReportFailed `json:"failed,omitempty"`
	// Gate is the published bundle's gate as the reports stand now.
	Gate *Gate `json:"gate,omitempty"`
	// Problems say why the host is not OK: "no report", "report ignored:
	// …", "unhealthy", "stale", "degraded", "no bundle published".
	Problems []string `json:"problems"`
	OK       bool     `json:"ok"`

	report *verify.Report
}

// Published is a host's published bundle.
type Published struct {
	Serial   uint64 `json:"serial"`
	Commit   string `json:"commit"`
	Error    string `json:"error,omitempty"`
	manifest *verify.Manifest
}

// Gate is the gate state of a published bundle.
type Gate struct {
	State  verify.GateState `json:"state"`
	Reason string           `json:"reason"`
}

// Read fetches the bundles branch and every status ref and judges each
// host.
func Read(ctx context.Context, o Options) (*Fleet, error) {
	if o.Branch == "" {
		o.Branch = "bundles"
	}
	if o.Stale <= 0 {
		o.Stale = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	// Every response of the server counts against the same budget as the
	// agent's (SECURITY.md "Endless data").
	ctx = gitauth.WithBudget(ctx, gitauth.DefaultBudget)
	f := &Fleet{URL: o.URL, Branch: o.Branch, Verified: len(o.Keys) > 0}
	pub, commit, err := published(ctx, o)
	if err != nil {
		return nil, err
	}
	f.BundlesCommit = commit
	statusURL := o.StatusURL
	if statusURL == "" {
		statusURL = o.URL
	}
	raw, err := statusref.Remote{URL: statusURL, Auth: o.Auth, Timeout: o.Timeout}.Read(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for h := range pub {
		names[h] = true
	}
	for h := range raw {
		names[h] = true
	}
	in := map[string]verify.GateInput{}
	for h, r := range raw {
		in[h] = verify.GateInput{Envelope: r.Envelope, Err: r.Err}
	}
	now := o.Now()
	f.OK = true
	for _, name := range sortedKeys(names) {
		h := Host{Host: name, Published: pub[name], Problems: []string{}}
		h.judge(raw, in, now, o.Stale)
		f.OK = f.OK && h.OK
		f.Hosts = append(f.Hosts, h)
	}
	return f, nil
}

// judge verifies the host's report with the status key its own published
// manifest pins, and fills the host's line.
func (h *Host) judge(raw map[string]statusref.Fetched, in map[string]verify.GateInput, now time.Time, stale time.Duration) {
	p := h.Published
	var m *verify.Manifest
	switch {
	case p == nil:
		h.Problems = append(h.Problems, "no bundle published")
	case p.Error != "":
		h.Problems = append(h.Problems, "published bundle: "+p.Error)
	default:
		m = p.manifest
	}
	f, ok := raw[h.Host]
	switch {
	case !ok:
		h.Problems = append(h.Problems, "no report")
	case f.Err != nil:
		h.Problems = append(h.Problems, "report unreadable: "+f.Err.Error())
	case m == nil:
	case m.ReportKey == "":
		h.Problems = append(h.Problems, "report not checked: the published manifest pins no status_key")
	default:
		key, err := verify.LoadPublicKey([]byte(m.ReportKey))
		var r *verify.Report
		if err == nil {
			r, err = verify.VerifyReport(f.Envelope, h.Host, key)
		}
		if err != nil {
			h.Problems = append(h.Problems, "report ignored: "+err.Error())
			break
		}
		h.report = r
	}
	if r := h.report; r != nil {
		if r.Current != nil {
			h.Serial, h.Commit = r.Current.Serial, r.Current.Commit
		}
		h.Outcome, h.Reason, h.Healthy, h.Health = r.Outcome, r.Reason, r.Healthy, r.Health
		h.ReportTime, h.AgeSeconds = r.Time, int64(now.Sub(r.Time)/time.Second)
		h.Hold, h.Pending, h.Failed = r.Hold, r.Pending, r.Failed
		if !r.Healthy {
			h.Problems = append(h.Problems, "unhealthy")
		}
		if now.Sub(r.Time) > stale {
			h.Problems = append(h.Problems, fmt.Sprintf("stale (last report %s ago)", now.Sub(r.Time).Round(time.Second)))
		}
		if r.Outcome == "degraded" || strings.HasPrefix(r.Hold, "degraded") {
			h.Problems = append(h.Problems, "degraded")
		}
	}
	if m != nil && m.Gate != nil {
		res := verify.CheckGate(m.Gate, in)
		h.Gate = &Gate{State: res.State, Reason: res.Reason()}
	}
	h.OK = len(h.Problems) == 0
}

// Done says whether the host runs commit (or the newest published bundle,
// built from a later commit) healthily; failed is set when the host
// rolled back or refused the bundle built from commit.
func (h *Host) Done(commit string) (done bool, failed string) {
	r := h.report
	p := h.Published
	if p != nil && p.Commit == commit && r != nil {
		if f := r.FailedSerial(p.Serial); f != nil {
			return false, fmt.Sprintf("%s %s serial %d: %s", h.Host, f.Outcome, f.Serial, f.Reason)
		}
	}
	if r == nil || !r.Healthy || r.Current == nil {
		return false, ""
	}
	if r.Current.Commit == commit {
		return true, ""
	}
	return p != nil && p.Commit != commit && r.Current.Serial >= p.Serial, ""
}

// published reads every host folder's manifest on the bundles branch.
func published(ctx context.Context, o Options) (map[string]*Published, string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, "", err
	}
	if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{o.URL}}); err != nil {
		return nil, "", err
	}
	ref := plumbing.NewBranchReferenceName(o.Branch)
	tracking := plumbing.NewRemoteReferenceName("origin", o.Branch)
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{gitconfig.RefSpec("+" + ref.String() + ":" + tracking.String())},
		Depth:      1, Tags: git.NoTags, Auth: o.Auth,
	})
	var noRef git.NoMatchingRefSpecError
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.As(err, &noRef):
		return map[string]*Published{}, "", nil
	default:
		return nil, "", fmt.Errorf("fetch %s: %w", o.Branch, err)
	}
	head, err := repo.Reference(tracking, true)
	if err != nil {
		return nil, "", err
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		return nil, "", err
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, "", err
	}
	lim := verify.DefaultLimits()
	out := map[string]*Published{}
	for _, e := range tree.Entries {
		if e.Mode != filemode.Dir {
			continue
		}
		man, err := readBlob(tree, e.Name+"/"+verify.ManifestFile, lim.ManifestSize)
		if errors.Is(err, object.ErrFileNotFound) {
			continue
		}
		p := &Published{}
		out[e.Name] = p
		if err == nil {
			p.manifest, err = manifestOf(tree, e.Name, man, o, lim)
		}
		if err != nil {
			p.Error = err.Error()
			continue
		}
		p.Serial, p.Commit = p.manifest.Serial, p.manifest.Source.Commit
	}
	return out, head.Hash().String(), nil
}

// manifestOf verifies the manifest (and its archive) with the given keys,
// or decodes it unverified without keys.
func manifestOf(tree *object.Tree, host string, man []byte, o Options, lim verify.Limits) (*verify.Manifest, error) {
	if len(o.Keys) == 0 {
		return verify.ReadManifestUnverified(man)
	}
	arch, err := readBlob(tree, host+"/"+verify.ArchiveFile, lim.ArchiveSize)
	if err != nil {
		return nil, err
	}
	// Paths: Any. Status only reads what is published; which paths a host
	// accepts is its agent's to judge (its policy.roots, perhaps wider
	// than the defaults), and the default roots here would call a bundle
	// for such a host broken.
	b, err := verify.Verify(man, bytes.NewReader(arch), verify.Options{
		Keys: o.Keys, Threshold: max(o.Threshold, 1), Host: host, Now: o.Now, Limits: lim, Paths: policy.Paths{Any: true},
	})
	if err != nil {
		return nil, err
	}
	return &b.Manifest, nil
}

// readBlob reads a regular file of the tree, refusing one over limit
// before reading it.
func readBlob(tree *object.Tree, path string, limit int64) ([]byte, error) {
	f, err := tree.File(path)
	if err != nil {
		return nil, err
	}
	if f.Mode != filemode.Regular {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if f.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d", path, f.Size, limit)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, limit+1))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
